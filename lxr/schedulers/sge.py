"""Sun / Son of Grid Engine: one ``qsub -t`` per submission, one ``qstat -xml`` per cycle,
``qacct`` only for what left the queue, exit-code files when there is no accounting.

Grid Engine arrays are ranges (``-t first-last:step``), so every submission gets dense array
indexes 1..N (the driver default) and resubmitting sparse work units is still one
``qsub -t 1-N``. Jobs are named ``lxr-<tag>`` (the tag is recorded before ``qsub`` runs): a
submission whose job id was never recorded is found by that name, in qstat or in qacct.

By default lxr owns retries and submits with ``-r n``. A task rescheduled anyway (``qmod -f
-rj``, a lost execution host) is rerun by Grid Engine with ``RESTARTED=1``: the job script then
exits at once with :data:`RERUN_DECLINED_EXIT`, accounting holds a ``failed 25`` record followed
by that exit, and the task is reported ``Failed`` with reason ``Rescheduled`` (a disruption: lxr
resubmits it without spending the failure budget). With ``requeue: Scheduler`` jobs are
submitted ``-r y`` and a rescheduled task is reported ``Queued``/``Running`` with a restart.

Facts this module relies on, observed on Grid Engine 8.1.9 (tests/fixtures/sge/README.md):
qstat shows running array tasks one element each and pending ones as ranges (``3-10:1``, ``9,10``);
its times are the cluster's local time; ``qstat -j`` prints an ``error reason <task>:`` line per
task in Eqw; ``qacct -j`` takes one job id or name (a later ``-j`` replaces an earlier one, a
comma list reads only the first) and prints one record per task *run*; ``failed`` is
``N : text``; tasks deleted before they ran have no record.
"""

from __future__ import annotations

import re
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lxr.api.resources import ClusterSpec, FailureReason, Resources, parse_memory_mib
from lxr.schedulers.base import (
    ArrayJob,
    Driver,
    ObserveQuery,
    SchedulerError,
    Snapshot,
    SubmitRejected,
    TaskObservation,
    TaskPhase,
)
from lxr.schedulers.common import (
    absolute_path,
    compress_ranges,
    expand_ranges,
    hms,
    local_timestamp,
    parse_utc_offset,
)
from lxr.schedulers.jobscript import job_files, render_template
from lxr.schedulers.transport import CommandResult, Transport

__all__ = [
    "FAILED_CODES",
    "JOB_NAME_PREFIX",
    "QACCT_FIELDS",
    "RERUN_DECLINED_EXIT",
    "STATES",
    "QacctRecord",
    "QstatTask",
    "SGEDriver",
    "accounting_observation",
    "parse_qacct",
    "parse_qstat_errors",
    "parse_qstat_xml",
    "parse_qsub",
    "qdel_targets",
    "qstat_observation",
    "qsub_options",
    "state_phase",
]

#: every lxr job is named JOB_NAME_PREFIX + its submission tag
JOB_NAME_PREFIX = "lxr-"

#: the job script's exit code when it declines a rerun Grid Engine started on its own
RERUN_DECLINED_EXIT = 96

#: qacct lines lxr reads (the rest of each ~45-line record is filtered out on the cluster)
QACCT_FIELDS = (
    "jobname",
    "jobnumber",
    "taskid",
    "failed",
    "exit_status",
    "start_time",
    "end_time",
    "ru_wallclock",
    "category",
)

#: Grid Engine's own default of ``max_aj_tasks``; 0 in the config means unlimited
_DEFAULT_MAX_AJ_TASKS = 75_000
_UNLIMITED_ARRAY = 1_000_000

_Q, _R, _F = TaskPhase.QUEUED, TaskPhase.RUNNING, TaskPhase.FAILED

#: qstat ``<state>`` -> lxr phase. ``R`` (restarted) adds a restart; suspension (``s`` by a
#: user, ``S`` by a subordinate queue, ``T`` by a threshold) is not a failure: the task keeps
#: its slot and resumes. ``d`` (being deleted) stays Running until the task is gone. States
#: not listed are classified by their letters (:func:`state_phase`).
STATES: dict[str, TaskPhase] = {
    "qw": _Q,
    "hqw": _Q,
    "hRwq": _Q,
    "Rq": _Q,
    "hRq": _Q,
    "r": _R,
    "t": _R,
    "Rr": _R,
    "Rt": _R,
    "s": _R,
    "S": _R,
    "T": _R,
    "Rs": _R,
    "RS": _R,
    "RT": _R,
    "dr": _R,
    "dt": _R,
    "dRr": _R,
    "dRt": _R,
    "ds": _R,
    "dS": _R,
    "dT": _R,
    "Eqw": _F,
    "Ehqw": _F,
    "EhRqw": _F,
}

#: qacct ``failed`` codes (besides 0) -> reason. Failures of the execution host or of the job's
#: setup on it are NodeFail (a disruption); a job whose own spec cannot work (output file,
#: shell, working directory) is SubmitError. 37 is refined by :func:`accounting_observation`.
FAILED_CODES: dict[int, FailureReason] = {
    25: FailureReason.RESCHEDULED,  # rescheduling (qmod -rj, host lost with -r y)
    26: FailureReason.SUBMIT_ERROR,  # opening input/output file
    27: FailureReason.SUBMIT_ERROR,  # searching requested shell
    28: FailureReason.SUBMIT_ERROR,  # changing to working directory
    37: FailureReason.TIMEOUT,  # qmaster enforced h_rt, h_cpu, or h_vmem limit
    100: FailureReason.CANCELLED,  # assumedly after job: killed by a signal -> phase Cancelled
}

#: qsub errors that may pass on their own: the cluster is retried, the job is not failed
_TRANSIENT = re.compile(
    r"commlib error|unable to contact qmaster|unable to send message to qmaster|"
    r"error reading answer list from qmaster|failed receiving gdi request|"
    r"Connection refused|timed out|cannot connect|"
    r"only \d+ jobs are allowed|max_u_jobs|max_jobs",
    re.IGNORECASE,
)
#: qdel complaints about tasks that are already gone or going: nothing left to cancel
_GONE = re.compile(
    r"does not exist|already in deletion|has registered|has deleted|^\s*$|"
    r"Following jobs do not exist|^\s*[\d, ]+\s*$",
    re.IGNORECASE,
)
_QSTAT_TIME = "%Y-%m-%dT%H:%M:%S"
_QACCT_TIME = "%a %b %d %H:%M:%S %Y"
_ERROR_REASON = re.compile(r"^error reason\s+(\d+):\s*(.*)$")
_SGE_TIMESTAMP = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d \[[\d:]+\]:\s*")


# ---------------------------------------------------------------------------- qstat


@dataclass(frozen=True)
class QstatTask:
    """One array task as ``qstat -xml`` reports it (pending ranges expanded)."""

    job_id: str
    array_index: int
    name: str
    state: str
    start_time: float | None = None
    submit_time: float | None = None


def parse_qstat_xml(text: str, utc_offset: float = 0.0) -> list[QstatTask]:
    """Every task of ``qstat -u USER -xml`` (with or without ``-g d``). A job without
    ``<tasks>`` (not an array) is task 1, as Grid Engine numbers it internally."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SchedulerError(f"qstat -xml printed no XML: {exc}: {text[:200]!r}") from exc
    out: list[QstatTask] = []
    for el in root.iter("job_list"):
        job_id = (el.findtext("JB_job_number") or "").strip()
        if not job_id:
            continue
        tasks = (el.findtext("tasks") or "").strip()
        start = el.findtext("JAT_start_time")
        submit = el.findtext("JB_submission_time")
        for idx in expand_ranges(tasks) if tasks else [1]:
            out.append(
                QstatTask(
                    job_id=job_id,
                    array_index=idx,
                    name=(el.findtext("JB_name") or "").strip(),
                    state=(el.findtext("state") or "").strip(),
                    start_time=local_timestamp(start, _QSTAT_TIME, utc_offset) if start else None,
                    submit_time=(
                        local_timestamp(submit, _QSTAT_TIME, utc_offset) if submit else None
                    ),
                )
            )
    return out


def state_phase(state: str) -> tuple[TaskPhase, int]:
    """``(phase, restarts)`` for a qstat state, by :data:`STATES` or else by its letters:
    ``E`` error -> Failed; running, transferring or suspended -> Running; else Queued."""
    restarts = 1 if "R" in state else 0
    phase = STATES.get(state)
    if phase is None:
        if "E" in state:
            phase = _F
        elif any(c in state for c in "rtsST"):
            phase = _R
        else:
            phase = _Q
    return phase, restarts


def qstat_observation(task: QstatTask, error: str | None = None) -> TaskObservation:
    """What lxr makes of one qstat task; ``error`` is the Eqw reason from ``qstat -j``."""
    phase, restarts = state_phase(task.state)
    if phase is _F:
        return TaskObservation(
            task.job_id,
            task.array_index,
            phase,
            task.state,
            FailureReason.SUBMIT_ERROR,
            None,
            error or f"Grid Engine put the task in error state ({task.state})",
            restarts=restarts,
        )
    message = None
    if phase is _R and any(c in task.state for c in "sST"):
        message = "suspended"
    elif "h" in task.state:
        message = "on hold"
    return TaskObservation(
        task.job_id,
        task.array_index,
        phase,
        task.state,
        message=message,
        start_time=task.start_time if phase is _R else None,
        restarts=restarts,
    )


def parse_qstat_errors(text: str) -> dict[tuple[str, int], str]:
    """The ``error reason <task>:`` lines of ``qstat -j ID[,ID...]``, per (job id, task),
    without Grid Engine's timestamp prefix."""
    out: dict[tuple[str, int], str] = {}
    job_id = ""
    for line in text.splitlines():
        if line.startswith("job_number:"):
            job_id = line.partition(":")[2].strip()
            continue
        m = _ERROR_REASON.match(line)
        if m and job_id:
            out[(job_id, int(m.group(1)))] = _SGE_TIMESTAMP.sub("", m.group(2).strip())
    return out


# ---------------------------------------------------------------------------- qacct


@dataclass(frozen=True)
class QacctRecord:
    """One task run as ``qacct -j`` reports it."""

    job_id: str
    array_index: int
    name: str
    failed: int
    failed_text: str
    exit_status: int
    start_time: float | None = None
    end_time: float | None = None
    wallclock: float | None = None
    category: str = ""


def _leading_int(value: str) -> int:
    m = re.match(r"\s*(-?\d+)", value)
    return int(m.group(1)) if m else 0


def _seconds(value: str) -> float | None:
    m = re.match(r"\s*([\d.]+)s?\s*$", value)
    return float(m.group(1)) if m else None


def parse_qacct(text: str, utc_offset: float = 0.0) -> list[QacctRecord]:
    """Records of ``qacct -j`` output (whole, or filtered to :data:`QACCT_FIELDS`), in file
    order: a task's runs appear oldest first. ``taskid undefined`` (not an array) is task 1."""
    records: list[QacctRecord] = []

    def flush(fields: dict[str, str]) -> None:
        job = fields.get("jobnumber", "").strip()
        if not job or "failed" not in fields:
            return
        task = fields.get("taskid", "").strip()
        failed = fields["failed"]
        records.append(
            QacctRecord(
                job_id=job,
                array_index=int(task) if task.isdigit() else 1,
                name=fields.get("jobname", "").strip(),
                failed=_leading_int(failed),
                failed_text=failed.partition(":")[2].strip(),
                exit_status=_leading_int(fields.get("exit_status", "0")),
                start_time=local_timestamp(fields.get("start_time", ""), _QACCT_TIME, utc_offset),
                end_time=local_timestamp(fields.get("end_time", ""), _QACCT_TIME, utc_offset),
                wallclock=_seconds(fields.get("ru_wallclock", "")),
                category=fields.get("category", "").strip(),
            )
        )

    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("=="):
            flush(fields)
            fields = {}
            continue
        key, _, value = line.partition(" ")
        if key:
            fields[key] = value.strip()
    flush(fields)
    return records


def _limits(category: str) -> dict[str, str]:
    """The ``-l`` requests of a qacct ``category`` (``-l h_rt=5,h_vmem=200M -q all.q``)."""
    out: dict[str, str] = {}
    words = category.split()
    for flag, value in zip(words, words[1:], strict=False):
        if flag == "-l":
            for item in value.split(","):
                key, _, val = item.partition("=")
                out[key] = val
    return out


def _rt_seconds(value: str) -> float | None:
    if ":" in value:
        parts = [float(p or 0) for p in value.split(":")]
        total = 0.0
        for p in parts:
            total = total * 60 + p
        return total
    try:
        return float(value)
    except ValueError:
        return None


def accounting_observation(runs: Sequence[QacctRecord]) -> TaskObservation:
    """One finished task from its accounting records (oldest run first): the last run decides,
    earlier runs (rescheduled, ``failed 25``) count as restarts."""
    last = runs[-1]
    restarts = sum(1 for r in runs[:-1] if r.failed == 25)
    reason: FailureReason | None
    phase = TaskPhase.FAILED
    exit_code: int | None = last.exit_status
    message: str | None = None
    state = f"failed={last.failed}"
    if last.failed == 0:
        state = f"exit_status={last.exit_status}"
        if last.exit_status == RERUN_DECLINED_EXIT and restarts:
            reason, exit_code = FailureReason.RESCHEDULED, None
            message = "Grid Engine rescheduled the task; lxr resubmits it"
        elif last.exit_status == 0:
            phase, reason = TaskPhase.SUCCEEDED, None
        else:
            reason = FailureReason.ERROR
    else:
        reason = FAILED_CODES.get(last.failed, FailureReason.NODE_FAIL)
        message = f"failed {last.failed}" + (f": {last.failed_text}" if last.failed_text else "")
        if last.failed == 37:
            limits = _limits(last.category)
            rt = _rt_seconds(limits.get("h_rt", "")) if "h_rt" in limits else None
            hit_rt = rt is not None and (last.wallclock or 0) >= rt - 1
            if "h_vmem" in limits and not hit_rt and "h_cpu" not in limits:
                reason = FailureReason.OUT_OF_MEMORY
        elif last.failed == 100:
            # killed from outside the launcher (qdel by lxr or a person): the planner knows
            # whether lxr asked for it
            phase, reason = TaskPhase.CANCELLED, None
            if last.exit_status > 128:
                message = f"killed by signal {last.exit_status - 128} (failed 100)"
        elif last.failed == 25:
            exit_code = None
        elif reason is FailureReason.NODE_FAIL:
            exit_code = None
    return TaskObservation(
        last.job_id,
        last.array_index,
        phase,
        state,
        reason,
        exit_code,
        message,
        last.start_time,
        last.end_time,
        restarts,
    )


# ---------------------------------------------------------------------------- qsub


def _memory_per_slot(memory: str, slots: int) -> str:
    # h_vmem is per slot: Grid Engine multiplies it by the slots of a -pe job
    mib = parse_memory_mib(memory)
    return f"{-(-mib // max(1, slots))}M"


def _check_value(value: str) -> str:
    if any(c.isspace() for c in value) or "," in value:
        raise SubmitRejected(f"Grid Engine cannot take {value!r} in a -l request or a name")
    return value


def qsub_options(job: ArrayJob, job_dir: str, spec: ClusterSpec) -> list[str]:
    """The qsub options of ``job`` (everything but ``-t``, ``-tc`` and the script)."""
    res: Resources = job.resources
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
    slots = res.cpus or 1
    if slots > 1:
        opts += ["-pe", spec.parallel_environment, str(slots)]
    if res.memory is not None:
        opts += ["-l", f"h_vmem={_memory_per_slot(res.memory, slots)}"]
    if res.time_limit_seconds is not None:
        opts += ["-l", f"h_rt={hms(res.time_limit_seconds)}"]
    if res.gpus:
        opts += ["-l", f"{spec.gpu_resource}={res.gpus}"]
    queue = res.queue or res.partition
    if queue:
        opts += ["-q", _check_value(queue)]
    if res.project:
        opts += ["-P", _check_value(res.project)]
    if res.account:
        opts += ["-A", _check_value(res.account)]
    for key, value in sorted(res.extra.items()):
        opts += ["-l", _check_value(f"{key}={value}" if value != "" else key)]
    return opts


def _task_range(indexes: Sequence[int]) -> str:
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
    if res.ok:
        for line in res.stdout.splitlines():
            job = line.strip().split(".", 1)[0]
            if job.isdigit():
                return job
        raise SchedulerError(f"qsub printed no job id: {res.describe()}")
    text = res.stderr + res.stdout
    if res.returncode in (126, 127) or _TRANSIENT.search(text):
        raise SchedulerError(res.describe())
    if "Unable to run job" in text or "rejected" in text or "error:" in text:
        raise SubmitRejected(res.describe())
    raise SchedulerError(res.describe())


def qdel_targets(targets: Iterable[tuple[str, int | None]]) -> str:
    """qdel's ``job_task_list`` for ``targets``: ``5.1-3,5.7,8`` (whole jobs by id)."""
    whole = {job for job, idx in targets if idx is None}
    per_job: dict[str, set[int]] = {}
    for job, idx in targets:
        if idx is not None and job not in whole:
            per_job.setdefault(job, set()).add(idx)
    items = sorted(whole, key=_job_key)
    for job in sorted(per_job, key=_job_key):
        for lo, hi in compress_ranges(per_job[job]):
            items.append(f"{job}.{lo}" if lo == hi else f"{job}.{lo}-{hi}")
    return ",".join(items)


def _job_key(job: str) -> tuple[int, str]:
    return (int(job), job) if job.isdigit() else (0, job)


# ---------------------------------------------------------------------------- the driver

#: one command for every task that left the queue and every unconfirmed submission. stdin has
#: ``job ID INDEX`` and ``name NAME`` lines. A task's exit-code file (written by the launcher
#: when the program ended on its own) answers without accounting; qacct, which reads the whole
#: accounting file and takes one job per call, runs only for jobs with a task lacking one
#: (killed, rescheduled, never started) and for names. The loop runs on the cluster.
_LOOKUP_SCRIPT = r"""
byid=$1; fields=$2
declare -A acct=()
names=()
while read -r kind key idx; do
  case $kind in
    job) code= n=0
      [ -f "$byid/$key/exit/$idx" ] && read -r code < "$byid/$key/exit/$idx"
      if [ -f "$byid/$key/restarts/$idx" ]; then
        mapfile -t runs < "$byid/$key/restarts/$idx"; n=${#runs[@]}
      fi
      if [ -n "$code" ]; then echo "exit $key $idx $code $n"; else acct[$key]=1; fi ;;
    name) names+=("$key") ;;
  esac
done
for j in "${!acct[@]}" "${names[@]}"; do qacct -j "$j" 2>/dev/null | grep -E "$fields"; done
exit 0
"""


class SGEDriver(Driver):
    """Runs tasks as Grid Engine array jobs, on the login node or over SSH."""

    scheduler = "sge"

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        spec: ClusterSpec | None = None,
    ) -> None:
        super().__init__(cluster, transport, staging_dir)
        self.spec = spec or ClusterSpec(scheduler="sge")
        self.user: str | None = None
        self.utc_offset = 0.0  # of the cluster's clock: qstat and qacct print local times
        self._max_array = _DEFAULT_MAX_AJ_TASKS
        self._prepared = False

    # ------------------------------------------------------------------ setup

    async def prepare(self) -> None:
        """Make the staging dir absolute (job scripts run wherever Grid Engine starts them),
        learn the remote user and clock offset, and read ``max_aj_tasks`` once."""
        if self._prepared:
            return
        res = await self.transport.run(
            ["sh", "-c", 'printf "%s %s %s\\n" "$HOME" "$(id -un)" "$(date +%z)"'],
            rate_limited=False,
        )
        parts = res.stdout.strip().rsplit(" ", 2)
        if not res.ok or len(parts) != 3:
            raise SchedulerError(f"cannot read the remote home and user: {res.describe()}")
        home, self.user, offset = parts
        self.utc_offset = parse_utc_offset(offset)
        self.staging_dir = absolute_path(self.staging_dir, home)
        res = await self.transport.run(["qconf", "-sconf", "global"], rate_limited=False)
        if not res.ok:
            raise SchedulerError(f"cannot read the Grid Engine configuration: {res.describe()}")
        for line in res.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key == "max_aj_tasks" and value.strip().isdigit():
                limit = int(value.strip())
                self._max_array = limit if limit > 0 else _UNLIMITED_ARRAY
        self._prepared = True

    @property
    def max_array_size(self) -> int:
        """Tasks per array: the cluster's ``max_aj_tasks``."""
        return self._max_array

    def byid_dir(self) -> str:
        """Where each job's dir is linked under its Grid Engine job id (not shared with other
        schedulers' ids: a Slurm cluster may use the same staging dir and the same numbers)."""
        return f"{self.staging_dir}/sge-byid"

    # ------------------------------------------------------------------ submit

    def render(self, job: ArrayJob) -> tuple[dict[str, bytes], list[str]]:
        """The files to upload and the ``qsub`` argv for ``job``."""
        job_dir = self.job_dir(job.tag)
        script = render_template(
            "sge.sh.j2",
            tag=job.tag,
            experiment=job.experiment,
            ntasks=len(job.tasks),
            job_dir=shlex.quote(job_dir),
            byid_dir=shlex.quote(self.byid_dir()),
            lxr_owns_retries=not job.scheduler_requeue,
            rerun_declined_exit=RERUN_DECLINED_EXIT,
        )
        files = job_files(
            job,
            job_dir,
            {
                f"{job_dir}/job.sge": script.encode(),
                # a missing -o directory would put the job in Eqw
                f"{job_dir}/logs/.keep": b"",
            },
        )
        argv = ["qsub", "-terse", *qsub_options(job, job_dir, self.spec)]
        argv += ["-t", _task_range([t.array_index for t in job.tasks])]
        if job.throttle:
            argv += ["-tc", str(job.throttle)]
        argv.append(f"{job_dir}/job.sge")
        return files, argv

    async def submit(self, job: ArrayJob) -> str:
        files, argv = self.render(job)
        # one round trip over SSH: the files travel with the qsub command
        res = await self.transport.run_with_files(files, argv, timeout=120.0)
        return parse_qsub(res)

    # ------------------------------------------------------------------ observe

    async def observe(self, query: ObserveQuery) -> Snapshot:
        if not self._prepared:
            await self.prepare()
        calls = self.transport.calls
        now = time.time()
        res = await self.transport.run(["qstat", "-u", self.user or "", "-xml"])
        if not res.ok:
            raise SchedulerError(res.describe())
        queued = [
            t
            for t in parse_qstat_xml(res.stdout, self.utc_offset)
            if t.name.startswith(JOB_NAME_PREFIX)
        ]
        tags = {t.name[len(JOB_NAME_PREFIX) :]: t.job_id for t in queued}
        errors = await self._clear_errors([t for t in queued if state_phase(t.state)[0] is _F])
        tasks = {
            (t.job_id, t.array_index): qstat_observation(t, errors.get((t.job_id, t.array_index)))
            for t in queued
        }

        missing = _missing(query.jobs, tasks)
        lost_tags = sorted(t for t in query.intents if t not in tags)
        if missing or lost_tags:
            found, found_tags = await self._lookup(missing, lost_tags)
            for key, obs in found.items():
                tasks.setdefault(key, obs)
            for tag, job_id in found_tags.items():
                tags.setdefault(tag, job_id)
        return Snapshot(self.cluster, now, tasks, tags, self.transport.calls - calls)

    async def _clear_errors(self, failed: list[QstatTask]) -> dict[tuple[str, int], str]:
        """Eqw tasks: their error text (one ``qstat -j``), then delete them (one ``qdel``) so
        they do not linger; the planner decides about a retry."""
        if not failed:
            return {}
        jobs = sorted({t.job_id for t in failed}, key=_job_key)
        res = await self.transport.run(["qstat", "-j", ",".join(jobs)])
        errors = parse_qstat_errors(res.stdout) if res.ok else {}
        for t in failed:
            if (t.job_id, t.array_index) not in errors:
                # a non-array job's reason is numbered 1; otherwise take the job's first one
                same_job = [m for (j, _), m in errors.items() if j == t.job_id]
                if same_job:
                    errors[(t.job_id, t.array_index)] = same_job[0]
        try:
            await self.cancel([(t.job_id, t.array_index) for t in failed])
        except SchedulerError:
            pass  # still in Eqw next cycle: deleted then
        return errors

    async def _lookup(
        self, missing: Mapping[str, set[int]], tags: Sequence[str]
    ) -> tuple[dict[tuple[str, int], TaskObservation], dict[str, str]]:
        """Accounting (and exit files) for tasks gone from the queue, and jobs carrying
        unconfirmed tags: one command, whatever the number of jobs and tasks."""
        fields = "^(==|(" + "|".join(QACCT_FIELDS) + ") )"
        lines = [
            f"job {job} {idx}\n"
            for job in sorted(missing, key=_job_key)
            for idx in sorted(missing[job])
        ]
        lines += [f"name {JOB_NAME_PREFIX}{t}\n" for t in tags]
        res = await self.transport.run(
            ["bash", "-c", _LOOKUP_SCRIPT, "lxr-lookup", self.byid_dir(), fields],
            input="".join(lines).encode(),
            timeout=300.0,
        )
        if not res.ok:
            raise SchedulerError(res.describe())
        exit_codes: dict[tuple[str, int], tuple[int, int]] = {}  # -> (code, restarts)
        acct: list[str] = []
        for line in res.stdout.splitlines():
            words = line.split()
            if len(words) == 5 and words[0] == "exit" and words[2].isdigit():
                if words[3].lstrip("-").isdigit() and words[4].isdigit():
                    exit_codes[(words[1], int(words[2]))] = (int(words[3]), int(words[4]))
            else:
                acct.append(line)

        runs: dict[tuple[str, int], list[QacctRecord]] = {}
        found_tags: dict[str, str] = {}
        for rec in parse_qacct("\n".join(acct), self.utc_offset):
            runs.setdefault((rec.job_id, rec.array_index), []).append(rec)
            if rec.name.startswith(JOB_NAME_PREFIX):
                found_tags.setdefault(rec.name[len(JOB_NAME_PREFIX) :], rec.job_id)
        found = {key: accounting_observation(recs) for key, recs in runs.items()}
        for key, (code, restarts) in exit_codes.items():
            if key in found:
                continue  # accounting says more (times, Grid Engine's own failure codes)
            found[key] = TaskObservation(
                key[0],
                key[1],
                TaskPhase.SUCCEEDED if code == 0 else TaskPhase.FAILED,
                "EXIT_FILE",
                None if code == 0 else FailureReason.ERROR,
                code,
                None if code == 0 else "from the task's exit-code file",
                restarts=restarts,
            )
        return found, found_tags

    # ------------------------------------------------------------------ cancel

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        """One ``qdel`` for every target; tasks already gone are not an error."""
        job_tasks = qdel_targets(targets)
        if not job_tasks:
            return
        res = await self.transport.run(["qdel", job_tasks])
        if not res.ok:
            text = (res.stdout + "\n" + res.stderr).splitlines()
            problems = [ln for ln in text if not _GONE.search(ln)]
            if problems:
                raise SchedulerError(res.describe())


def _missing(
    jobs: Mapping[str, Iterable[int]], tasks: Mapping[tuple[str, int], object]
) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for job_id, indexes in jobs.items():
        gone = {i for i in indexes if (job_id, i) not in tasks}
        if gone:
            out[job_id] = gone
    return out
