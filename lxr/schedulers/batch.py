"""What every batch scheduler driver shares (Slurm, Grid Engine, and plugins like them).

A batch scheduler runs lxr's job arrays on a cluster reached through a
:class:`~lxr.schedulers.transport.Transport`: lxr uploads a job directory and runs one submit
command, then watches the queue, asks accounting about what left it, and falls back on the
exit-code files the task launcher writes. :class:`BatchDriver` holds that common part:

- the *staging layout*: ``<stagingDir>/jobs/<tag>/`` per submission, and ``<byid>/<job id>``
  links the job script makes, so a job id alone leads to its exit codes;
- the *prepare probe*: one command for the remote ``$HOME`` (a relative ``stagingDir`` is made
  absolute: job scripts run wherever the scheduler starts them), the user and the cluster's
  UTC offset (schedulers print local times), run beside the scheduler's own config read;
- *submit*: render, then one round trip with the files and the submit command, and the
  classification of its answer (job id, a rejection, or an error that may pass);
- *cancel*: targets grouped per job, one command, "already gone" is not an error;
- *exit-file observation* and the *command count* of each snapshot.

A subclass supplies the scheduler's own words: how to render, the submit and cancel argv, and
how to read its queue and accounting (:meth:`observe_tasks`).
"""

from __future__ import annotations

import abc
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from lxr.api.resources import ClusterSpec, FailureReason
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
from lxr.schedulers.common import absolute_path, parse_utc_offset
from lxr.schedulers.transport import CommandResult, Transport

__all__ = [
    "JOB_NAME_PREFIX",
    "BatchDriver",
    "Observed",
    "exit_observation",
    "group_targets",
    "job_id_from",
    "missing_tasks",
]

log = logging.getLogger("lxr.schedulers")

#: every lxr job is named JOB_NAME_PREFIX + its submission tag
JOB_NAME_PREFIX = "lxr-"


def missing_tasks(
    jobs: Mapping[str, Iterable[int]], tasks: Mapping[tuple[str, int], object]
) -> dict[str, set[int]]:
    """The tasks of ``jobs`` that ``tasks`` does not hold, per job id."""
    out: dict[str, set[int]] = {}
    for job_id, indexes in jobs.items():
        gone = {i for i in indexes if (job_id, i) not in tasks}
        if gone:
            out[job_id] = gone
    return out


def group_targets(
    targets: Iterable[tuple[str, int | None]],
) -> tuple[list[str], dict[str, set[int]]]:
    """Cancel targets as whole jobs (sorted) and, for the other jobs, their task indexes."""
    targets = list(targets)
    whole = sorted({job for job, idx in targets if idx is None})
    per_job: dict[str, set[int]] = {}
    for job, idx in targets:
        if idx is not None and job not in whole:
            per_job.setdefault(job, set()).add(idx)
    return whole, per_job


def job_id_from(
    res: CommandResult,
    *,
    command: str,
    separator: str,
    transient: re.Pattern[str],
    rejected: re.Pattern[str],
) -> str:
    """The job id a submit command printed (the digits before ``separator`` on some line), or
    the error: :class:`SchedulerError` when it may pass (the command is missing, the daemon is
    unreachable: ``transient``), :class:`SubmitRejected` when the scheduler refused the job
    (``rejected``): the same job won't pass."""
    if res.ok:
        for line in res.stdout.splitlines():
            job = line.strip().split(separator, 1)[0]
            if job.isdigit():
                return job
        raise SchedulerError(f"{command} printed no job id: {res.describe()}")
    text = res.stderr + res.stdout
    if res.returncode in (126, 127) or transient.search(text):
        raise SchedulerError(res.describe())
    if rejected.search(text):
        raise SubmitRejected(res.describe())
    raise SchedulerError(res.describe())


def exit_observation(
    job_id: str, index: int, code: int, *, restarts: int = 0, message: str
) -> TaskObservation:
    """A finished task known only from the exit code its launcher wrote."""
    if code == 0:
        return TaskObservation(
            job_id, index, TaskPhase.SUCCEEDED, "EXIT_FILE", None, 0, restarts=restarts
        )
    return TaskObservation(
        job_id,
        index,
        TaskPhase.FAILED,
        "EXIT_FILE",
        FailureReason.ERROR,
        code,
        message,
        restarts=restarts,
    )


@dataclass
class Observed:
    """What :meth:`BatchDriver.observe_tasks` found."""

    tasks: dict[tuple[str, int], TaskObservation] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    held: set[tuple[str, int]] = field(default_factory=set)
    degraded: str | None = None


class BatchDriver(Driver):
    """The shared part of a batch scheduler's driver (see the module docstring)."""

    #: where job dirs are linked by job id, under the staging dir (one per scheduler: two
    #: schedulers may share a staging dir and hand out the same numbers)
    byid_name = "byid"
    #: the prepare probe also reads the remote user (``id -un``)
    probe_user = False
    #: scancel/qdel lines that mean "already gone": nothing left to cancel
    gone: re.Pattern[str] = re.compile(r"$^")

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        spec: ClusterSpec | None = None,
    ) -> None:
        super().__init__(cluster, transport, staging_dir, spec)
        self.user: str | None = None
        self.utc_offset = 0.0  # of the cluster's clock: schedulers print local times
        self._prepared = False
        self._degraded: str | None = None  # what the last snapshot said, to log changes only

    # ------------------------------------------------------------------ setup

    async def prepare(self) -> None:
        """Probe the remote home, user and clock, and read the scheduler's config, once (both
        at once, on two channels of one connection: prepare is on the cold path)."""
        if self._prepared:
            return
        results: dict[str, CommandResult] = {}

        async def run(key: str, argv: list[str]) -> None:
            results[key] = await self.transport.run(argv, rate_limited=False)

        fmt = "%s %s %s\\n" if self.probe_user else "%s %s\\n"
        args = '"$HOME" "$(id -un)" "$(date +%z)"' if self.probe_user else '"$HOME" "$(date +%z)"'
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "env", ["sh", "-c", f'printf "{fmt}" {args}'])
            if (config := self.config_command()) is not None:
                tg.start_soon(run, "config", config)
        res = results["env"]
        parts = res.stdout.strip().rsplit(" ", 2 if self.probe_user else 1)
        if not res.ok or len(parts) != (3 if self.probe_user else 2):
            what = "home and user" if self.probe_user else "home"
            raise SchedulerError(f"cannot read the remote {what}: {res.describe()}")
        home, offset = parts[0], parts[-1]
        if self.probe_user:
            self.user = parts[1]
        self.utc_offset = parse_utc_offset(offset)
        self.staging_dir = absolute_path(self.staging_dir, home)
        if "config" in results:
            self.apply_config(results["config"])
        self._prepared = True

    def config_command(self) -> list[str] | None:
        """The command that prints the scheduler's configuration (None: there is none)."""
        return None

    def apply_config(self, res: CommandResult) -> None:  # optional hook
        """Read limits from the output of :meth:`config_command`."""

    def byid_dir(self) -> str:
        """Where each job's dir is linked under its job id."""
        return f"{self.staging_dir}/{self.byid_name}"

    # ------------------------------------------------------------------ submit

    @abc.abstractmethod
    def render(self, job: ArrayJob) -> tuple[dict[str, bytes], list[str]]:
        """The files to upload and the submit argv for ``job``."""

    @abc.abstractmethod
    def parse_submit(self, res: CommandResult) -> str:
        """The job id of a submission (see :func:`job_id_from`)."""

    async def submit(self, job: ArrayJob) -> str:
        files, argv = self.render(job)
        # one round trip over SSH: the files travel with the submit command
        # mode 0600: the task table holds env values
        res = await self.transport.run_with_files(files, argv, mode=0o600, timeout=120.0)
        return self.parse_submit(res)

    # ------------------------------------------------------------------ observe

    @abc.abstractmethod
    async def observe_tasks(self, query: ObserveQuery) -> Observed:
        """Every lxr task in the queue, and those of ``query`` that left it."""

    async def observe(self, query: ObserveQuery) -> Snapshot:
        if not self._prepared:
            await self.prepare()
        calls = self.transport.calls
        now = time.time()
        found = await self.observe_tasks(query)
        if query.gangs:
            await self.read_rank_exits(found.tasks, query)
        if found.degraded != self._degraded:
            if found.degraded:
                log.warning("cluster %s: %s", self.cluster, found.degraded)
            else:
                log.info("cluster %s: observation is complete again", self.cluster)
            self._degraded = found.degraded
        return Snapshot(
            self.cluster,
            now,
            found.tasks,
            found.tags,
            self.transport.calls - calls,
            held=frozenset(found.held),
            degraded=found.degraded,
        )

    async def read_exit_files(
        self, missing: Mapping[str, Iterable[int]]
    ) -> dict[tuple[str, int], TaskObservation]:
        """Exit codes the task launcher wrote, for tasks neither the queue nor accounting
        reports: one command for all of them."""
        paths = {
            f"{self.byid_dir()}/{job_id}/exit/{idx}": (job_id, idx)
            for job_id, indexes in sorted(missing.items())
            for idx in sorted(indexes)
        }
        # grep prints path:content for every file that exists and skips the others (-s)
        res = await self.transport.run(["grep", "-s", "-H", "", *paths])
        if res.returncode not in (0, 1, 2):
            raise SchedulerError(res.describe())
        found: dict[tuple[str, int], TaskObservation] = {}
        for line in res.stdout.splitlines():
            path, _, content = line.rpartition(":")
            key = paths.get(path)
            content = content.strip()
            if key is None or not content.lstrip("-").isdigit():
                continue
            found[key] = exit_observation(
                *key, int(content), message="from the exit-code file (no accounting record)"
            )
        return found

    async def read_rank_exits(
        self, tasks: dict[tuple[str, int], TaskObservation], query: ObserveQuery
    ) -> None:
        """Each rank's exit code, for the tasks of several ranks that ended or run (the rank
        launcher writes ``ranks/<index>/<rank>``: the code and when it ended), in one command;
        the rank that ended non-zero first is the one that failed. Of a running task, the
        ranks that ended so far: one that failed while the others run on is a broken gang."""
        ended = {
            f"{self.byid_dir()}/{job}/ranks/{idx}": (job, idx)
            for (job, idx), obs in sorted(tasks.items())
            if job in query.gangs
            and idx in query.jobs.get(job, ())
            and (obs.phase.finished or obs.phase is TaskPhase.RUNNING)
        }
        if not ended:
            return
        res = await self.transport.run(["grep", "-r", "-s", "-H", "", *ended])
        if res.returncode not in (0, 1, 2):
            raise SchedulerError(res.describe())
        found: dict[tuple[str, int], dict[int, tuple[int, float]]] = {}
        for line in res.stdout.splitlines():
            path, _, content = line.partition(":")
            directory, _, rank = path.rpartition("/")
            words = content.split()
            key = ended.get(directory)
            if key is None or not rank.isdigit() or len(words) != 2:
                continue
            try:
                found.setdefault(key, {})[int(rank)] = (int(words[0]), float(words[1]))
            except ValueError:
                continue
        for key, ranks in found.items():
            size = max(query.gangs[key[0]], max(ranks) + 1)
            failed = [(t, r) for r, (code, t) in ranks.items() if code != 0]
            tasks[key] = tasks[key]._replace(
                rank_exit_codes=tuple(ranks[r][0] if r in ranks else None for r in range(size)),
                first_failed_rank=min(failed)[1] if failed else None,
                first_failure_time=min(failed)[0] if failed else None,
            )

    # ------------------------------------------------------------------ cancel

    @abc.abstractmethod
    def cancel_argv(self, whole: Sequence[str], per_job: Mapping[str, set[int]]) -> list[str]:
        """The one command that cancels these jobs and tasks."""

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        """One command for every target; tasks already gone are not an error."""
        whole, per_job = group_targets(targets)
        if not whole and not per_job:
            return
        res = await self.transport.run(self.cancel_argv(whole, per_job))
        if not res.ok:
            lines = (res.stdout + "\n" + res.stderr).splitlines()
            if [ln for ln in lines if ln.strip() and not self.gone.search(ln)]:
                raise SchedulerError(res.describe())
