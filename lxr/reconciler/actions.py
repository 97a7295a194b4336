"""What the planner asks the actor to do. Plain frozen records: the plan is data. (The patches
and submit entries, made per work unit, 100k of each in a pass at scale, are
:func:`~lxr.api.records.frozen_record` classes: frozen for the type checker, cheap to build.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lxr.api.phases import AttemptPhase, SubmissionState, WorkUnitPhase
from lxr.api.records import frozen_record

__all__ = [
    "Action",
    "AttemptPatch",
    "Cancel",
    "Event",
    "FailureHandled",
    "Finalize",
    "Resubmit",
    "RetryIntent",
    "SetStatus",
    "Submit",
    "SubmitEntry",
    "SubmittedArray",
    "UpdateStatus",
    "WorkUnitPatch",
]


@frozen_record
class WorkUnitPatch:
    """The new state of a work unit (all fields are written)."""

    id: int
    index: int
    phase: str
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    failures: int = 0
    disruptions: int = 0
    next_attempt_after: float | None = None
    retry_reason: str | None = None
    clear_active: bool = False
    #: factors (and caps) on the next attempts' resources (failurePolicy scale rules)
    resource_scale: Mapping[str, Any] | None = None


@frozen_record
class AttemptPatch:
    """The new state of an attempt (all fields are written)."""

    id: int
    phase: str
    job_id: str | None = None
    state: str | None = None
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    restarts: int = 0
    start_time: float | None = None
    end_time: float | None = None
    last_seen: float | None = None
    cancel_requested_at: float | None = None
    final: bool = False
    rank_exit_codes: tuple[int | None, ...] | None = None  # a work unit of several ranks
    first_failed_rank: int | None = None


@dataclass(frozen=True)
class Event:
    """Something worth telling the user (shown by ``lxr describe`` and ``lxr get events``)."""

    type: str  # Normal | Warning
    reason: str
    message: str
    kind: str = "Experiment"
    name: str = ""


@dataclass(frozen=True)
class FailureHandled:
    """One failed attempt and the policy action it got (for metrics)."""

    reason: str
    action: str


@dataclass(frozen=True)
class UpdateStatus:
    """Record what was observed and decided for one experiment."""

    experiment_uid: str
    work_units: tuple[WorkUnitPatch, ...] = ()
    attempts: tuple[AttemptPatch, ...] = ()
    adoptions: tuple[tuple[int, str], ...] = ()  # (submission id, job id)
    adopted_state: SubmissionState = SubmissionState.SUBMITTED  # what adopted submissions become
    events: tuple[Event, ...] = ()
    handled: tuple[FailureHandled, ...] = ()
    fail_experiment: tuple[str, str] | None = None  # (reason, message)
    #: work units a sweep edit removed that are now stopped: deleted with their attempts
    remove: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.work_units
            or self.attempts
            or self.adoptions
            or self.events
            or self.fail_experiment
            or self.remove
        )


@frozen_record
class SubmitEntry:
    """One work unit to start an attempt for."""

    work_unit_id: int
    index: int
    attempt: int  # the new attempt's number, from 1
    retry_reason: str | None = None
    #: the work unit's resource scale, sorted items: entries that differ go out as separate
    #: arrays, each with its own resources
    scale: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Submit:
    """Start first attempts for these work units, as one job array (split if too large). The
    intent is recorded with the work units in ``phase`` and their new attempts in
    ``attempt_phase`` (the ``Ready`` row of the state machine)."""

    experiment_uid: str
    entries: tuple[SubmitEntry, ...] = field(default_factory=tuple)
    phase: WorkUnitPhase = WorkUnitPhase.PENDING
    attempt_phase: AttemptPhase = AttemptPhase.PENDING


@dataclass(frozen=True)
class Resubmit(Submit):
    """Start new attempts for work units whose last attempt failed or was disrupted: exactly the
    affected indexes, packed into one array."""


@dataclass(frozen=True)
class RetryIntent:
    """Submit a recorded intent again: it never reached the scheduler (no job carries its tag)."""

    experiment_uid: str
    submission_id: int
    tag: str


@dataclass(frozen=True)
class Cancel:
    """Cancel these tasks (one scheduler call per cluster)."""

    experiment_uid: str
    targets: tuple[tuple[str, int], ...]
    attempt_ids: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class SetStatus:
    """Write the experiment's status as the plan derived it from its work units."""

    experiment_uid: str
    phase: str
    counts: dict[str, int]  # work units per phase, and "total"
    conditions: tuple[dict[str, Any], ...]  # as stored (JSON)
    failed_indexes: tuple[int, ...]
    observed_generation: int
    start_time: float | None
    completion_time: float | None
    finished: bool
    event: Event | None = None  # the experiment just finished


@dataclass(frozen=True)
class Finalize:
    """The experiment was deleted and none of its tasks is left: remove it (the finalizer)."""

    experiment_uid: str
    name: str
    cluster: str


@dataclass(frozen=True)
class SubmittedArray:
    """What a ``Submit`` wrote: one array the scheduler accepted, as the store now holds it,
    enough for the controller's cache to take the new attempts in without reading them back."""

    id: int  # the submission
    tag: str
    job_id: str
    #: (work unit id, new attempt id, attempt number, array index) per task
    tasks: tuple[tuple[int, int, int, int], ...]
    phase: str  # what the work units became (the Ready row)
    state: str  # what the submission became (the Accepted row)
    attempt_phase: str  # what the attempts became (the Accepted row)
    submitted_at: float  # their submit and last-seen time, as written


Action = UpdateStatus | Submit | Resubmit | RetryIntent | Cancel | SetStatus | Finalize
