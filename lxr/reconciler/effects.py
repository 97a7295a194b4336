"""The effects of the state machine's rows, the planner's second stage: one method each, on the
scratch state of one experiment's plan (:class:`PlanState`). Budget accounting, the third stage,
is :func:`lxr.reconciler.policy.account`, called by the ``account`` effect. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lxr.api.container import programs_needed_by
from lxr.api.dependencies import FAILED_REASON, MET_REASON, WAITING_REASON
from lxr.api.phases import Effect, Event, Transition, WorkUnitPhase, check_attempt
from lxr.api.records import AttemptRecord, ExperimentRecord, WorkUnitRecord
from lxr.api.resources import ConditionStatus, FailureReason
from lxr.reconciler.actions import AttemptPatch, FailureHandled, SubmitEntry, WorkUnitPatch
from lxr.reconciler.actions import Event as Notice
from lxr.reconciler.classify import Seen
from lxr.reconciler.policy import account, backoff_seconds, next_scale
from lxr.schedulers.base import Snapshot

__all__ = [
    "CANCEL_REPEAT_SECONDS",
    "DEPENDENCY_EVENTS_PER_UNIT",
    "EFFECTS",
    "PlanState",
    "Work",
]

CANCEL_REPEAT_SECONDS = 30.0
#: more work units than this meeting (or failing) their dependencies in one plan: one event
DEPENDENCY_EVENTS_PER_UNIT = 20


@dataclass(slots=True)
class Work:
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
    resource_scale: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, wu: WorkUnitRecord) -> Work:
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
            False,
            wu.resource_scale,
        )

    def patch(self) -> WorkUnitPatch | None:
        wu = self.record
        if (
            self.phase == wu.phase
            and not self.clear_active
            and self.reason is None
            and self.failures == wu.failures
            and self.disruptions == wu.disruptions
            and self.next_attempt_after == wu.next_attempt_after
            and self.retry_reason == wu.retry_reason
            and self.resource_scale == wu.resource_scale
        ):
            return None
        # positionally, in the patch's field order (keywords cost ~2x, 100k patches a pass)
        return WorkUnitPatch(
            wu.id, wu.index, self.phase, self.reason, self.message, self.exit_code,
            self.failures, self.disruptions, self.next_attempt_after, self.retry_reason,
            self.clear_active, self.resource_scale,
        )  # fmt: skip


class PlanState:
    """What a plan of one experiment has decided so far, and the effects of the state machine's
    rows (one method per :class:`~lxr.api.phases.Effect`). Subclassed by the planner, which
    fires the rows."""

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
        #: work units whose dependencies were met / failed this plan: (index, message)
        self.dependency_notes: dict[Event, list[tuple[int, str]]] = {}
        self.held: str | None = None  # why work units were not submitted (RuntimeMissing)

    @property
    def stopping(self) -> str | None:
        """Why in-flight work must stop (deletion or the experiment failing), if it must."""
        if self.exp.deleting:
            return "Deleted"
        if self.exp.failed_reason or self.fail_experiment:
            return "ExperimentFailed"
        return None

    def stopping_for(self, wu: WorkUnitRecord) -> str | None:
        """Why this work unit must stop: the experiment's reason, the user stopped it, or a
        sweep edit removed it from the spec."""
        if self.stopping:
            return self.stopping
        if wu.stop_requested:
            return "StopRequested"
        return "RemovedFromSpec" if wu.removed else None

    def runtime_missing(self) -> str | None:
        """``podman not found on login node of cluster X`` when a program this experiment's
        work units need is missing there (the snapshot says), else None."""
        missing = self.snap.missing_programs
        if not missing:
            return None
        names = [p for p in programs_needed_by(self.exp.spec) if p in missing]
        if not names:
            return None
        return f"{', '.join(names)} not found on {self.snap.looked_up_on or self.snap.cluster}"

    def wu_name(self, wu: WorkUnitRecord) -> str:
        return f"{self.exp.name}/{wu.index}"

    def fire(self, work: Work, seen: Seen) -> None:
        """Apply the table's row for ``seen.event`` (the planner does)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ effects

    def _adopt(self, work: Work, seen: Seen, row: Transition) -> None:
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

    def _record_task(self, work: Work, seen: Seen, row: Transition) -> None:
        att, obs, job_id = seen.attempt, seen.task, seen.job_id
        assert att is not None and obs is not None and row.attempt is not None
        phase = row.attempt._value_  # the plain attribute: ``.value`` is a slower property
        # written only when something changed: the time a task was last seen is kept by the
        # controller's cache (lxr.reconciler.informer), never rewritten for every task
        if (
            phase != att.phase
            or obs.state != att.state
            or obs.restarts != att.restarts
            or job_id != att.job_id
            or att.last_seen is None
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
            reason = obs.reason.value if obs.reason else None
            self.attempts.append(
                AttemptPatch(
                    att.id,
                    phase,
                    job_id,
                    obs.state,
                    reason,
                    obs.message,
                    None,
                    obs.restarts,
                    obs.start_time or att.start_time,
                    None,
                    self.now,
                    att.cancel_requested_at,
                )  # fmt: skip
            )

    def _record_job_id(self, work: Work, seen: Seen, row: Transition) -> None:
        att = seen.attempt
        assert att is not None
        if att.job_id is None:  # adopted this cycle, not in the queue: keep the job id
            patch = AttemptPatch(att.id, att.phase, job_id=seen.job_id, last_seen=att.last_seen)
            self.attempts.append(patch)

    def _cancel(self, work: Work, seen: Seen, row: Transition) -> None:
        """Cancel an in-flight task, unless a cancel went out a moment ago."""
        att, job_id = seen.attempt, seen.job_id
        assert att is not None and job_id is not None
        due = att.cancel_requested_at is None or (
            self.now - att.cancel_requested_at >= CANCEL_REPEAT_SECONDS
        )
        if due and att.id not in self.cancel_ids:
            self.cancel.append((job_id, att.array_index))
            self.cancel_ids.append(att.id)

    def _retry_intent(self, work: Work, seen: Seen, row: Transition) -> None:
        att = seen.attempt
        assert att is not None
        self.retry_intents[att.submission_id] = att.submission_tag

    def _end_attempt(self, work: Work, seen: Seen, row: Transition) -> None:
        att, obs = seen.attempt, seen.task
        assert att is not None and row.attempt is not None
        phase = row.attempt._value_
        check_attempt(att.phase, phase)
        if obs is None:
            patch = AttemptPatch(
                att.id, phase, seen.job_id, att.state, seen.reason, seen.message,
                None, att.restarts, att.start_time, self.now, att.last_seen,
                att.cancel_requested_at, True,
            )  # fmt: skip
        else:
            patch = AttemptPatch(
                att.id, phase, seen.job_id, obs.state, seen.reason, seen.message,
                obs.exit_code, obs.restarts, obs.start_time or att.start_time,
                obs.end_time or self.now, self.now, att.cancel_requested_at, True,
                obs.rank_exit_codes, obs.first_failed_rank,
            )  # fmt: skip
        self.attempts.append(patch)
        work.active = None
        work.clear_active = True

    def _complete(self, work: Work, seen: Seen, row: Transition) -> None:
        work.reason, work.message = "Completed", None
        work.exit_code = seen.task.exit_code if seen.task else None
        work.next_attempt_after = None

    def _stop(self, work: Work, seen: Seen, row: Transition) -> None:
        work.reason, work.message = seen.why, f"stopped: {seen.why}"
        work.next_attempt_after = None

    def _account(self, work: Work, seen: Seen, row: Transition) -> None:
        """Charge the failed attempt to a budget; the verdict is the next event."""
        exit_code = seen.task.exit_code if seen.task else None
        reason = FailureReason(seen.reason)
        verdict = account(self.exp.spec, reason, exit_code, work.failures, work.disruptions)
        self.handled.append(FailureHandled(reason.value, verdict.action.value))
        work.failures, work.disruptions = verdict.failures, verdict.disruptions
        work.exit_code = exit_code
        work.retry_reason = reason.value
        if verdict.scale is not None:  # the next attempt asks for more (failurePolicy scale)
            work.resource_scale = next_scale(work.resource_scale, verdict.scale)
        self.fire(work, seen._replace(event=verdict.event))

    def detail(self, work: Work, seen: Seen) -> str:
        """``attempt N ended: <reason> (exit code C): <message>``."""
        assert seen.attempt is not None
        text = f"attempt {seen.attempt.number} ended: {seen.reason}"
        if work.exit_code is not None:
            text += f" (exit code {work.exit_code})"
        return text + (f": {seen.message}" if seen.message else "")

    def _resubmit_now(self, work: Work, seen: Seen, row: Transition) -> None:
        detail = self.detail(work, seen)
        work.next_attempt_after = None
        work.reason, work.message = seen.reason, detail
        name = self.wu_name(work.record)
        self.events.append(
            Notice("Warning", str(seen.reason), f"{detail}; resubmitting", "WorkUnit", name)
        )

    def _back_off(self, work: Work, seen: Seen, row: Transition) -> None:
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

    def _fail_index(self, work: Work, seen: Seen, row: Transition) -> None:
        detail = self.detail(work, seen)
        reason, message = _FAIL_WORDING.get(row.event, (None, ""))
        reason = reason or str(seen.reason)
        work.reason, work.message = reason, detail + message
        work.next_attempt_after = None
        self.newly_failed.append(work.record.index)
        self.events.append(
            Notice("Warning", reason, work.message, "WorkUnit", self.wu_name(work.record))
        )

    def _fail_experiment(self, work: Work, seen: Seen, row: Transition) -> None:
        if self.fail_experiment is None:
            detail = self.detail(work, seen)
            self.fail_experiment = ("FailJobRule", f"work unit {work.record.index}: {detail}")

    def _wait(self, work: Work, seen: Seen, row: Transition) -> None:
        """The unmet dependencies become the message (written when they change)."""
        wu = work.record
        if wu.phase != row.target or wu.message != seen.message:
            work.reason, work.message = WAITING_REASON, seen.message

    def _note_dependency(self, work: Work, seen: Seen, row: Transition) -> None:
        if row.event is Event.DEPENDENCY_MET:  # the reason says so until the attempt ends
            work.reason, work.message = MET_REASON, None
        notes = self.dependency_notes.setdefault(row.event, [])
        notes.append((work.record.index, seen.message or ""))

    def _dependency_failed(self, work: Work, seen: Seen, row: Transition) -> None:
        work.reason, work.message = FAILED_REASON, seen.message
        work.next_attempt_after = None

    def dependency_events(self) -> list[Notice]:
        """One event per work unit whose dependencies were met or failed this plan; past
        :data:`DEPENDENCY_EVENTS_PER_UNIT` units, one event for the experiment."""
        out: list[Notice] = []
        for event, notes in self.dependency_notes.items():
            met = event is Event.DEPENDENCY_MET
            kind = "Normal" if met else "Warning"
            if len(notes) <= DEPENDENCY_EVENTS_PER_UNIT:
                for index, message in notes:
                    text = "dependencies met: submitting" if met else f"stopped: {message}"
                    name = f"{self.exp.name}/{index}"
                    out.append(Notice(kind, event.value, text, "WorkUnit", name))
                continue
            shown = ", ".join(str(i) for i, _ in notes[:20]) + (" ..." if len(notes) > 20 else "")
            what = "submitting" if met else f"stopped ({notes[0][1]}, ...)"
            text = f"{len(notes)} work units' dependencies {'met' if met else 'failed'}: {what}"
            out.append(Notice(kind, event.value, f"{text}; indexes {shown}", "Experiment",
                              self.exp.name))  # fmt: skip
        return out

    def _hold(self, work: Work, seen: Seen, row: Transition) -> None:
        """Not submitted. The first plan that holds it says why (reason, message, one event,
        the experiment's RuntimeReady condition); later plans write nothing while that stands."""
        work.next_attempt_after = None
        if self.held is None:
            self.held = seen.message
            if not _condition_says(self.exp, "RuntimeReady", seen.message):
                self.events.append(
                    Notice(
                        "Warning",
                        str(seen.reason),
                        f"{seen.message}: nothing submitted",
                        "Experiment",
                        self.exp.name,
                    )
                )
        said = _condition_says(self.exp, "RuntimeReady", seen.message)
        if not said or work.phase != WorkUnitPhase.PENDING.value:
            work.reason, work.message = seen.reason, seen.message

    def _submit(self, work: Work, seen: Seen, row: Transition) -> None:
        wu = work.record
        scale = tuple(sorted((work.resource_scale or {}).items()))
        entry = SubmitEntry(wu.id, wu.index, wu.attempt_count + 1, work.retry_reason, scale)
        (self.retries if wu.attempt_count else self.fresh).append(entry)
        work.next_attempt_after = None

    def _wait_for_artifacts(self, work: Work, seen: Seen, row: Transition) -> None:
        missing = len(self.exp.spec.needed_artifacts) - len(self.exp.staged)
        work.reason = seen.reason
        work.message = (
            f"waiting for {missing} artifact(s) to be staged on cluster {self.exp.cluster} "
            "(see condition ArtifactsReady)"
        )


EFFECTS: dict[Effect, Callable[[PlanState, Work, Seen, Transition], None]] = {
    Effect.ADOPT: PlanState._adopt,
    Effect.RECORD_TASK: PlanState._record_task,
    Effect.RECORD_JOB_ID: PlanState._record_job_id,
    Effect.CANCEL: PlanState._cancel,
    Effect.RETRY_INTENT: PlanState._retry_intent,
    Effect.END_ATTEMPT: PlanState._end_attempt,
    Effect.COMPLETE: PlanState._complete,
    Effect.STOP: PlanState._stop,
    Effect.ACCOUNT: PlanState._account,
    Effect.RESUBMIT_NOW: PlanState._resubmit_now,
    Effect.BACK_OFF: PlanState._back_off,
    Effect.FAIL_INDEX: PlanState._fail_index,
    Effect.FAIL_EXPERIMENT: PlanState._fail_experiment,
    Effect.SUBMIT: PlanState._submit,
    Effect.WAIT: PlanState._wait,
    Effect.NOTE_DEPENDENCY: PlanState._note_dependency,
    Effect.DEPENDENCY_FAILED: PlanState._dependency_failed,
    Effect.HOLD: PlanState._hold,
    Effect.WAIT_FOR_ARTIFACTS: PlanState._wait_for_artifacts,
}


def _condition_says(exp: ExperimentRecord, kind: str, message: str | None) -> bool:
    """The experiment's ``kind`` condition is already False with this message."""
    if exp.status is None:
        return False
    return any(
        c.type == kind and c.status is ConditionStatus.FALSE and c.message == message
        for c in exp.status.conditions
    )


#: budget verdicts whose reason is the limit that was spent, with the message's ending
_FAIL_WORDING: dict[Event, tuple[str, str]] = {
    Event.DISRUPTION_LIMIT_EXCEEDED: ("DisruptionLimitExceeded", "; disruption limit spent"),
    Event.BACKOFF_LIMIT_EXCEEDED: ("BackoffLimitExceeded", "; no retries left"),
}
