"""What the controller reads from the store for one cycle: plain, frozen records.

These are the planner's inputs on the desired side; they carry no database session, so the
planner stays a pure function. Work units and attempts have slots: the controller's cache
holds 100k of each. They are :func:`frozen_record` classes: frozen for the type checker,
built without the runtime cost of a frozen dataclass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        return lambda f: f


from lxr.api.resources import Condition, ExperimentSpec

__all__ = [
    "FAILED_INDEXES_SHOWN",
    "AttemptRecord",
    "ExperimentRecord",
    "StatusRecord",
    "UpstreamRecord",
    "UpstreamUnit",
    "WorkUnitRecord",
    "frozen_record",
]

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def frozen_record(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True, slots=True)`` as the type checker sees it (assigning a field
    is an error there), built as a plain slotted dataclass that hashes as a frozen one: a
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` and costs
    ~5x, and the controller builds 100k-200k records and patches in a pass at scale."""
    return dataclass(slots=True, unsafe_hash=True)(cls)


#: status.failedIndexes lists at most this many (the smallest)
FAILED_INDEXES_SHOWN = 1000


@frozen_record
class AttemptRecord:
    """The attempt in flight for a work unit."""

    id: int
    number: int
    submission_id: int
    submission_tag: str
    submission_state: str  # Intent | Submitted | Failed
    submission_error: str | None
    job_id: str | None
    array_index: int
    phase: str
    state: str | None = None
    restarts: int = 0
    submit_time: float | None = None
    start_time: float | None = None
    last_seen: float | None = None
    cancel_requested_at: float | None = None


@frozen_record
class WorkUnitRecord:
    """A work unit that has not reached a terminal phase."""

    id: int
    index: int
    name: str
    phase: str
    failures: int = 0
    disruptions: int = 0
    next_attempt_after: float | None = None
    attempt_count: int = 0
    retry_reason: str | None = None
    active: AttemptRecord | None = None
    stop_requested: bool = False  # the user stopped this work unit alone (not the experiment)
    removed: bool = False  # a sweep edit dropped it: stop it (then delete it, unless Retain)
    #: factors (and caps) on its next attempts' resources, from failurePolicy scale rules
    resource_scale: Mapping[str, Any] | None = None
    message: str | None = None  # as last written (a waiting unit's unmet dependencies)


@dataclass(frozen=True)
class StatusRecord:
    """What an experiment's status is derived from (every work unit, terminal ones too), and
    the status as last written, so the plan writes only what changed."""

    counts: Mapping[str, int]  # work units per phase
    never_submitted: int  # work units with no attempt yet
    failed_indexes: tuple[int, ...]  # the smallest failed indexes (at most 1000)
    failed_message: str | None
    conditions: tuple[Condition, ...]
    written: Mapping[str, Any]  # phase, counts, failed_indexes, observed_generation, start/end


@dataclass(frozen=True)
class UpstreamUnit:
    """A work unit of an experiment others depend on: where it stands (terminal is final)."""

    index: int
    name: str
    phase: str
    started: bool = False  # an attempt of it started running (or it ended)
    args: Mapping[str, Any] | None = None  # read only for a SameArgs dependency


@dataclass(frozen=True)
class UpstreamRecord:
    """An experiment named in a ``dependsOn``, read for the dependents' plan (on any cluster)."""

    name: str
    cluster: str
    units: tuple[UpstreamUnit, ...] = ()


@dataclass(frozen=True)
class ExperimentRecord:
    """An experiment with its active work units, as one cycle sees it."""

    uid: str
    name: str
    cluster: str
    generation: int
    spec: ExperimentSpec
    #: ``spec.resources`` holds the cluster's defaults as recorded at apply (False: applied
    #: before they were recorded, the cluster's defaults at submission fill it in)
    resources_resolved: bool = False
    deleting: bool = False
    failed_reason: str | None = None
    failed_count: int = 0
    work_units: tuple[WorkUnitRecord, ...] = field(default_factory=tuple)
    #: the status inputs; without them (a plan of the work units alone) no status is planned
    status: StatusRecord | None = None
    #: experiments named by dependencies of work units not yet submitted (None: no such
    #: experiment); empty when none waits
    upstream: Mapping[str, UpstreamRecord | None] = field(default_factory=dict)
    #: index -> args of the work units not yet submitted, read only for a SameArgs dependency
    waiting_args: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    #: digests of the executable's artifacts recorded as staged on the cluster (status.artifacts)
    staged: frozenset[str] = frozenset()

    @property
    def artifacts_ready(self) -> bool:
        """Every artifact the work units need is on the cluster (or there is none)."""
        return all(a.digest in self.staged for a in self.spec.needed_artifacts)
