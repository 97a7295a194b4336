"""The planner: ``plan(desired, observed, now) -> actions``. A pure function, no I/O.

Rules, in the order they apply to each active work unit of an experiment:

1. An attempt whose submission is only an *intent* (recorded, never confirmed) is adopted when
   the snapshot has a job carrying its tag; otherwise the intent is submitted again (same tag).
2. A submission the scheduler *rejected* ends the attempt with reason ``SubmitError``.
3. An observed task moves the work unit through :data:`IN_FLIGHT` (Queued, Running) or ends the
   attempt: ``Succeeded``; ``Failed`` -> the failure policy (:func:`~lxr.reconciler.policy.decide`)
   -> :data:`OUTCOMES`; ``Cancelled`` -> ``Stopped`` when lxr cancelled it, else a failure with
   reason ``Cancelled``.
4. A submitted task the scheduler no longer reports, even in accounting, is ``Unknown``; after
   :data:`LOST_AFTER_SECONDS` it ends with reason ``Lost`` (a disruption).
5. When the experiment is being deleted or has failed as a whole, in-flight tasks are cancelled
   (again every :data:`CANCEL_REPEAT_SECONDS` until they are gone) and idle work units stop.
   A work unit the user stopped alone (``stop_requested``) is treated the same way, with reason
   ``StopRequested``, while the other work units go on; it is never resubmitted.
6. Work units with no attempt in flight and no backoff pending are submitted: first attempts as
   one ``Submit`` array, retries as one ``Resubmit`` array of exactly the affected indexes.

The planner never looks at "what just happened": it recomputes everything from the records and
the snapshot, so running it twice on the same input gives the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxr.api.records import AttemptRecord, ExperimentRecord, WorkUnitRecord
from lxr.api.resources import FailurePolicyAction, FailureReason, WorkUnitPhase
from lxr.reconciler.actions import (
    Action,
    AttemptPatch,
    Cancel,
    Event,
    FailureHandled,
    Resubmit,
    RetryIntent,
    Submit,
    SubmitEntry,
    UpdateStatus,
    WorkUnitPatch,
)
from lxr.reconciler.policy import backoff_seconds, decide
from lxr.schedulers.base import Snapshot, TaskObservation, TaskPhase

__all__ = [
    "CANCEL_REPEAT_SECONDS",
    "IN_FLIGHT",
    "LAST_SEEN_REFRESH_SECONDS",
    "LOST_AFTER_SECONDS",
    "OUTCOMES",
    "plan",
    "plan_experiment",
]

LOST_AFTER_SECONDS = 120.0
CANCEL_REPEAT_SECONDS = 30.0
LAST_SEEN_REFRESH_SECONDS = 60.0

#: an observed task still in the scheduler's hands -> the work unit's phase
IN_FLIGHT: dict[TaskPhase, WorkUnitPhase] = {
    TaskPhase.QUEUED: WorkUnitPhase.QUEUED,
    TaskPhase.RUNNING: WorkUnitPhase.RUNNING,
}


@dataclass(frozen=True)
class _Outcome:
    """What a policy action does to a work unit: which budget it spends, where it goes."""

    spends_failures: bool
    spends_disruptions: bool
    fails_index: bool
    fails_experiment: bool


#: failure policy action -> effect on the work unit
OUTCOMES: dict[FailurePolicyAction, _Outcome] = {
    FailurePolicyAction.IGNORE: _Outcome(False, True, False, False),
    FailurePolicyAction.COUNT: _Outcome(True, False, False, False),
    FailurePolicyAction.FAIL_INDEX: _Outcome(False, False, True, False),
    FailurePolicyAction.FAIL_JOB: _Outcome(False, False, True, True),
}

_TERMINAL = {WorkUnitPhase.SUCCEEDED.value, WorkUnitPhase.FAILED.value, WorkUnitPhase.STOPPED.value}


@dataclass
class _Work:
    """Mutable scratch state for one work unit while planning."""

    record: WorkUnitRecord
    phase: str
    reason: str | None
    message: str | None
    exit_code: int | None
    failures: int
    disruptions: int
    next_attempt_after: float | None
    retry_reason: str | None
    active: AttemptRecord | None
    clear_active: bool = False

    @classmethod
    def of(cls, wu: WorkUnitRecord) -> _Work:
        return cls(
            record=wu,
            phase=wu.phase,
            reason=None,
            message=None,
            exit_code=None,
            failures=wu.failures,
            disruptions=wu.disruptions,
            next_attempt_after=wu.next_attempt_after,
            retry_reason=wu.retry_reason,
            active=wu.active,
        )

    def patch(self) -> WorkUnitPatch | None:
        wu = self.record
        changed = (
            self.phase != wu.phase
            or self.clear_active
            or self.failures != wu.failures
            or self.disruptions != wu.disruptions
            or self.next_attempt_after != wu.next_attempt_after
            or self.retry_reason != wu.retry_reason
            or self.reason is not None
        )
        if not changed:
            return None
        return WorkUnitPatch(
            id=wu.id,
            index=wu.index,
            phase=self.phase,
            reason=self.reason,
            message=self.message,
            exit_code=self.exit_code,
            failures=self.failures,
            disruptions=self.disruptions,
            next_attempt_after=self.next_attempt_after,
            retry_reason=self.retry_reason,
            clear_active=self.clear_active,
        )


class _ExperimentPlan:
    """Plans one experiment against one snapshot."""

    def __init__(self, exp: ExperimentRecord, snap: Snapshot, now: float) -> None:
        self.exp = exp
        self.snap = snap
        self.now = now
        self.attempts: list[AttemptPatch] = []
        self.adoptions: list[tuple[int, str]] = []
        self.events: list[Event] = []
        self.handled: list[FailureHandled] = []
        self.retry_intents: dict[int, str] = {}
        self.cancel: list[tuple[str, int]] = []
        self.cancel_ids: list[int] = []
        self.newly_failed: list[int] = []
        self.fail_experiment: tuple[str, str] | None = None

    @property
    def stopping(self) -> str | None:
        """Why in-flight work must stop (deletion or the experiment failing), if it must."""
        if self.exp.deleting:
            return "Deleted"
        if self.exp.failed_reason or self.fail_experiment:
            return "ExperimentFailed"
        return None

    def stopping_for(self, work: _Work) -> str | None:
        """Why this work unit must stop: the experiment's reason, or the user stopped it."""
        return self.stopping or ("StopRequested" if work.record.stop_requested else None)

    # ------------------------------------------------------------------ attempts

    def wu_name(self, wu: WorkUnitRecord) -> str:
        return f"{self.exp.name}/{wu.index}"

    def end_attempt(
        self,
        work: _Work,
        att: AttemptRecord,
        obs: TaskObservation | None,
        phase: str,
        reason: str | None,
        message: str | None,
        job_id: str | None,
    ) -> None:
        self.attempts.append(
            AttemptPatch(
                id=att.id,
                phase=phase,
                job_id=job_id,
                state=obs.state if obs else att.state,
                reason=reason,
                message=message,
                exit_code=obs.exit_code if obs else None,
                restarts=obs.restarts if obs else att.restarts,
                start_time=(obs.start_time if obs else None) or att.start_time,
                end_time=(obs.end_time if obs else None) or self.now,
                last_seen=self.now if obs else att.last_seen,
                cancel_requested_at=att.cancel_requested_at,
                final=True,
            )
        )
        work.active = None
        work.clear_active = True

    def fail_attempt(
        self,
        work: _Work,
        att: AttemptRecord,
        obs: TaskObservation | None,
        reason: FailureReason,
        message: str | None,
        job_id: str | None,
    ) -> None:
        """End the attempt as failed and apply the failure policy to the work unit."""
        exit_code = obs.exit_code if obs else None
        self.end_attempt(work, att, obs, WorkUnitPhase.FAILED.value, reason.value, message, job_id)
        spec = self.exp.spec
        action = decide(spec, reason, exit_code)
        outcome = OUTCOMES[action]
        self.handled.append(FailureHandled(reason.value, action.value))
        wu = work.record
        detail = f"attempt {att.number} ended: {reason.value}" + (
            f" (exit code {exit_code})" if exit_code is not None else ""
        )
        if message:
            detail += f": {message}"
        work.exit_code = exit_code
        work.retry_reason = reason.value
        if outcome.spends_disruptions:
            work.disruptions += 1
            if work.disruptions > spec.disruption_limit_per_index:
                self.fail_index(
                    work, "DisruptionLimitExceeded", f"{detail}; disruption limit spent"
                )
                return
            work.phase = WorkUnitPhase.PENDING.value
            work.next_attempt_after = None
            work.reason, work.message = reason.value, detail
            self.events.append(
                Event(
                    "Warning", reason.value, f"{detail}; resubmitting", "WorkUnit", self.wu_name(wu)
                )
            )
        elif outcome.spends_failures:
            work.failures += 1
            if work.failures > spec.backoff_limit_per_index:
                self.fail_index(work, "BackoffLimitExceeded", f"{detail}; no retries left")
                return
            delay = backoff_seconds(
                spec.backoff, work.failures, f"{self.exp.uid}/{wu.index}/{att.number}"
            )
            work.phase = WorkUnitPhase.BACKOFF.value
            work.next_attempt_after = self.now + delay
            work.reason, work.message = reason.value, detail
            self.events.append(
                Event(
                    "Warning",
                    reason.value,
                    f"{detail}; retry {work.failures}/{spec.backoff_limit_per_index} "
                    f"in {delay:.0f}s",
                    "WorkUnit",
                    self.wu_name(wu),
                )
            )
        else:
            self.fail_index(work, reason.value, detail)
            if outcome.fails_experiment and self.fail_experiment is None:
                self.fail_experiment = ("FailJobRule", f"work unit {wu.index}: {detail}")

    def fail_index(self, work: _Work, reason: str, message: str) -> None:
        work.phase = WorkUnitPhase.FAILED.value
        work.reason, work.message = reason, message
        work.next_attempt_after = None
        self.newly_failed.append(work.record.index)
        self.events.append(Event("Warning", reason, message, "WorkUnit", self.wu_name(work.record)))

    def stop(self, work: _Work, reason: str) -> None:
        work.phase = WorkUnitPhase.STOPPED.value
        work.reason, work.message = reason, f"stopped: {reason}"
        work.next_attempt_after = None

    def request_cancel(self, work: _Work, att: AttemptRecord, job_id: str, phase: str) -> None:
        """Cancel an in-flight task, unless a cancel went out a moment ago."""
        due = att.cancel_requested_at is None or (
            self.now - att.cancel_requested_at >= CANCEL_REPEAT_SECONDS
        )
        if due and att.id not in self.cancel_ids:
            self.cancel.append((job_id, att.array_index))
            self.cancel_ids.append(att.id)
        work.phase = phase

    def observe_attempt(self, work: _Work) -> None:
        att = work.active
        assert att is not None
        job_id = att.job_id
        if job_id is None:
            if att.submission_state == "Failed":
                self.fail_attempt(
                    work, att, None, FailureReason.SUBMIT_ERROR, att.submission_error, None
                )
                return
            adopted = self.snap.tags.get(att.submission_tag)
            if adopted is None:
                if why := self.stopping_for(work):
                    self.end_attempt(work, att, None, WorkUnitPhase.STOPPED.value, why, None, None)
                    self.stop(work, why)
                else:
                    self.retry_intents[att.submission_id] = att.submission_tag
                    work.phase = WorkUnitPhase.PENDING.value
                return
            if att.submission_id not in {sid for sid, _ in self.adoptions}:
                self.adoptions.append((att.submission_id, adopted))
                self.events.append(
                    Event(
                        "Normal",
                        "Adopted",
                        f"job {adopted} carries tag {att.submission_tag}: adopted, not resubmitted",
                        "Experiment",
                        self.exp.name,
                    )
                )
            job_id = adopted

        obs = self.snap.task(job_id, att.array_index)
        if obs is None:
            self.unobserved(work, att, job_id)
        elif obs.phase in IN_FLIGHT:
            self.in_flight(work, att, obs, job_id)
        elif obs.phase is TaskPhase.SUCCEEDED:
            self.end_attempt(
                work, att, obs, WorkUnitPhase.SUCCEEDED.value, "Completed", None, job_id
            )
            work.phase = WorkUnitPhase.SUCCEEDED.value
            work.reason, work.message, work.exit_code = "Completed", None, obs.exit_code
            work.next_attempt_after = None
        elif (why := self.stopping_for(work)) and (
            obs.phase is TaskPhase.CANCELLED or att.cancel_requested_at is not None
        ):
            # lxr asked for this task to stop: however the scheduler words its end
            # (cancelled, killed by signal, failed), it is not the program's failure
            self.end_attempt(work, att, obs, WorkUnitPhase.STOPPED.value, why, obs.message, job_id)
            self.stop(work, why)
        elif obs.phase is TaskPhase.CANCELLED:
            self.fail_attempt(work, att, obs, FailureReason.CANCELLED, obs.message, job_id)
        else:
            self.fail_attempt(
                work, att, obs, obs.reason or FailureReason.ERROR, obs.message, job_id
            )

    def in_flight(self, work: _Work, att: AttemptRecord, obs: TaskObservation, job_id: str) -> None:
        phase = IN_FLIGHT[obs.phase].value
        stale = att.last_seen is None or self.now - att.last_seen >= LAST_SEEN_REFRESH_SECONDS
        if (
            phase != att.phase
            or obs.state != att.state
            or obs.restarts != att.restarts
            or job_id != att.job_id
            or stale
        ):
            if obs.restarts > att.restarts:
                self.events.append(
                    Event(
                        "Warning",
                        "Requeued",
                        f"the scheduler requeued task {job_id}[{att.array_index}] "
                        f"(restart {obs.restarts})",
                        "WorkUnit",
                        self.wu_name(work.record),
                    )
                )
            self.attempts.append(
                AttemptPatch(
                    id=att.id,
                    phase=phase,
                    job_id=job_id,
                    state=obs.state,
                    reason=obs.reason.value if obs.reason else None,
                    message=obs.message,
                    restarts=obs.restarts,
                    start_time=obs.start_time or att.start_time,
                    last_seen=self.now,
                    cancel_requested_at=att.cancel_requested_at,
                )
            )
        work.phase = phase
        if self.stopping_for(work):
            self.request_cancel(work, att, job_id, phase)

    def unobserved(self, work: _Work, att: AttemptRecord, job_id: str) -> None:
        seen = att.last_seen or att.submit_time or self.now
        why = self.stopping_for(work)
        if why and att.cancel_requested_at is not None:
            # lxr cancelled it and it is gone: nothing more will be learned about it
            self.end_attempt(work, att, None, WorkUnitPhase.STOPPED.value, why, None, job_id)
            self.stop(work, why)
        elif self.now - seen > LOST_AFTER_SECONDS:
            self.fail_attempt(
                work,
                att,
                None,
                FailureReason.LOST,
                f"the scheduler no longer reports task {job_id}[{att.array_index}]",
                job_id,
            )
        else:
            work.phase = WorkUnitPhase.UNKNOWN.value
            if why:
                self.request_cancel(work, att, job_id, WorkUnitPhase.UNKNOWN.value)
            if att.job_id is None:
                self.attempts.append(
                    AttemptPatch(id=att.id, phase=att.phase, job_id=job_id, last_seen=att.last_seen)
                )

    # ------------------------------------------------------------------ experiment

    def run(self) -> list[Action]:
        works = [_Work.of(wu) for wu in self.exp.work_units]
        for work in works:
            if work.phase in _TERMINAL:
                continue
            if work.active is not None:
                self.observe_attempt(work)

        spec = self.exp.spec
        failed_total = self.exp.failed_count + len(self.newly_failed)
        if (
            self.fail_experiment is None
            and not self.exp.failed_reason
            and spec.max_failed_indexes is not None
            and failed_total > spec.max_failed_indexes
        ):
            self.fail_experiment = (
                "MaxFailedIndexesExceeded",
                f"{failed_total} work units failed, more than maxFailedIndexes="
                f"{spec.max_failed_indexes}",
            )
        if self.fail_experiment:
            self.events.append(Event("Warning", *self.fail_experiment, "Experiment", self.exp.name))
            # tasks this cycle saw in flight are cancelled now, not one cycle later
            for work in works:
                att = work.active
                if att is not None and work.phase not in _TERMINAL:
                    job_id = att.job_id or self.snap.tags.get(att.submission_tag)
                    if job_id is not None:
                        self.request_cancel(work, att, job_id, work.phase)

        fresh: list[SubmitEntry] = []
        retries: list[SubmitEntry] = []
        stopping = self.stopping
        for work in works:
            if work.phase in _TERMINAL or work.active is not None:
                continue
            if why := self.stopping_for(work):
                self.stop(work, why)
                continue
            if work.next_attempt_after is not None and work.next_attempt_after > self.now:
                work.phase = WorkUnitPhase.BACKOFF.value
                continue
            wu = work.record
            entry = SubmitEntry(wu.id, wu.index, wu.attempt_count + 1, work.retry_reason)
            (retries if wu.attempt_count else fresh).append(entry)
            work.phase = WorkUnitPhase.PENDING.value
            work.next_attempt_after = None

        actions: list[Action] = []
        patches = tuple(p for w in works if (p := w.patch()) is not None)
        # the experiment's reason, else only work units the user stopped are being cancelled
        stopping = stopping or "StopRequested"
        if self.cancel:
            self.events.append(
                Event(
                    "Normal",
                    "Cancelling",
                    f"cancelling {len(self.cancel)} task(s): {stopping}",
                    "Experiment",
                    self.exp.name,
                )
            )
        update = UpdateStatus(
            experiment_uid=self.exp.uid,
            work_units=patches,
            attempts=tuple(self.attempts),
            adoptions=tuple(self.adoptions),
            events=tuple(self.events),
            handled=tuple(self.handled),
            fail_experiment=self.fail_experiment,
        )
        if update:
            actions.append(update)
        if self.cancel:
            actions.append(
                Cancel(self.exp.uid, tuple(self.cancel), tuple(self.cancel_ids), stopping)
            )
        actions.extend(
            RetryIntent(self.exp.uid, sid, tag) for sid, tag in sorted(self.retry_intents.items())
        )
        if fresh:
            actions.append(Submit(self.exp.uid, tuple(fresh)))
        if retries:
            actions.append(Resubmit(self.exp.uid, tuple(retries)))
        return actions


def plan_experiment(exp: ExperimentRecord, snapshot: Snapshot, now: float) -> list[Action]:
    """The actions that move one experiment toward its desired state."""
    return _ExperimentPlan(exp, snapshot, now).run()


def plan(desired: Sequence[ExperimentRecord], observed: Snapshot, now: float) -> list[Action]:
    """The actions for every experiment of one cluster, given one snapshot of that cluster."""
    actions: list[Action] = []
    for exp in desired:
        actions.extend(plan_experiment(exp, observed, now))
    return actions
