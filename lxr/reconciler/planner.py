"""The planner: ``plan(desired, observed, now) -> actions``. A pure function, no I/O.

Each active work unit of an experiment goes through three small stages:

1. **Classify** (:mod:`lxr.reconciler.classify`): the record and the snapshot
   become one :class:`~lxr.api.phases.Event` (``TaskRunning``, ``TaskLost``, ``Ready``, ...).
2. **Look the row up** in :data:`~lxr.api.phases.WORK_UNIT_TRANSITIONS`: the target phase, what
   the attempt becomes, and the effects, carried out in order (one method per
   :class:`~lxr.api.phases.Effect`, in :mod:`lxr.reconciler.effects`). An event with no row
   from the current phase raises :class:`~lxr.api.phases.IllegalTransition`.
3. **Budget accounting** (:func:`~lxr.reconciler.policy.account`): a failed attempt is charged
   to the failure or the disruption budget; the verdict is another event, looked up the same way.

Then, for the experiment as a whole: more failed work units than ``maxFailedIndexes`` fail it
(``MaxFailedIndexesExceeded``); a failing experiment cancels what is still in flight now
(``ExperimentFailing``); work units with nothing in flight are classified (stop, wait out the
backoff, wait for a dependency, or submit: first attempts, those whose dependencies were met
this cycle among them, as one ``Submit`` array, retries as one ``Resubmit``).
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

from lxr.api.phases import (
    WORK_UNIT_TERMINAL,
    WORK_UNIT_TRANSITIONS,
    AttemptPhase,
    Event,
    SubmissionEvent,
    SubmissionState,
    Transition,
    WorkUnitPhase,
    submission_transition,
    work_unit_transition,
)
from lxr.api.records import ExperimentRecord
from lxr.api.resources import RemovedWorkUnitPolicy
from lxr.reconciler.actions import (
    Action,
    Cancel,
    Resubmit,
    RetryIntent,
    Submit,
    UpdateStatus,
    WorkUnitPatch,
)
from lxr.reconciler.actions import Event as Notice
from lxr.reconciler.classify import (
    LOST_AFTER_SECONDS,
    TASK_EVENTS,
    Seen,
    classify_attempt,
    classify_idle,
)
from lxr.reconciler.dependencies import DependencyIndex, needs_upstream
from lxr.reconciler.effects import (
    CANCEL_REPEAT_SECONDS,
    EFFECTS,
    PlanState,
    Work,
)
from lxr.reconciler.status import plan_status
from lxr.schedulers.base import Snapshot

__all__ = [
    "CANCEL_REPEAT_SECONDS",
    "LOST_AFTER_SECONDS",
    "TASK_EVENTS",
    "Seen",
    "classify_attempt",
    "classify_idle",
    "delete_held",
    "plan",
    "plan_experiment",
]


class _ExperimentPlan(PlanState):
    """Plans one experiment against one snapshot."""

    @property
    def retain_removed(self) -> bool:
        """Work units a sweep edit removed are kept once stopped (removedWorkUnitPolicy)."""
        return self.exp.spec.removed_work_unit_policy is RemovedWorkUnitPolicy.RETAIN

    # ------------------------------------------------------------------ the machine

    def fire(self, work: Work, seen: Seen) -> None:
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

    # ------------------------------------------------------------------ experiment

    def units_stopping(self, works: list[Work]) -> str:
        """Why the work units whose tasks this plan cancels stop: ``StopRequested``,
        ``RemovedFromSpec`` or both."""
        cancelled = set(self.cancel_ids)
        whys = {
            self.stopping_for(w.record)
            for w in works
            if w.record.active is not None and w.record.active.id in cancelled
        }
        return ", ".join(sorted(w for w in whys if w)) or "StopRequested"

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
        works = list(map(Work.of, self.exp.work_units))
        snap, now, fire = self.snap, self.now, self.fire
        # the common case (nothing asks a unit to stop) without a call per unit; a row that
        # fails the experiment midway (fail_experiment) stops the units after it
        exp_stops = self.exp.deleting or bool(self.exp.failed_reason)
        for work in works:
            att = work.active
            if att is not None and work.phase not in WORK_UNIT_TERMINAL:
                wu = work.record
                must_stop = (
                    wu.stop_requested or wu.removed or exp_stops or self.fail_experiment is not None
                )
                why = self.stopping_for(wu) if must_stop else None
                adoption, seen = classify_attempt(att, snap, why, now)
                if adoption is not None:
                    fire(work, adoption)
                fire(work, seen)

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

        deps = DependencyIndex(self.exp) if needs_upstream(self.exp) else None
        missing = self.runtime_missing()
        for work in works:
            if work.phase in WORK_UNIT_TERMINAL or work.active is not None:
                continue
            why = self.stopping_for(work.record)
            verdict = None
            if deps is not None and not why and deps.has_dependencies(work.record):
                verdict = deps.verdict(work.record)
            seen = classify_idle(
                work.record,
                work.next_attempt_after,
                why,
                self.now,
                verdict,
                runtime_missing=missing,
                artifacts_ready=self.exp.artifacts_ready,
            )
            self.fire(work, seen)
        self.events.extend(self.dependency_events())
        return self.actions(works)

    def actions(self, works: list[Work]) -> list[Action]:
        """The plan: one status update, then cancels, intents retried, submissions."""
        actions: list[Action] = []
        # removed by a sweep edit and stopped now: deleted (Retain keeps them)
        gone = [] if self.retain_removed else [
            w for w in works if w.record.removed and w.phase in WORK_UNIT_TERMINAL
        ]  # fmt: skip
        if gone:
            shown = ", ".join(str(w.record.index) for w in gone[:20])
            self.events.append(
                Notice(
                    "Normal",
                    "WorkUnitsRemoved",
                    f"removed {len(gone)} work unit(s) no longer in the spec: {shown}",
                    "Experiment",
                    self.exp.name,
                )
            )
        removed = {w.record.id for w in gone}
        gone_before = [(w.record.phase, w.record.attempt_count == 0) for w in gone]
        # the experiment's reason, else why the units being cancelled stop (the user stopped
        # them, a sweep edit removed them)
        stopping = self.stopping or (self.units_stopping(works) if self.cancel else "")
        patches, moves = _patches(works, removed)
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
            remove=tuple(sorted(removed)),
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
        status = plan_status(
            self.exp,
            moves,
            len(self.fresh),
            self.newly_failed,
            self.fail_experiment,
            self.now,
            removed=gone_before,
            runtime_missing=self.held,
        )
        if status is not None:
            actions.append(status)
        return actions


def _patches(
    works: list[Work], removed: set[int]
) -> tuple[tuple[WorkUnitPatch, ...], dict[tuple[str, str], int]]:
    """The work units' patches, and how many units move between which phases (those not
    ``removed``). ``works`` is emptied as it goes: a unit's scratch state is let go as its
    patch is made (100k of each would be held at once otherwise, ~14 MB at the peak)."""
    patches: list[WorkUnitPatch] = []
    moves: dict[tuple[str, str], int] = {}
    works.reverse()
    while works:
        work = works.pop()
        p = work.patch()
        if p is None:
            continue
        patches.append(p)
        before = work.record.phase
        if p.phase != before and work.record.id not in removed:
            move = (before, p.phase)
            moves[move] = moves.get(move, 0) + 1
    return tuple(patches), moves


#: (phase, event) -> the row, its effects' methods and its target (a plain string), resolved once
_STEPS: dict[tuple[str, Event], tuple[Transition, tuple[Callable[..., None], ...], str | None]] = {
    (source.value, row.event): (
        row,
        tuple(EFFECTS[e] for e in row.effects),
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
