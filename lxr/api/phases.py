"""Every phase of attempts, work units, submissions and experiments, and every move between them.

This module answers "who changes a work unit's phase, and why": nothing but the rows of
:data:`WORK_UNIT_TRANSITIONS`. The planner (:mod:`lxr.reconciler.planner`) classifies what it
sees into an :class:`Event`, looks the row up here and carries out the row's effects; the store
only writes what the plan decided. Modelled on h11's ``_state.py``.

Rules:

1. **The vocabulary is defined once.** The phases are the enums below; the sets that group them
   (:data:`WORK_UNIT_TERMINAL`, :data:`WORK_UNIT_ACTIVE`, :data:`WORK_UNIT_IN_FLIGHT`,
   :data:`ATTEMPT_TERMINAL`, :data:`EXPERIMENT_TERMINAL`) too. Nothing else in ``lxr`` spells
   a phase as a string.
2. **A work unit moves only by a row of the table.** A row is ``(sources, event) -> target,
   attempt, effects``. ``target`` is ``None`` when the row leaves the phase as it is, or when a
   follow-up event decides it: a failed attempt (``ACCOUNT``) is charged to a budget by
   :mod:`lxr.reconciler.policy`, whose verdict is an event of its own (``Disrupted``,
   ``RetryAfterBackoff``, ``...LimitExceeded``, ``IndexFailed``, ``JobFailed``).
3. **Illegal moves raise** :class:`IllegalTransition`: an event with no row from the current
   phase (:func:`work_unit_transition`), a phase change no row allows (``check_*``). The
   allowed-transitions maps are derived from the tables, never written by hand.
4. **Terminal is terminal.** A work unit or attempt in a terminal phase never moves again
   (``lxr rerun`` re-admits a finished unit: the store writes it back in
   :data:`WORK_UNIT_INITIAL` with a fresh budget, as at creation, its attempts kept); an
   experiment that finished moves only to ``Stopping``/``Stopped`` (being deleted), or back to
   work when it was given new work (a sweep edit or a rerun: a new generation).
5. **A submission** is an intent recorded before the scheduler is called, then accepted,
   adopted by its tag, or rejected (the next plan ends its attempts with reason
   ``SubmitError``): :data:`SUBMISSION_TRANSITIONS`.
6. **An experiment's phase is derived**, never stored by an event: the first row of
   :data:`EXPERIMENT_PHASE_RULES` whose condition holds for its work-unit counts.

A new phase or event (a dependency that is not met yet, staging, a gang of nodes) is a new enum
member and new rows here, and a classifier that emits the event; no new branch elsewhere.

``python -m lxr.api.phase_docs`` writes these tables into README.md; a test fails when stale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ATTEMPT_MOVES",
    "ATTEMPT_TERMINAL",
    "EXPERIMENT_INITIAL",
    "EXPERIMENT_PHASE_RULES",
    "EXPERIMENT_TERMINAL",
    "SUBMISSION_TRANSITIONS",
    "WITH_ATTEMPT",
    "WITH_JOB",
    "WORK_UNIT_ACTIVE",
    "WORK_UNIT_INITIAL",
    "WORK_UNIT_IN_FLIGHT",
    "WORK_UNIT_MOVES",
    "WORK_UNIT_TERMINAL",
    "WORK_UNIT_TRANSITIONS",
    "AttemptPhase",
    "Effect",
    "Event",
    "ExperimentFacts",
    "ExperimentPhase",
    "IllegalTransition",
    "SubmissionEvent",
    "SubmissionState",
    "SubmissionTransition",
    "TaskPhase",
    "Transition",
    "WorkUnitPhase",
    "check_attempt",
    "check_experiment",
    "check_submission",
    "check_work_unit",
    "experiment_phase",
    "submission_transition",
    "work_unit_transition",
]


class WorkUnitPhase(str, Enum):
    """A work unit's phase."""

    PENDING = "Pending"  # waiting to be submitted, or submitted and not yet seen in the queue
    WAITING = "Waiting"  # not submitted: a dependency (spec.dependsOn) is not met yet
    QUEUED = "Queued"
    RUNNING = "Running"
    BACKOFF = "BackOff"  # a counted failure; the next attempt waits for nextAttemptAfter
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    UNKNOWN = "Unknown"  # submitted, but the scheduler does not report it right now


class AttemptPhase(str, Enum):
    """One attempt's phase (one submission of a work unit)."""

    PENDING = "Pending"  # recorded as an intent, no job id yet
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"


class SubmissionState(str, Enum):
    """Where a recorded submission (one job array) stands with the scheduler."""

    INTENT = "Intent"  # recorded before the scheduler was called
    SUBMITTED = "Submitted"  # the scheduler gave it a job id
    FAILED = "Failed"  # the scheduler refused it


class ExperimentPhase(str, Enum):
    """The experiment's phase, derived from its work units for display."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class TaskPhase(str, Enum):
    """Where one array task stands, as a driver reports it in lxr's terms (drivers map their
    scheduler's native states to these; the planner classifies them into events)."""

    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # ended without success; ``reason`` says why
    CANCELLED = "Cancelled"  # cancelled (by lxr or by someone else)

    @property
    def finished(self) -> bool:
        """True when the task will not change any more."""
        return self in (TaskPhase.SUCCEEDED, TaskPhase.FAILED, TaskPhase.CANCELLED)


WP, AP = WorkUnitPhase, AttemptPhase

#: the phase a work unit is created in
WORK_UNIT_INITIAL = WP.PENDING
#: work units that never move again
WORK_UNIT_TERMINAL = frozenset({WP.SUCCEEDED, WP.FAILED, WP.STOPPED})
#: work units the controller still works on (everything not terminal)
WORK_UNIT_ACTIVE = frozenset(WP) - WORK_UNIT_TERMINAL
#: work units whose task the scheduler reports as queued or running
WORK_UNIT_IN_FLIGHT = frozenset({WP.QUEUED, WP.RUNNING})
#: the phases a work unit can be in while it has an attempt that has not ended
WITH_ATTEMPT = frozenset({WP.PENDING, WP.QUEUED, WP.RUNNING, WP.UNKNOWN})
#: the phases a work unit can be in while its attempt has a job id the scheduler gave
WITH_JOB = frozenset({WP.QUEUED, WP.RUNNING, WP.UNKNOWN})
#: attempts that ended
ATTEMPT_TERMINAL = frozenset({AP.SUCCEEDED, AP.FAILED, AP.STOPPED})
#: the phase an experiment is created in
EXPERIMENT_INITIAL = ExperimentPhase.PENDING
#: experiments that finished (every work unit terminal)
EXPERIMENT_TERMINAL = frozenset(
    {ExperimentPhase.SUCCEEDED, ExperimentPhase.FAILED, ExperimentPhase.STOPPED}
)


class IllegalTransition(RuntimeError):
    """A phase change, or an event in a phase, that no row of the tables allows."""


class Event(str, Enum):
    """What the planner saw for one work unit in one cycle (or what the budget decided)."""

    # an attempt not yet confirmed by the scheduler
    SUBMIT_REJECTED = "SubmitRejected"
    INTENT_UNCONFIRMED = "IntentUnconfirmed"
    INTENT_ABANDONED = "IntentAbandoned"
    ADOPTED = "Adopted"
    # the attempt's task, as the snapshot reports it
    TASK_QUEUED = "TaskQueued"
    TASK_RUNNING = "TaskRunning"
    TASK_QUEUED_UNWANTED = "TaskQueuedUnwanted"
    TASK_RUNNING_UNWANTED = "TaskRunningUnwanted"
    TASK_SUCCEEDED = "TaskSucceeded"
    TASK_FAILED = "TaskFailed"
    TASK_CANCELLED = "TaskCancelled"
    TASK_ENDED_AFTER_CANCEL = "TaskEndedAfterCancel"
    TASK_UNREPORTED = "TaskUnreported"
    TASK_UNREPORTED_UNWANTED = "TaskUnreportedUnwanted"
    TASK_GONE_AFTER_CANCEL = "TaskGoneAfterCancel"
    TASK_LOST = "TaskLost"
    # a task of several ranks runs on although one of its ranks exited non-zero a while ago
    GANG_BROKEN = "GangBroken"
    # the failure budget's verdict on an ended attempt
    DISRUPTED = "Disrupted"
    RETRY_AFTER_BACKOFF = "RetryAfterBackoff"
    DISRUPTION_LIMIT_EXCEEDED = "DisruptionLimitExceeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    INDEX_FAILED = "IndexFailed"
    JOB_FAILED = "JobFailed"
    # the experiment failed as a whole this cycle: what is still in flight is cancelled now
    EXPERIMENT_FAILING = "ExperimentFailing"
    # a work unit with no attempt in flight
    STOP_WANTED = "StopWanted"
    BACKOFF_PENDING = "BackoffPending"
    RUNTIME_MISSING = "RuntimeMissing"
    READY = "Ready"
    # a work unit never submitted whose dependencies (spec.dependsOn) say
    DEPENDENCY_PENDING = "DependencyPending"
    DEPENDENCY_MET = "DependencyMet"
    DEPENDENCY_FAILED = "DependencyFailed"
    # ready, but the cluster lacks an artifact of the executable (staging comes first)
    ARTIFACTS_PENDING = "ArtifactsPending"


class Effect(str, Enum):
    """What the planner does when a row applies (one small method each)."""

    ADOPT = "adopt"  # record the job that carries the intent's tag
    RECORD_TASK = "record-task"  # write the task's observed state to the attempt when it moved
    RECORD_JOB_ID = "record-job-id"  # an adopted job not in the queue: keep its id
    CANCEL = "cancel"  # cancel the task (at most every CANCEL_REPEAT_SECONDS)
    RETRY_INTENT = "retry-intent"  # submit the recorded intent again, same tag
    END_ATTEMPT = "end-attempt"  # the attempt is final, in the row's attempt phase
    COMPLETE = "complete"  # reason Completed, the task's exit code
    STOP = "stop"  # reason: why it stops (Deleted, ExperimentFailed, StopRequested)
    ACCOUNT = "account"  # apply the failure policy: the budget's verdict is the next event
    RESUBMIT_NOW = "resubmit-now"  # a disruption: retry without waiting
    BACK_OFF = "back-off"  # a counted failure: retry after a persisted delay
    FAIL_INDEX = "fail-index"  # the work unit failed for good
    FAIL_EXPERIMENT = "fail-experiment"  # the whole experiment fails
    SUBMIT = "submit"  # start a new attempt (first attempts and retries, one array each)
    WAIT = "wait"  # the unmet dependencies become the work unit's message
    NOTE_DEPENDENCY = "note-dependency"  # an event: met (reason DependenciesMet), or cannot be
    DEPENDENCY_FAILED = "dependency-failed"  # reason DependencyFailed, the upstream outcome
    HOLD = "hold"  # not submitted: reason and message say what is missing (once, not each pass)
    WAIT_FOR_ARTIFACTS = "wait-for-artifacts"  # reason ArtifactsNotReady, what is missing


E, X = Event, Effect


@dataclass(frozen=True)
class Transition:
    """One row: in any of ``sources``, ``event`` moves the work unit to ``target`` (``None``:
    stays, or the follow-up event decides), its attempt to ``attempt`` (``None``: unchanged),
    and runs ``effects`` in order."""

    sources: frozenset[WorkUnitPhase]
    event: Event
    target: WorkUnitPhase | None
    attempt: AttemptPhase | None
    effects: tuple[Effect, ...]
    why: str


_row = Transition
#: the phases of a work unit that has never been submitted
_NOT_SUBMITTED = frozenset({WP.PENDING, WP.WAITING})

#: the work-unit state machine, every row of it
WORK_UNIT_TRANSITIONS: tuple[Transition, ...] = (
    # -- an intent the scheduler has not confirmed
    _row(WITH_ATTEMPT, E.SUBMIT_REJECTED, None, AP.FAILED, (X.END_ATTEMPT, X.ACCOUNT),
         "the scheduler refused the submission (reason SubmitError)"),
    _row(WITH_ATTEMPT, E.INTENT_UNCONFIRMED, WP.PENDING, None, (X.RETRY_INTENT,),
         "no job carries the intent's tag: submit it again under the same tag"),
    _row(WITH_ATTEMPT, E.INTENT_ABANDONED, WP.STOPPED, AP.STOPPED, (X.END_ATTEMPT, X.STOP),
         "no job carries the tag and the work unit must stop: never submitted"),
    _row(WITH_ATTEMPT, E.ADOPTED, None, None, (X.ADOPT,),
         "a job carries the intent's tag: adopted, not submitted again"),
    # -- the task as the snapshot reports it
    _row(WITH_ATTEMPT, E.TASK_QUEUED, WP.QUEUED, AP.QUEUED, (X.RECORD_TASK,),
         "the scheduler has it queued"),
    _row(WITH_ATTEMPT, E.TASK_RUNNING, WP.RUNNING, AP.RUNNING, (X.RECORD_TASK,),
         "the scheduler runs it"),
    _row(WITH_ATTEMPT, E.TASK_QUEUED_UNWANTED, WP.QUEUED, AP.QUEUED, (X.RECORD_TASK, X.CANCEL),
         "queued, but the work unit must stop"),
    _row(WITH_ATTEMPT, E.TASK_RUNNING_UNWANTED, WP.RUNNING, AP.RUNNING, (X.RECORD_TASK, X.CANCEL),
         "running, but the work unit must stop"),
    _row(WITH_ATTEMPT, E.TASK_SUCCEEDED, WP.SUCCEEDED, AP.SUCCEEDED, (X.END_ATTEMPT, X.COMPLETE),
         "the task exited 0"),
    _row(WITH_ATTEMPT, E.TASK_FAILED, None, AP.FAILED, (X.END_ATTEMPT, X.ACCOUNT),
         "the task ended without success: the failure policy decides"),
    _row(WITH_ATTEMPT, E.TASK_CANCELLED, None, AP.FAILED, (X.END_ATTEMPT, X.ACCOUNT),
         "someone other than lxr cancelled it (reason Cancelled)"),
    _row(WITH_ATTEMPT, E.TASK_ENDED_AFTER_CANCEL, WP.STOPPED, AP.STOPPED, (X.END_ATTEMPT, X.STOP),
         "lxr cancelled it: however it ended, not the program's failure"),
    _row(WITH_ATTEMPT, E.TASK_UNREPORTED, WP.UNKNOWN, None, (X.RECORD_JOB_ID,),
         "not in the snapshot, not yet lost"),
    _row(WITH_ATTEMPT, E.TASK_UNREPORTED_UNWANTED, WP.UNKNOWN, None, (X.CANCEL, X.RECORD_JOB_ID),
         "not in the snapshot and the work unit must stop"),
    _row(WITH_ATTEMPT, E.TASK_GONE_AFTER_CANCEL, WP.STOPPED, AP.STOPPED, (X.END_ATTEMPT, X.STOP),
         "lxr cancelled it and it is gone"),
    _row(WITH_ATTEMPT, E.TASK_LOST, None, AP.FAILED, (X.END_ATTEMPT, X.ACCOUNT),
         "unreported for LOST_AFTER_SECONDS (reason Lost, a disruption)"),
    _row(WITH_ATTEMPT, E.GANG_BROKEN, WP.RUNNING, AP.RUNNING, (X.RECORD_TASK, X.CANCEL),
         "a rank exited non-zero GANG_GRACE_SECONDS ago and the others run on: the whole "
         "allocation is cancelled, its end counted as that rank's failure (reason Error)"),
    # -- the budget's verdict on the ended attempt
    _row(WITH_ATTEMPT, E.DISRUPTED, WP.PENDING, None, (X.RESUBMIT_NOW,),
         "a disruption within disruptionLimitPerIndex: resubmitted at once"),
    _row(WITH_ATTEMPT, E.RETRY_AFTER_BACKOFF, WP.BACKOFF, None, (X.BACK_OFF,),
         "a counted failure within backoffLimitPerIndex"),
    _row(WITH_ATTEMPT, E.DISRUPTION_LIMIT_EXCEEDED, WP.FAILED, None, (X.FAIL_INDEX,),
         "disruptionLimitPerIndex spent"),
    _row(WITH_ATTEMPT, E.BACKOFF_LIMIT_EXCEEDED, WP.FAILED, None, (X.FAIL_INDEX,),
         "backoffLimitPerIndex spent"),
    _row(WITH_ATTEMPT, E.INDEX_FAILED, WP.FAILED, None, (X.FAIL_INDEX,),
         "a FailIndex rule (or a person's cancel)"),
    _row(WITH_ATTEMPT, E.JOB_FAILED, WP.FAILED, None, (X.FAIL_INDEX, X.FAIL_EXPERIMENT),
         "a FailJob rule: the whole experiment fails"),
    _row(WITH_JOB, E.EXPERIMENT_FAILING, None, None, (X.CANCEL,),
         "the experiment failed this cycle: cancel its tasks now"),
    # -- no attempt in flight
    _row(WORK_UNIT_ACTIVE, E.STOP_WANTED, WP.STOPPED, None, (X.STOP,),
         "deleted, the experiment failed, or the user stopped this work unit"),
    _row(WORK_UNIT_ACTIVE, E.BACKOFF_PENDING, WP.BACKOFF, None, (),
         "nextAttemptAfter is still ahead"),
    _row(WORK_UNIT_ACTIVE, E.RUNTIME_MISSING, WP.PENDING, None, (X.HOLD,),
         "a program it needs (runtime, interpreter) is not on the cluster: not submitted"),
    _row(WORK_UNIT_ACTIVE, E.READY, WP.PENDING, AP.PENDING, (X.SUBMIT,),
         "submitted: first attempts as one array, retries as another"),
    # -- never submitted, with dependencies
    _row(_NOT_SUBMITTED, E.DEPENDENCY_PENDING, WP.WAITING, None, (X.WAIT,),
         "a dependency is not met yet: the message names it"),
    _row(_NOT_SUBMITTED, E.DEPENDENCY_MET, WP.PENDING, AP.PENDING, (X.NOTE_DEPENDENCY, X.SUBMIT),
         "every dependency is met: submitted this cycle, with the other ready units"),
    _row(_NOT_SUBMITTED, E.DEPENDENCY_FAILED, WP.STOPPED, None,
         (X.DEPENDENCY_FAILED, X.NOTE_DEPENDENCY),
         "an upstream outcome is final and not the one asked for (reason DependencyFailed)"),
    _row(WORK_UNIT_ACTIVE, E.ARTIFACTS_PENDING, WP.PENDING, None, (X.WAIT_FOR_ARTIFACTS,),
         "ready, but an artifact is not on the cluster yet: the controller stages it first"),
)  # fmt: skip

_BY_KEY: dict[tuple[WorkUnitPhase, Event], Transition] = {}
for _t in WORK_UNIT_TRANSITIONS:
    for _source in _t.sources:
        assert (_source, _t.event) not in _BY_KEY, f"two rows for {_source.value} + {_t.event}"
        _BY_KEY[(_source, _t.event)] = _t


def work_unit_transition(phase: WorkUnitPhase | str, event: Event) -> Transition:
    """The row for ``event`` in ``phase``; :class:`IllegalTransition` if there is none."""
    # a str enum hashes as its value: a phase read from the store looks up as it is
    row = _BY_KEY.get((phase, event))  # type: ignore[arg-type]
    if row is None:
        name = getattr(phase, "value", phase)
        raise IllegalTransition(f"work unit: no transition on {event.value} from {name}")
    return row


def _moves(pairs: list[tuple[str, str]]) -> Mapping[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for src, dst in pairs:
        out.setdefault(src, {src}).add(dst)
    return {k: frozenset(v) for k, v in out.items()}


#: phase -> the phases the table can move a work unit to (itself included)
WORK_UNIT_MOVES = _WU_MOVES = _moves(
    [(s.value, s.value) for s in WP]
    + [(s.value, t.target.value) for t in WORK_UNIT_TRANSITIONS for s in t.sources if t.target]
)
_ATTEMPT_TARGETS = {t.attempt for t in WORK_UNIT_TRANSITIONS if t.attempt} | {AP.QUEUED}
#: attempt phase -> the phases an attempt can move to (itself included)
ATTEMPT_MOVES = _ATTEMPT_MOVES = _moves(
    [(a.value, a.value) for a in AP]
    + [
        (a.value, b.value)
        for a in AP
        if a not in ATTEMPT_TERMINAL
        for b in _ATTEMPT_TARGETS
        if b is not AP.PENDING
    ]
)


def check_work_unit(source: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless some row moves a work unit from ``source`` to
    ``target``."""
    if target not in _WU_MOVES.get(source, ()):
        raise IllegalTransition(f"work unit: {source} -> {target} is not a transition")


def check_attempt(source: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless an attempt may move from ``source`` to ``target``
    (an ended attempt never moves)."""
    if target not in _ATTEMPT_MOVES.get(source, ()):
        raise IllegalTransition(f"attempt: {source} -> {target} is not a transition")


# ---------------------------------------------------------------------------- submissions


class SubmissionEvent(str, Enum):
    """What became of a recorded submission."""

    ACCEPTED = "Accepted"  # the scheduler returned a job id
    ADOPTED = "Adopted"  # a snapshot shows a job with the submission's tag
    REJECTED = "Rejected"  # the scheduler refused it (SubmitRejected)


@dataclass(frozen=True)
class SubmissionTransition:
    """A submission row: ``source`` + ``event`` -> ``target``; its attempts move to
    ``attempt`` (``None``: unchanged); ``event_reason`` names the event recorded, if any."""

    source: SubmissionState
    event: SubmissionEvent
    target: SubmissionState
    attempt: AttemptPhase | None
    event_reason: str | None


SS, SE = SubmissionState, SubmissionEvent

#: a submission's life: intent first, then what the scheduler made of it
SUBMISSION_TRANSITIONS: tuple[SubmissionTransition, ...] = (
    SubmissionTransition(SS.INTENT, SE.ACCEPTED, SS.SUBMITTED, AP.QUEUED, None),
    SubmissionTransition(SS.INTENT, SE.ADOPTED, SS.SUBMITTED, None, "Adopted"),
    SubmissionTransition(SS.INTENT, SE.REJECTED, SS.FAILED, None, "SubmitRejected"),
)
_SUBMISSION = {(t.source, t.event): t for t in SUBMISSION_TRANSITIONS}


def submission_transition(
    source: SubmissionState | str, event: SubmissionEvent
) -> SubmissionTransition:
    """The row for ``event`` on a submission in ``source``; raises :class:`IllegalTransition`."""
    row = _SUBMISSION.get((SubmissionState(source), event))
    if row is None:
        name = getattr(source, "value", source)
        raise IllegalTransition(f"submission: no transition on {event.value} from {name}")
    return row


def check_submission(source: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless a submission may move ``source`` -> ``target``."""
    if source != target and not any(
        t.source.value == source and t.target.value == target for t in SUBMISSION_TRANSITIONS
    ):
        raise IllegalTransition(f"submission: {source} -> {target} is not a transition")


# ---------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class ExperimentFacts:
    """What an experiment's phase is derived from."""

    deleting: bool
    finished: bool  # no work unit active
    failed: bool  # a work unit failed, or the experiment failed as a whole
    stopped: bool  # a work unit stopped
    none_submitted: bool  # no work unit had an attempt yet


EP = ExperimentPhase
_Rule = tuple[str, Callable[[ExperimentFacts], bool], ExperimentPhase]
#: first match wins: (condition as the README shows it, the test, phase)
EXPERIMENT_PHASE_RULES: tuple[_Rule, ...] = (
    ("deleting and not finished", lambda f: f.deleting and not f.finished, EP.STOPPING),
    ("deleting", lambda f: f.deleting, EP.STOPPED),
    ("finished and failed", lambda f: f.finished and f.failed, EP.FAILED),
    ("finished and stopped", lambda f: f.finished and f.stopped, EP.STOPPED),
    ("finished", lambda f: f.finished, EP.SUCCEEDED),
    ("no work unit submitted yet", lambda f: f.none_submitted, EP.PENDING),
    ("otherwise", lambda f: True, EP.RUNNING),
)


def experiment_phase(facts: ExperimentFacts) -> ExperimentPhase:
    """The phase of the first rule of :data:`EXPERIMENT_PHASE_RULES` that holds."""
    return next(phase for _, holds, phase in EXPERIMENT_PHASE_RULES if holds(facts))


def check_experiment(source: str, target: str, *, reopened: bool = False) -> None:
    """Raise :class:`IllegalTransition` when a finished experiment would become active again
    (only deletion moves it, to ``Stopping``/``Stopped``), unless it was ``reopened``: its
    spec moved on since the status was written (a sweep edit or a rerun: a new generation)."""
    terminal = {p.value for p in EXPERIMENT_TERMINAL}
    leaving = {ExperimentPhase.STOPPING.value, ExperimentPhase.STOPPED.value}
    if source in terminal and target != source and target not in leaving and not reopened:
        raise IllegalTransition(f"experiment: {source} -> {target} is not a transition")
