"""The planner: ``plan(desired, observed, now) -> actions``. A pure function, no I/O.

Each active work unit of an experiment goes through three small stages:

1. **Classify** (:func:`classify_attempt`, :func:`classify_idle`): the record and the snapshot
   become one :class:`~lxr.api.phases.Event` (``TaskRunning``, ``TaskLost``, ``Ready``, ...).
2. **Look the row up** in :data:`~lxr.api.phases.WORK_UNIT_TRANSITIONS`: the target phase, what
   the attempt becomes, and the effects, carried out here in order (one method per
   :class:`~lxr.api.phases.Effect`). An event with no row from the current phase raises
   :class:`~lxr.api.phases.IllegalTransition`.
3. **Budget accounting** (:func:`~lxr.reconciler.policy.account`): a failed attempt is charged
   to the failure or the disruption budget; the verdict is another event, looked up the same way.

Then, for the experiment as a whole: more failed work units than ``maxFailedIndexes`` fail it
(``MaxFailedIndexesExceeded``); a failing experiment cancels what is still in flight now
(``ExperimentFailing``); work units with nothing in flight are classified (stop, wait out the
backoff, or submit: first attempts as one ``Submit`` array, retries as one ``Resubmit``).
Last, the experiment's status (phase, conditions, counts) is derived from the counts the
record was read with, moved by this plan's decisions (:func:`~lxr.reconciler.status.plan_status`):
one ``SetStatus`` when it changed, or ``Finalize`` (remove it) once a deleted experiment has no
task left.

Cancels repeat every :data:`CANCEL_REPEAT_SECONDS` until the task is gone; a task the scheduler
no longer reports is ``Unknown``, and after :data:`LOST_AFTER_SECONDS` it ends as ``Lost``.

The planner never looks at "what just happened": it recomputes everything from the records and
the snapshot, so running it twice on the same input gives the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from lxr.api.phases import (
    WORK_UNIT_TERMINAL,
    WORK_UNIT_TRANSITIONS,
    AttemptPhase,
    Effect,
    Event,
    SubmissionEvent,
    SubmissionState,
    Transition,
    WorkUnitPhase,
    check_attempt,
    submission_transition,
    work_unit_transition,
)
from lxr.api.records import AttemptRecord, ExperimentRecord, WorkUnitRecord
from lxr.api.resources import FailureReason
from lxr.reconciler.actions import (
    Action,
    AttemptPatch,
    Cancel,
    FailureHandled,
    Resubmit,
    RetryIntent,
    Submit,
    SubmitEntry,
    UpdateStatus,
    WorkUnitPatch,
)
from lxr.reconciler.actions import Event as Notice
from lxr.reconciler.policy import account, backoff_seconds
from lxr.reconciler.status import plan_status
from lxr.schedulers.base import Snapshot, TaskObservation, TaskPhase

__all__ = [
    "CANCEL_REPEAT_SECONDS",
    "LAST_SEEN_REFRESH_SECONDS",
    "LOST_AFTER_SECONDS",
    "TASK_EVENTS",
    "Seen",
    "classify_attempt",
    "classify_idle",
    "delete_held",
    "plan",
    "plan_experiment",
]

LOST_AFTER_SECONDS = 120.0
CANCEL_REPEAT_SECONDS = 30.0
LAST_SEEN_REFRESH_SECONDS = 60.0

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
        adopted = Seen(Event.ADOPTED, att, job_id=job_id)
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
        return adopted, Seen(event, att, None, job_id, why=why)
    in_flight = TASK_EVENTS.get(obs.phase)
    if in_flight is not None:
        return adopted, Seen(in_flight[1] if why else in_flight[0], att, obs, job_id, why=why)
    if obs.phase is TaskPhase.SUCCEEDED:
        return adopted, Seen(Event.TASK_SUCCEEDED, att, obs, job_id, "Completed")
    if why and (obs.phase is TaskPhase.CANCELLED or att.cancel_requested_at is not None):
        # lxr asked for this task to stop: however the scheduler words its end
        # (cancelled, killed by signal, failed), it is not the program's failure
        event = Event.TASK_ENDED_AFTER_CANCEL
        return adopted, Seen(event, att, obs, job_id, why, obs.message, why)
    if obs.phase is TaskPhase.CANCELLED:
        reason = FailureReason.CANCELLED.value
        return adopted, Seen(Event.TASK_CANCELLED, att, obs, job_id, reason, obs.message)
    reason = (obs.reason or FailureReason.ERROR).value
    return adopted, Seen(Event.TASK_FAILED, att, obs, job_id, reason, obs.message)


def classify_idle(
    wu: WorkUnitRecord, next_attempt_after: float | None, why: str | None, now: float
) -> Seen:
    """A work unit with no attempt in flight: stop it, let it wait out its backoff, or submit."""
    del wu  # a dependency check would read it (the record is the classifier's input)
    if why:
        return Seen(Event.STOP_WANTED, reason=why, why=why)
    if next_attempt_after is not None and next_attempt_after > now:
        return Seen(Event.BACKOFF_PENDING)
    return Seen(Event.READY)


@dataclass(slots=True)
class _Work:
    """Mutable scratch state for one work unit while planning (slots: 100k are made a pass)."""

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
            wu,
            wu.phase,
            None,
            None,
            None,
            wu.failures,
            wu.disruptions,
            wu.next_attempt_after,
            wu.retry_reason,
            wu.active,
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
        self.adopted: set[int] = set()
        self.events: list[Notice] = []
        self.handled: list[FailureHandled] = []
        self.retry_intents: dict[int, str] = {}
        self.cancel: list[tuple[str, int]] = []
        self.cancel_ids: list[int] = []
        self.newly_failed: list[int] = []
        self.fail_experiment: tuple[str, str] | None = None
        self.fresh: list[SubmitEntry] = []
        self.retries: list[SubmitEntry] = []

    @property
    def stopping(self) -> str | None:
        """Why in-flight work must stop (deletion or the experiment failing), if it must."""
        if self.exp.deleting:
            return "Deleted"
        if self.exp.failed_reason or self.fail_experiment:
            return "ExperimentFailed"
        return None

    def stopping_for(self, wu: WorkUnitRecord) -> str | None:
        """Why this work unit must stop: the experiment's reason, or the user stopped it."""
        return self.stopping or ("StopRequested" if wu.stop_requested else None)

    def wu_name(self, wu: WorkUnitRecord) -> str:
        return f"{self.exp.name}/{wu.index}"

    # ------------------------------------------------------------------ the machine

    def fire(self, work: _Work, seen: Seen) -> None:
        """Apply the table's row for ``seen.event`` to the work unit."""
        step = _STEPS.get((work.phase, seen.event))
        if step is None:  # no row: work_unit_transition says why
            work_unit_transition(work.phase, seen.event)
            raise AssertionError("unreachable")
        row, handlers, target = step
        for handler in handlers:
            handler(self, work, seen, row)
        if target is not None:
            work.phase = target

    # ------------------------------------------------------------------ effects

    def _adopt(self, work: _Work, seen: Seen, row: Transition) -> None:
        att, job_id = seen.attempt, seen.job_id
        assert att is not None and job_id is not None
        if att.submission_id not in self.adopted:
            self.adopted.add(att.submission_id)
            self.adoptions.append((att.submission_id, job_id))
            self.events.append(
                Notice(
                    "Normal",
                    "Adopted",
                    f"job {job_id} carries tag {att.submission_tag}: adopted, not resubmitted",
                    "Experiment",
                    self.exp.name,
                )
            )

    def _record_task(self, work: _Work, seen: Seen, row: Transition) -> None:
        att, obs, job_id = seen.attempt, seen.task, seen.job_id
        assert att is not None and obs is not None and row.attempt is not None
        phase = row.attempt.value
        stale = att.last_seen is None or self.now - att.last_seen >= LAST_SEEN_REFRESH_SECONDS
        if (
            phase != att.phase
            or obs.state != att.state
            or obs.restarts != att.restarts
            or job_id != att.job_id
            or stale
        ):
            check_attempt(att.phase, phase)
            if obs.restarts > att.restarts:
                self.events.append(
                    Notice(
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

    def _record_job_id(self, work: _Work, seen: Seen, row: Transition) -> None:
        att = seen.attempt
        assert att is not None
        if att.job_id is None:  # adopted this cycle, not in the queue: keep the job id
            patch = AttemptPatch(att.id, att.phase, job_id=seen.job_id, last_seen=att.last_seen)
            self.attempts.append(patch)

    def _cancel(self, work: _Work, seen: Seen, row: Transition) -> None:
        """Cancel an in-flight task, unless a cancel went out a moment ago."""
        att, job_id = seen.attempt, seen.job_id
        assert att is not None and job_id is not None
        due = att.cancel_requested_at is None or (
            self.now - att.cancel_requested_at >= CANCEL_REPEAT_SECONDS
        )
        if due and att.id not in self.cancel_ids:
            self.cancel.append((job_id, att.array_index))
            self.cancel_ids.append(att.id)

    def _retry_intent(self, work: _Work, seen: Seen, row: Transition) -> None:
        att = seen.attempt
        assert att is not None
        self.retry_intents[att.submission_id] = att.submission_tag

    def _end_attempt(self, work: _Work, seen: Seen, row: Transition) -> None:
        att, obs = seen.attempt, seen.task
        assert att is not None and row.attempt is not None
        check_attempt(att.phase, row.attempt.value)
        self.attempts.append(
            AttemptPatch(
                id=att.id,
                phase=row.attempt.value,
                job_id=seen.job_id,
                state=obs.state if obs else att.state,
                reason=seen.reason,
                message=seen.message,
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

    def _complete(self, work: _Work, seen: Seen, row: Transition) -> None:
        work.reason, work.message = "Completed", None
        work.exit_code = seen.task.exit_code if seen.task else None
        work.next_attempt_after = None

    def _stop(self, work: _Work, seen: Seen, row: Transition) -> None:
        work.reason, work.message = seen.why, f"stopped: {seen.why}"
        work.next_attempt_after = None

    def _account(self, work: _Work, seen: Seen, row: Transition) -> None:
        """Charge the failed attempt to a budget; the verdict is the next event."""
        exit_code = seen.task.exit_code if seen.task else None
        reason = FailureReason(seen.reason)
        verdict = account(self.exp.spec, reason, exit_code, work.failures, work.disruptions)
        self.handled.append(FailureHandled(reason.value, verdict.action.value))
        work.failures, work.disruptions = verdict.failures, verdict.disruptions
        work.exit_code = exit_code
        work.retry_reason = reason.value
        self.fire(work, seen._replace(event=verdict.event))

    def detail(self, work: _Work, seen: Seen) -> str:
        """``attempt N ended: <reason> (exit code C): <message>``."""
        assert seen.attempt is not None
        text = f"attempt {seen.attempt.number} ended: {seen.reason}"
        if work.exit_code is not None:
            text += f" (exit code {work.exit_code})"
        return text + (f": {seen.message}" if seen.message else "")

    def _resubmit_now(self, work: _Work, seen: Seen, row: Transition) -> None:
        detail = self.detail(work, seen)
        work.next_attempt_after = None
        work.reason, work.message = seen.reason, detail
        name = self.wu_name(work.record)
        self.events.append(
            Notice("Warning", str(seen.reason), f"{detail}; resubmitting", "WorkUnit", name)
        )

    def _back_off(self, work: _Work, seen: Seen, row: Transition) -> None:
        assert seen.attempt is not None
        spec, wu = self.exp.spec, work.record
        detail = self.detail(work, seen)
        seed = f"{self.exp.uid}/{wu.index}/{seen.attempt.number}"
        delay = backoff_seconds(spec.backoff, work.failures, seed)
        work.next_attempt_after = self.now + delay
        work.reason, work.message = seen.reason, detail
        self.events.append(
            Notice(
                "Warning",
                str(seen.reason),
                f"{detail}; retry {work.failures}/{spec.backoff_limit_per_index} in {delay:.0f}s",
                "WorkUnit",
                self.wu_name(wu),
            )
        )

    def _fail_index(self, work: _Work, seen: Seen, row: Transition) -> None:
        detail = self.detail(work, seen)
        reason, message = _FAIL_WORDING.get(row.event, (None, ""))
        reason = reason or str(seen.reason)
        work.reason, work.message = reason, detail + message
        work.next_attempt_after = None
        self.newly_failed.append(work.record.index)
        self.events.append(
            Notice("Warning", reason, work.message, "WorkUnit", self.wu_name(work.record))
        )

    def _fail_experiment(self, work: _Work, seen: Seen, row: Transition) -> None:
        if self.fail_experiment is None:
            detail = self.detail(work, seen)
            self.fail_experiment = ("FailJobRule", f"work unit {work.record.index}: {detail}")

    def _submit(self, work: _Work, seen: Seen, row: Transition) -> None:
        wu = work.record
        entry = SubmitEntry(wu.id, wu.index, wu.attempt_count + 1, work.retry_reason)
        (self.retries if wu.attempt_count else self.fresh).append(entry)
        work.next_attempt_after = None

    # ------------------------------------------------------------------ experiment

    def check_failed_indexes(self) -> None:
        """More failed work units than ``maxFailedIndexes``: the experiment fails."""
        limit = self.exp.spec.max_failed_indexes
        failed_total = self.exp.failed_count + len(self.newly_failed)
        if (
            self.fail_experiment is None
            and not self.exp.failed_reason
            and limit is not None
            and failed_total > limit
        ):
            self.fail_experiment = (
                "MaxFailedIndexesExceeded",
                f"{failed_total} work units failed, more than maxFailedIndexes={limit}",
            )

    def run(self) -> list[Action]:
        works = [_Work.of(wu) for wu in self.exp.work_units]
        for work in works:
            att = work.active
            if att is not None and work.phase not in WORK_UNIT_TERMINAL:
                adoption, seen = classify_attempt(
                    att, self.snap, self.stopping_for(work.record), self.now
                )
                if adoption is not None:
                    self.fire(work, adoption)
                self.fire(work, seen)

        self.check_failed_indexes()
        if self.fail_experiment:
            self.events.append(
                Notice("Warning", *self.fail_experiment, "Experiment", self.exp.name)
            )
            # tasks this cycle saw in flight are cancelled now, not one cycle later
            for work in works:
                att = work.active
                if att is not None and work.phase not in WORK_UNIT_TERMINAL:
                    job_id = att.job_id or self.snap.tags.get(att.submission_tag)
                    if job_id is not None:
                        self.fire(work, Seen(Event.EXPERIMENT_FAILING, att, job_id=job_id))

        for work in works:
            if work.phase in WORK_UNIT_TERMINAL or work.active is not None:
                continue
            why = self.stopping_for(work.record)
            self.fire(work, classify_idle(work.record, work.next_attempt_after, why, self.now))
        return self.actions(works)

    def actions(self, works: list[_Work]) -> list[Action]:
        """The plan: one status update, then cancels, intents retried, submissions."""
        actions: list[Action] = []
        changed = [(w, p) for w in works if (p := w.patch()) is not None]
        patches = tuple(p for _, p in changed)
        # the experiment's reason, else only work units the user stopped are being cancelled
        stopping = self.stopping or "StopRequested"
        if self.cancel:
            self.events.append(
                Notice(
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
            adopted_state=_ADOPTED.target,
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
        if self.fresh:
            actions.append(Submit(self.exp.uid, tuple(self.fresh), *_READY))
        if self.retries:
            actions.append(Resubmit(self.exp.uid, tuple(self.retries), *_READY))
        # last: the experiment's status (or its removal) as this plan leaves it
        moves = [(w.record.phase, p.phase) for w, p in changed if p.phase != w.record.phase]
        status = plan_status(
            self.exp, moves, len(self.fresh), self.newly_failed, self.fail_experiment, self.now
        )
        if status is not None:
            actions.append(status)
        return actions


_EFFECTS: dict[Effect, Callable[[_ExperimentPlan, _Work, Seen, Transition], None]] = {
    Effect.ADOPT: _ExperimentPlan._adopt,
    Effect.RECORD_TASK: _ExperimentPlan._record_task,
    Effect.RECORD_JOB_ID: _ExperimentPlan._record_job_id,
    Effect.CANCEL: _ExperimentPlan._cancel,
    Effect.RETRY_INTENT: _ExperimentPlan._retry_intent,
    Effect.END_ATTEMPT: _ExperimentPlan._end_attempt,
    Effect.COMPLETE: _ExperimentPlan._complete,
    Effect.STOP: _ExperimentPlan._stop,
    Effect.ACCOUNT: _ExperimentPlan._account,
    Effect.RESUBMIT_NOW: _ExperimentPlan._resubmit_now,
    Effect.BACK_OFF: _ExperimentPlan._back_off,
    Effect.FAIL_INDEX: _ExperimentPlan._fail_index,
    Effect.FAIL_EXPERIMENT: _ExperimentPlan._fail_experiment,
    Effect.SUBMIT: _ExperimentPlan._submit,
}

#: (phase, event) -> the row, its effects' methods and its target (a plain string), resolved once
_STEPS: dict[tuple[str, Event], tuple[Transition, tuple[Callable[..., None], ...], str | None]] = {
    (source.value, row.event): (
        row,
        tuple(_EFFECTS[e] for e in row.effects),
        row.target.value if row.target else None,
    )
    for row in WORK_UNIT_TRANSITIONS
    for source in row.sources
}

#: what a submitted work unit and its new attempt become (the Ready row)
_READY = (
    work_unit_transition(WorkUnitPhase.PENDING, Event.READY).target or WorkUnitPhase.PENDING,
    work_unit_transition(WorkUnitPhase.PENDING, Event.READY).attempt or AttemptPhase.PENDING,
)
#: what an adopted submission becomes
_ADOPTED = submission_transition(SubmissionState.INTENT, SubmissionEvent.ADOPTED)

#: budget verdicts whose reason is the limit that was spent, with the message's ending
_FAIL_WORDING: dict[Event, tuple[str, str]] = {
    Event.DISRUPTION_LIMIT_EXCEEDED: ("DisruptionLimitExceeded", "; disruption limit spent"),
    Event.BACKOFF_LIMIT_EXCEEDED: ("BackoffLimitExceeded", "; no retries left"),
}


def plan_experiment(exp: ExperimentRecord, snapshot: Snapshot, now: float) -> list[Action]:
    """The actions that move one experiment toward its desired state."""
    return _ExperimentPlan(exp, snapshot, now).run()


def delete_held(exp: ExperimentRecord, snapshot: Snapshot) -> list[Action]:
    """Tasks of this experiment that the scheduler holds in an error state (``Snapshot.held``,
    such as Grid Engine's ``Eqw``): they are reported Failed, and deleted so they do not keep
    their place in the queue. The delete comes before the experiment's status update, so a
    failed delete is planned again from the next snapshot."""
    if not snapshot.held:
        return []
    targets = set()
    for wu in exp.work_units:
        att = wu.active
        if att is None:
            continue
        job_id = att.job_id or snapshot.tags.get(att.submission_tag)
        if job_id is not None and (job_id, att.array_index) in snapshot.held:
            targets.add((job_id, att.array_index))
    if not targets:
        return []
    return [Cancel(exp.uid, tuple(sorted(targets)), (), "ErrorState")]


def plan(desired: Sequence[ExperimentRecord], observed: Snapshot, now: float) -> list[Action]:
    """The actions for every experiment of one cluster, given one snapshot of that cluster."""
    actions: list[Action] = []
    for exp in desired:
        actions.extend(delete_held(exp, observed))
        actions.extend(plan_experiment(exp, observed, now))
    return actions
