"""Classification, the planner's first stage: a work unit's record and the snapshot become one
:class:`~lxr.api.phases.Event` (with what the row's effects need). Pure, no I/O.

An attempt in flight: rejected by the scheduler, an intent not (yet) confirmed, adopted by its
tag, or its task as the snapshot reports it (queued, running, succeeded, failed, cancelled by
someone else, ended after lxr cancelled it, unreported, gone, lost). A work unit with nothing in
flight: it must stop, waits out its backoff, waits for its dependencies (met, not yet, or
never), or is ready to be submitted.
"""

from __future__ import annotations

from typing import NamedTuple

from lxr.api.dependencies import FAILED_REASON
from lxr.api.phases import Event, SubmissionState, TaskPhase
from lxr.api.records import AttemptRecord, WorkUnitRecord
from lxr.api.resources import FailureReason
from lxr.reconciler.dependencies import Verdict, VerdictKind
from lxr.schedulers.base import Snapshot, TaskObservation

__all__ = [
    "GANG_GRACE_SECONDS",
    "LOST_AFTER_SECONDS",
    "TASK_EVENTS",
    "Seen",
    "classify_attempt",
    "classify_dependencies",
    "classify_idle",
]

LOST_AFTER_SECONDS = 120.0
#: how long the ranks of a gang may run on after one exited non-zero before lxr cancels the
#: allocation (the launcher ends them itself at once; this is the net below it)
GANG_GRACE_SECONDS = 60.0

#: a task still in the scheduler's hands -> (event, event when the work unit must stop)
TASK_EVENTS: dict[TaskPhase, tuple[Event, Event]] = {
    TaskPhase.QUEUED: (Event.TASK_QUEUED, Event.TASK_QUEUED_UNWANTED),
    TaskPhase.RUNNING: (Event.TASK_RUNNING, Event.TASK_RUNNING_UNWANTED),
}

_REJECTED = SubmissionState.FAILED.value


class Seen(NamedTuple):
    """What classification found for one work unit: the event and what the effects need.
    (A named tuple: one is made per work unit per cycle, and a frozen dataclass costs ~3x.)"""

    event: Event
    attempt: AttemptRecord | None = None
    task: TaskObservation | None = None
    job_id: str | None = None
    reason: str | None = None  # the attempt's end reason (a FailureReason value, or why stopped)
    message: str | None = None
    why: str | None = None  # why the work unit must stop, if it must


def classify_attempt(
    att: AttemptRecord, snap: Snapshot, why: str | None, now: float
) -> tuple[Seen | None, Seen]:
    """The work unit's attempt against the snapshot: ``(adoption, event)``.

    ``adoption`` is an ``Adopted`` event when a job carrying the intent's tag was found (the
    task is then classified under that job id); ``why`` is why the work unit must stop.
    """
    job_id = att.job_id
    adopted = None
    if job_id is None:
        if att.submission_state == _REJECTED:
            reason = FailureReason.SUBMIT_ERROR.value
            return None, Seen(Event.SUBMIT_REJECTED, att, None, None, reason, att.submission_error)
        job_id = snap.tags.get(att.submission_tag)
        if job_id is None:
            if why:
                return None, Seen(Event.INTENT_ABANDONED, att, reason=why, why=why)
            return None, Seen(Event.INTENT_UNCONFIRMED, att)
        adopted = Seen(Event.ADOPTED, att, None, job_id)
    obs = snap.tasks.get((job_id, att.array_index))
    if obs is None:
        seen = att.last_seen or att.submit_time or now
        if why and att.cancel_requested_at is not None:
            # lxr cancelled it and it is gone: nothing more will be learned about it
            return adopted, Seen(Event.TASK_GONE_AFTER_CANCEL, att, None, job_id, why, why=why)
        if now - seen > LOST_AFTER_SECONDS:
            message = f"the scheduler no longer reports task {job_id}[{att.array_index}]"
            reason = FailureReason.LOST.value
            return adopted, Seen(Event.TASK_LOST, att, None, job_id, reason, message)
        event = Event.TASK_UNREPORTED_UNWANTED if why else Event.TASK_UNREPORTED
        return adopted, Seen(event, att, None, job_id, None, None, why)
    in_flight = TASK_EVENTS.get(obs.phase)
    if in_flight is not None:
        if not why and obs.first_failed_rank is not None and _gang_broken(obs, snap.time):
            message = f"rank {obs.first_failed_rank} exited non-zero; the other ranks ran on"
            return adopted, Seen(Event.GANG_BROKEN, att, obs, job_id, None, message)
        # positionally (keywords cost more; one per task in flight per pass)
        event = in_flight[1] if why else in_flight[0]
        return adopted, Seen(event, att, obs, job_id, None, None, why)
    if obs.phase is TaskPhase.SUCCEEDED:
        return adopted, Seen(Event.TASK_SUCCEEDED, att, obs, job_id, "Completed")
    if why and (obs.phase is TaskPhase.CANCELLED or att.cancel_requested_at is not None):
        # lxr asked for this task to stop: however the scheduler words its end
        # (cancelled, killed by signal, failed), it is not the program's failure
        event = Event.TASK_ENDED_AFTER_CANCEL
        return adopted, Seen(event, att, obs, job_id, why, obs.message, why)
    if _cancelled_gang(att, obs):
        # lxr ended a broken gang: the failure is the rank's, charged to the failure budget
        codes = obs.rank_exit_codes or ()
        rank = obs.first_failed_rank
        code = codes[rank] if rank is not None and rank < len(codes) else None
        message = f"rank {rank} exited {code} first; lxr ended the ranks that ran on"
        failed = _with_code(obs, code)
        reason = FailureReason.ERROR.value
        return adopted, Seen(Event.TASK_FAILED, att, failed, job_id, reason, message)
    if obs.phase is TaskPhase.CANCELLED:
        reason = FailureReason.CANCELLED.value
        return adopted, Seen(Event.TASK_CANCELLED, att, obs, job_id, reason, obs.message)
    reason = (obs.reason or FailureReason.ERROR).value
    return adopted, Seen(Event.TASK_FAILED, att, obs, job_id, reason, obs.message)


def _gang_broken(obs: TaskObservation, now: float) -> bool:
    """A rank of this running task failed GANG_GRACE_SECONDS ago or more."""
    failed_at = obs.first_failure_time
    return (
        obs.phase is TaskPhase.RUNNING
        and obs.first_failed_rank is not None
        and failed_at is not None
        and now - failed_at >= GANG_GRACE_SECONDS
    )


def _cancelled_gang(att: AttemptRecord, obs: TaskObservation) -> bool:
    """lxr cancelled this task (not to stop it) because one of its ranks had failed, and it
    ended as cancelled or killed, not by a disruption of its own."""
    return (
        att.cancel_requested_at is not None
        and obs.first_failed_rank is not None
        and (
            obs.phase is TaskPhase.CANCELLED
            or (obs.phase is TaskPhase.FAILED and obs.reason in (None, FailureReason.ERROR))
        )
    )


def _with_code(obs: TaskObservation, code: int | None) -> TaskObservation:
    return obs._replace(exit_code=code)


def classify_idle(
    wu: WorkUnitRecord,
    next_attempt_after: float | None,
    why: str | None,
    now: float,
    dependencies: Verdict | None = None,
    *,
    runtime_missing: str | None = None,
    artifacts_ready: bool = True,
) -> Seen:
    """A work unit with no attempt in flight: stop it, let it wait out its backoff, hold it
    while a program it needs is missing (``runtime_missing`` says which, and where), wait for
    its artifacts to be staged, or submit. ``dependencies``: the verdict on a unit not yet
    submitted that has some (None: it has none): it waits, is submitted (unless held), or
    stops (``DependencyFailed``)."""
    del wu  # the record is the classifier's input; the verdict was made from it
    if why:
        return Seen(Event.STOP_WANTED, reason=why, why=why)
    if dependencies is not None:
        seen = classify_dependencies(dependencies)
        if seen.event is not Event.DEPENDENCY_MET or (runtime_missing is None and artifacts_ready):
            return seen
    elif next_attempt_after is not None and next_attempt_after > now:
        return Seen(Event.BACKOFF_PENDING)
    if runtime_missing is not None:
        return Seen(Event.RUNTIME_MISSING, reason="RuntimeMissing", message=runtime_missing)
    if not artifacts_ready:
        # its code is not on the cluster yet (a met dependency is noted once it is)
        return Seen(Event.ARTIFACTS_PENDING, reason="ArtifactsNotReady")
    return Seen(Event.READY)


#: a dependency verdict -> the event of a work unit not yet submitted
DEPENDENCY_EVENTS: dict[VerdictKind, Event] = {
    VerdictKind.MET: Event.DEPENDENCY_MET,
    VerdictKind.WAITING: Event.DEPENDENCY_PENDING,
    VerdictKind.FAILED: Event.DEPENDENCY_FAILED,
}


def classify_dependencies(verdict: Verdict) -> Seen:
    """A never-submitted unit's dependencies: met (submit it), not yet (it waits, the message
    says for what), or never (it stops with reason ``DependencyFailed``)."""
    event = DEPENDENCY_EVENTS[verdict.kind]
    reason = FAILED_REASON if verdict.kind is VerdictKind.FAILED else None
    return Seen(event, reason=reason, message=verdict.message or None)
