"""Rendering a Grid Engine submission: qsub options, the ``-t`` range, and reading what
``qsub`` and ``qdel`` need and answer."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from lxr.api.resources import Resources, parse_memory_mib
from lxr.schedulers.base import ArrayJob, SubmitRejected
from lxr.schedulers.batch import JOB_NAME_PREFIX, group_targets, job_id_from
from lxr.schedulers.common import compress_ranges, hms
from lxr.schedulers.sge.plugin import SGEOptions, SGEResources
from lxr.schedulers.transport import CommandResult

__all__ = ["GONE", "job_key", "parse_qsub", "qdel_targets", "qsub_options", "task_range"]

#: qsub errors that may pass on their own: the cluster is retried, the job is not failed
_TRANSIENT = re.compile(
    r"commlib error|unable to contact qmaster|unable to send message to qmaster|"
    r"error reading answer list from qmaster|failed receiving gdi request|"
    r"Connection refused|timed out|cannot connect|"
    r"only \d+ jobs are allowed|max_u_jobs|max_jobs",
    re.IGNORECASE,
)
#: qdel complaints about tasks that are already gone or going: nothing left to cancel
GONE = re.compile(
    r"does not exist|already in deletion|has registered|has deleted|^\s*$|"
    r"Following jobs do not exist|^\s*[\d, ]+\s*$",
    re.IGNORECASE,
)
_REJECTED = re.compile(r"Unable to run job|rejected|error:")


def _memory_per_slot(memory: str, slots: int) -> str:
    # h_vmem is per slot: Grid Engine multiplies it by the slots of a -pe job
    mib = parse_memory_mib(memory)
    return f"{-(-mib // max(1, slots))}M"


def _check_value(value: str) -> str:
    if any(c.isspace() for c in value) or "," in value:
        raise SubmitRejected(f"Grid Engine cannot take {value!r} in a -l request or a name")
    return value


def qsub_options(job: ArrayJob, job_dir: str, options: SGEOptions) -> list[str]:
    """The qsub options of ``job`` (everything but ``-t``, ``-tc`` and the script), with the
    cluster's ``spec.sge`` options."""
    res: Resources = job.resources
    own = res.section("sge")
    assert isinstance(own, SGEResources)
    opts = [
        # -N is always given: a name derived from a command with spaces breaks qsub
        "-N",
        JOB_NAME_PREFIX + _check_value(job.tag),
        "-r",
        "y" if job.scheduler_requeue else "n",
        "-S",
        "/bin/bash",
        # $TASK_ID is Grid Engine's pseudo variable for the array index; a rerun appends
        "-o",
        f"{job_dir}/logs/$TASK_ID.out",
        "-e",
        f"{job_dir}/logs/$TASK_ID.err",
    ]
    # a rank takes cpus slots; memory is per node, so per slot it is shared by a node's ranks
    slots = res.ranks * (res.cpus or 1)
    if slots > 1:
        opts += ["-pe", own.parallel_environment or options.parallel_environment, str(slots)]
    if res.memory is not None:
        per_node = (res.tasks_per_node or 1) * (res.cpus or 1)
        opts += ["-l", f"h_vmem={_memory_per_slot(res.memory, per_node)}"]
    if res.memory_per_cpu is not None:  # h_vmem is per slot: a slot is a CPU
        opts += ["-l", f"h_vmem={_memory_per_slot(res.memory_per_cpu, 1)}"]
    if res.time_limit_seconds is not None:
        opts += ["-l", f"h_rt={hms(res.time_limit_seconds)}"]
    if res.gpus:
        opts += ["-l", f"{options.gpu_resource}={res.gpus}"]
    queue = own.queue or res.partition
    if queue:
        opts += ["-q", _check_value(queue)]
    if own.project:
        opts += ["-P", _check_value(own.project)]
    if res.account:
        opts += ["-A", _check_value(res.account)]
    for key, value in sorted(res.extra.items()):
        opts += ["-l", _check_value(f"{key}={value}" if value != "" else key)]
    if res.skip_directives:
        opts = _skip_options(opts, res.skip_directives)
    return opts + list(res.directives or [])


def _skip_options(opts: list[str], skip: Sequence[str]) -> list[str]:
    """``opts`` without the options (flag and its values) whose text contains one of ``skip``;
    lxr's own name and log options stay."""
    groups: list[list[str]] = []
    for item in opts:
        if item.startswith("-") or not groups:
            groups.append([item])
        else:
            groups[-1].append(item)
    protected = {"-N", "-o", "-e"}
    return [
        item
        for group in groups
        if group[0] in protected or not any(s in " ".join(group) for s in skip)
        for item in group
    ]


def task_range(indexes: Sequence[int]) -> str:
    """``-t`` for the indexes: ``1-N`` (or ``first-last:step``); Grid Engine has no lists."""
    items = sorted(set(indexes))
    if not items:
        raise SubmitRejected("an array needs at least one task")
    if len(items) == 1:
        return f"{items[0]}-{items[0]}"
    step = items[1] - items[0]
    if items != list(range(items[0], items[-1] + 1, step)):
        raise SubmitRejected(f"Grid Engine arrays are ranges; indexes {items[:10]}... are not")
    return f"{items[0]}-{items[-1]}" + (f":{step}" if step != 1 else "")


def parse_qsub(res: CommandResult) -> str:
    """The job id ``qsub -terse`` printed (``10.1-10:1`` for an array, ``11``), or the error:
    :class:`SubmitRejected` when Grid Engine refused the job, else :class:`SchedulerError`."""
    return job_id_from(res, command="qsub", separator=".", transient=_TRANSIENT, rejected=_REJECTED)


def qdel_targets(targets: Iterable[tuple[str, int | None]]) -> str:
    """qdel's ``job_task_list`` for ``targets``: ``5.1-3,5.7,8`` (whole jobs by id)."""
    whole, per_job = group_targets(targets)
    items = sorted(whole, key=job_key)
    for job in sorted(per_job, key=job_key):
        for lo, hi in compress_ranges(per_job[job]):
            items.append(f"{job}.{lo}" if lo == hi else f"{job}.{lo}-{hi}")
    return ",".join(items)


def job_key(job: str) -> tuple[int, str]:
    """Job ids in numeric order."""
    return (int(job), job) if job.isdigit() else (0, job)
