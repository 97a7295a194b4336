"""The scheduler seam: what every driver (local, Slurm, Grid Engine) provides to the reconciler.

A driver renders and submits job arrays, observes *all* of lxr's jobs on its cluster in one
snapshot per cycle, and cancels. It talks to the cluster only through a
:class:`~lxr.schedulers.transport.Transport`, so the same driver runs on a login node or over SSH.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from lxr.api.phases import TaskPhase
from lxr.api.resources import ClusterSpec, EnvSource, FailureReason, Resources
from lxr.schedulers.programs import ProgramCheck
from lxr.schedulers.transport import Transport

__all__ = [
    "ArrayJob",
    "Driver",
    "JobComponent",
    "LogPaths",
    "ObserveQuery",
    "SchedulerError",
    "Snapshot",
    "SubmitRejected",
    "TaskObservation",
    "TaskPhase",
    "TaskSpec",
]


class TaskObservation(NamedTuple):
    """One array task as the scheduler reports it. (A named tuple, not a dataclass: the
    controller compares each task with its last observation every cycle, and a tuple's
    comparison runs in C, ~10x faster at 100k tasks.)"""

    job_id: str
    array_index: int
    phase: TaskPhase
    state: str  # the scheduler's own word (PENDING, r, Eqw, ...)
    reason: FailureReason | None = None
    exit_code: int | None = None
    message: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    restarts: int = 0
    #: a task of several ranks that ended: each rank's exit code (None: it wrote none)
    rank_exit_codes: tuple[int | None, ...] | None = None
    #: the rank that ended non-zero first, if one did
    first_failed_rank: int | None = None
    #: when that rank ended (the cluster's clock, UNIX seconds)
    first_failure_time: float | None = None


@dataclass(frozen=True)
class ObserveQuery:
    """What the controller needs to know about, beyond what is in the queue.

    ``jobs`` maps each job id lxr has in flight to the array indexes it waits on: tasks that
    left the queue are looked up in accounting (one call for all of them). ``intents`` are tags
    of submissions recorded but not confirmed: a job carrying such a tag is adopted. ``gangs``
    maps the jobs of several ranks per task to that number (the ranks' exit codes are read
    once a task ends).
    """

    jobs: Mapping[str, frozenset[int]] = field(default_factory=dict)
    intents: frozenset[str] = frozenset()
    #: jobs of ``jobs`` whose tasks run several ranks: a task that ended also reports the
    #: exit code of each rank
    gangs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """One observation of a cluster: every lxr task the scheduler knows about."""

    cluster: str
    time: float
    tasks: Mapping[tuple[str, int], TaskObservation]
    tags: Mapping[str, str] = field(default_factory=dict)  # tag -> job id
    commands: int = 0  # scheduler commands this observation cost
    #: tasks that ended for lxr (reported Failed) yet keep their place in the queue until
    #: deleted, such as Grid Engine's ``Eqw``: the plan cancels them, observing never does
    held: frozenset[tuple[str, int]] = frozenset()
    #: why this observation is less complete than usual (accounting unreachable: finished
    #: tasks were read from the queue and the exit-code files only), None when it is complete
    degraded: str | None = None
    #: programs work units need (runtimes, interpreters) that ``looked_up_on`` lacks: work
    #: units needing one are not submitted (reason RuntimeMissing)
    missing_programs: frozenset[str] = frozenset()
    looked_up_on: str = ""

    def task(self, job_id: str, array_index: int) -> TaskObservation | None:
        """The task, if the scheduler reported it."""
        return self.tasks.get((job_id, array_index))


@dataclass(frozen=True)
class TaskSpec:
    """One task of an array: its index in the array and what it runs (argv, never a shell line)."""

    array_index: int
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    work_unit: int = 0
    attempt: int = 1
    env_from: Sequence[EnvSource] = ()  # resolved by the launcher when the task starts


@dataclass(frozen=True)
class JobComponent:
    """One co-scheduled part of every task of a job (a component of a heterogeneous job):
    its resources and what it runs, one entry per task of the job (same array indexes)."""

    name: str
    resources: Resources
    tasks: Sequence[TaskSpec]


@dataclass(frozen=True)
class ArrayJob:
    """One job array to submit. ``tag`` is unique and recorded before submission. With
    ``components``, each task is those parts run side by side (``tasks`` is then the first
    part's, and a scheduler submits one task per job)."""

    tag: str
    experiment: str
    experiment_uid: str
    tasks: Sequence[TaskSpec]
    resources: Resources
    throttle: int | None = None
    scheduler_requeue: bool = False
    components: Sequence[JobComponent] = ()


@dataclass(frozen=True)
class LogPaths:
    """Where a task's output lands on the cluster."""

    stdout: str
    stderr: str


class SchedulerError(Exception):
    """A scheduler command failed in a way that may pass (daemon down, connection lost)."""


class SubmitRejected(SchedulerError):
    """The scheduler refused the job (bad partition, bad resources): the same job won't pass."""


class Driver(abc.ABC):
    """A scheduler driver. One instance per cluster; all I/O goes through ``transport``."""

    #: the scheduler's name in ``Cluster.spec.scheduler`` (its plugin's name)
    scheduler: str = ""

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        spec: ClusterSpec | None = None,
    ) -> None:
        self.cluster = cluster
        self.transport = transport
        self.staging_dir = staging_dir
        #: the Cluster's spec; its scheduler options are ``spec.options``
        self.spec = spec if spec is not None else ClusterSpec(scheduler=self.scheduler)
        #: the programs the cluster has and lacks (``command -v``, cached)
        self.programs = ProgramCheck(transport)
        #: the absolute ``<stagingDir>/blobs`` on the cluster, once a staging check printed it
        self.blobs_root: str | None = None

    async def prepare(self) -> None:  # noqa: B027 - optional hook
        """Called once before first use (read limits, create the staging dir)."""

    @property
    def max_array_size(self) -> int:
        """The largest array one submission may hold."""
        return 10_000

    def array_indexes(self, work_unit_indexes: Sequence[int]) -> list[int]:
        """The array index each work unit gets in one submission (default: 1..N, dense)."""
        return list(range(1, len(work_unit_indexes) + 1))

    def job_dir(self, tag: str) -> str:
        """Where a submission's files live on the cluster."""
        return f"{self.staging_dir}/jobs/{tag}"

    def log_paths(
        self, tag: str, array_index: int, rank: int | None = None, component: str | None = None
    ) -> LogPaths:
        """Where the task's stdout and stderr go (``rank``: one rank's, of a task of several;
        ``component``: of that part of a heterogeneous job, rank 0 unless given)."""
        base = f"{self.job_dir(tag)}/logs/{array_index}"
        if component is not None:
            base += f".{component}.rank{rank or 0}"
        elif rank is not None:
            base += f".rank{rank}"
        return LogPaths(stdout=f"{base}.out", stderr=f"{base}.err")

    @abc.abstractmethod
    async def submit(self, job: ArrayJob) -> str:
        """Submit ``job`` as one array; return the scheduler's job id.

        Raises :class:`SubmitRejected` when the scheduler refuses the job and
        :class:`SchedulerError` when it could not be reached.
        """

    @abc.abstractmethod
    async def observe(self, query: ObserveQuery) -> Snapshot:
        """All of lxr's tasks on this cluster, in a number of commands that does not grow with
        the number of tasks."""

    @abc.abstractmethod
    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        """Cancel tasks (``(job_id, array_index)``) or whole jobs (``(job_id, None)``) at once."""

    async def close(self) -> None:
        """Release connections."""
        await self.transport.close()
