"""The state machine as data: every row of the work-unit table is walked through the real planner,
from every phase it names, and illegal moves raise."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import lxr.reconciler.planner as planner
from lxr.api import phase_docs, phases
from lxr.api.dependencies import Dependency
from lxr.api.phases import (
    SUBMISSION_TRANSITIONS,
    WORK_UNIT_TRANSITIONS,
    AttemptPhase,
    Effect,
    Event,
    ExperimentFacts,
    ExperimentPhase,
    IllegalTransition,
    SubmissionEvent,
    SubmissionState,
    Transition,
    WorkUnitPhase,
    check_attempt,
    check_experiment,
    check_submission,
    check_work_unit,
    experiment_phase,
    submission_transition,
    work_unit_transition,
)
from lxr.api.records import ExperimentRecord, UpstreamRecord, UpstreamUnit
from lxr.api.resources import ArtifactRef, FailurePolicy, FailurePolicyRule, FailureReason
from lxr.reconciler.actions import Cancel, Resubmit, RetryIntent, Submit, UpdateStatus
from lxr.reconciler.classify import GANG_GRACE_SECONDS
from lxr.reconciler.planner import LOST_AFTER_SECONDS, plan_experiment
from lxr.reconciler.policy import account
from lxr.schedulers.base import Snapshot, TaskPhase
from tests.test_planner import NOW, SPEC, attempt, exp, snap, task, wu

REPO = Path(__file__).resolve().parents[1]


def _rules(*rules: FailurePolicyRule) -> object:
    return SPEC.model_copy(update={"failure_policy": FailurePolicy(rules=list(rules))})


def _failed(reason: FailureReason, code: int | None = None, **spec: object) -> Callable:
    return _with_spec(SPEC.model_copy(update=spec), reason, code)


def _with_spec(spec: object, reason: FailureReason, code: int | None) -> Callable:
    def build(p: str) -> tuple[ExperimentRecord, Snapshot]:
        unit = wu(0, attempt(phase="Running"), phase=p)
        observed = snap(task(TaskPhase.FAILED, reason=reason, exit_code=code))
        return exp(unit, spec=spec), observed  # type: ignore[arg-type]

    return build


def _experiment_failing(p: str) -> tuple[ExperimentRecord, Snapshot]:
    """Unit 0 is seen in phase ``p`` (queued, running or unreported), then unit 1 fails the
    experiment: unit 0 is cancelled at once."""
    unit0 = {"Queued": [task(TaskPhase.QUEUED, 0)], "Running": [task(TaskPhase.RUNNING, 0)]}
    return (
        exp(
            wu(0, attempt(index=0), phase=p),
            wu(1, attempt(index=1), phase="Running"),
            spec=_rules(FailurePolicyRule(action="FailJob", on_exit_codes={"values": [9]})),
        ),
        snap(
            *unit0.get(p, []),
            task(TaskPhase.FAILED, 1, reason=FailureReason.ERROR, exit_code=9),
        ),
    )


def _waiting_on(upstream: str, p: str) -> tuple[ExperimentRecord, Snapshot]:
    """Unit 0, never submitted, depends on unit 0 of ``train``, which is in ``upstream``."""
    dep = Dependency(experiment="train", match="SameIndex")
    spec = SPEC.model_copy(update={"depends_on": [dep]})
    train = UpstreamRecord("train", "local", (UpstreamUnit(0, "0", upstream),))
    return exp(wu(0, phase=p), spec=spec, upstream={"train": train}), snap()


#: an executable with one artifact, which the record does not list as staged
_WITH_ARTIFACT = SPEC.model_copy(
    update={
        "executable": SPEC.executable.model_copy(
            update={"artifacts": [ArtifactRef(name="package", digest="a" * 64, bytes=10)]}
        )
    }
)


def _intent(**kw: object) -> object:
    return attempt(job=None, sub="Intent", phase="Pending", **kw)


#: event -> a record and snapshot that the planner classifies as that event, for a work unit
#: (index 0) in the phase given
SCENARIOS: dict[Event, Callable[[str], tuple[ExperimentRecord, Snapshot]]] = {
    Event.SUBMIT_REJECTED: lambda p: (
        exp(wu(0, attempt(job=None, sub="Failed", phase="Pending", error="bad"), phase=p)),
        snap(),
    ),
    Event.INTENT_UNCONFIRMED: lambda p: (exp(wu(0, _intent(), phase=p)), snap()),
    Event.INTENT_ABANDONED: lambda p: (
        exp(wu(0, _intent(), phase=p, stop_requested=True)),
        snap(),
    ),
    Event.ADOPTED: lambda p: (
        exp(wu(0, _intent(), phase=p)),
        snap(task(TaskPhase.RUNNING, job="77"), tags={"exp-abc": "77"}),
    ),
    Event.TASK_QUEUED: lambda p: (exp(wu(0, attempt(phase="Pending"), phase=p)),
                                  snap(task(TaskPhase.QUEUED))),
    Event.TASK_RUNNING: lambda p: (exp(wu(0, attempt(), phase=p)), snap(task(TaskPhase.RUNNING))),
    Event.TASK_QUEUED_UNWANTED: lambda p: (
        exp(wu(0, attempt(), phase=p, stop_requested=True)),
        snap(task(TaskPhase.QUEUED)),
    ),
    Event.TASK_RUNNING_UNWANTED: lambda p: (
        exp(wu(0, attempt(), phase=p), deleting=True),
        snap(task(TaskPhase.RUNNING)),
    ),
    Event.TASK_SUCCEEDED: lambda p: (
        exp(wu(0, attempt(), phase=p)),
        snap(task(TaskPhase.SUCCEEDED, exit_code=0)),
    ),
    Event.TASK_FAILED: _failed(FailureReason.ERROR, 3),
    Event.TASK_CANCELLED: lambda p: (exp(wu(0, attempt(), phase=p)),
                                     snap(task(TaskPhase.CANCELLED))),
    Event.TASK_ENDED_AFTER_CANCEL: lambda p: (
        exp(wu(0, attempt(cancel_requested_at=NOW - 1), phase=p, stop_requested=True)),
        snap(task(TaskPhase.FAILED, reason=FailureReason.ERROR, exit_code=143)),
    ),
    # an intent adopted this cycle whose job is not in the queue: its job id is kept
    Event.TASK_UNREPORTED: lambda p: (
        exp(wu(0, _intent(last_seen=NOW - 5), phase=p)),
        snap(tags={"exp-abc": "77"}),
    ),
    Event.TASK_UNREPORTED_UNWANTED: lambda p: (
        exp(wu(0, _intent(last_seen=NOW - 5), phase=p, stop_requested=True)),
        snap(tags={"exp-abc": "77"}),
    ),
    Event.TASK_GONE_AFTER_CANCEL: lambda p: (
        exp(wu(0, attempt(cancel_requested_at=NOW - 1), phase=p), deleting=True),
        snap(),
    ),
    Event.TASK_LOST: lambda p: (
        exp(wu(0, attempt(last_seen=NOW - LOST_AFTER_SECONDS - 1), phase=p)),
        snap(),
    ),
    Event.GANG_BROKEN: lambda p: (
        exp(wu(0, attempt(), phase=p)),
        snap(task(TaskPhase.RUNNING, rank_exit_codes=(None, 3), first_failed_rank=1,
                  first_failure_time=NOW - GANG_GRACE_SECONDS - 1)),
    ),
    Event.DISRUPTED: _failed(FailureReason.PREEMPTED),
    Event.RETRY_AFTER_BACKOFF: _failed(FailureReason.OUT_OF_MEMORY),
    Event.DISRUPTION_LIMIT_EXCEEDED: _failed(FailureReason.NODE_FAIL, disruption_limit_per_index=0),
    Event.BACKOFF_LIMIT_EXCEEDED: _failed(FailureReason.ERROR, 1, backoff_limit_per_index=0),
    Event.INDEX_FAILED: _with_spec(
        _rules(FailurePolicyRule(action="FailIndex", on_exit_codes={"values": [42]})),
        FailureReason.ERROR,
        42,
    ),
    Event.JOB_FAILED: _with_spec(
        _rules(FailurePolicyRule(action="FailJob", on_reasons=["Timeout"])),
        FailureReason.TIMEOUT,
        None,
    ),
    Event.EXPERIMENT_FAILING: _experiment_failing,
    Event.STOP_WANTED: lambda p: (exp(wu(0, phase=p, stop_requested=True)), snap()),
    Event.BACKOFF_PENDING: lambda p: (
        exp(wu(0, phase=p, failures=1, attempt_count=1, next_attempt_after=NOW + 5)),
        snap(),
    ),
    Event.RUNTIME_MISSING: lambda p: (
        exp(wu(0, phase=p, failures=1, attempt_count=1, next_attempt_after=NOW - 5)),
        dataclasses.replace(snap(), missing_programs=frozenset({"true"}), looked_up_on="here"),
    ),
    Event.READY: lambda p: (exp(wu(0, phase=p)), snap()),
    Event.DEPENDENCY_PENDING: lambda p: _waiting_on("Running", p),
    Event.DEPENDENCY_MET: lambda p: _waiting_on("Succeeded", p),
    Event.DEPENDENCY_FAILED: lambda p: _waiting_on("Failed", p),
    Event.ARTIFACTS_PENDING: lambda p: (exp(wu(0, phase=p), spec=_WITH_ARTIFACT), snap()),
}  # fmt: skip


@dataclass
class Walk:
    """One planner run, with the table lookups it made for work unit 0."""

    fired: list[tuple[str, Event]] = field(default_factory=list)
    actions: list = field(default_factory=list)

    @property
    def update(self) -> UpdateStatus:
        found = [a for a in self.actions if isinstance(a, UpdateStatus)]
        return found[0] if found else UpdateStatus("u1")  # nothing to write

    def unit(self) -> object:
        return next(w for w in self.update.work_units if w.index == 0)

    def attempt_patches(self) -> list:
        return [a for a in self.update.attempts if a.id == 100]


def walk(monkeypatch: pytest.MonkeyPatch, event: Event, phase: str) -> Walk:
    seen = Walk()
    real = planner._ExperimentPlan.fire

    def recording(self: planner._ExperimentPlan, work: object, what: planner.Seen) -> None:
        seen.fired.append((work.phase, what.event))  # type: ignore[attr-defined]
        real(self, work, what)  # type: ignore[arg-type]

    monkeypatch.setattr(planner._ExperimentPlan, "fire", recording)
    record, observed = SCENARIOS[event](phase)
    seen.actions = plan_experiment(record, observed, NOW)
    return seen


def _effect_holds(effect: Effect, w: Walk, row: Transition) -> bool:
    u = w.update
    kinds = {type(a) for a in w.actions}
    checks: dict[Effect, Callable[[], bool]] = {
        Effect.ADOPT: lambda: bool(u.adoptions),
        Effect.RECORD_TASK: lambda: any(
            not a.final and a.phase == row.attempt for a in w.attempt_patches()
        ),
        Effect.RECORD_JOB_ID: lambda: any(a.job_id == "77" for a in w.attempt_patches()),
        Effect.CANCEL: lambda: any(
            100 in a.attempt_ids for a in w.actions if isinstance(a, Cancel)
        ),
        Effect.RETRY_INTENT: lambda: RetryIntent in kinds,
        Effect.END_ATTEMPT: lambda: any(
            a.final and a.phase == row.attempt for a in w.attempt_patches()
        ),
        Effect.COMPLETE: lambda: w.unit().reason == "Completed",
        Effect.STOP: lambda: w.unit().reason in ("StopRequested", "Deleted", "ExperimentFailed"),
        Effect.ACCOUNT: lambda: bool(u.handled),
        Effect.RESUBMIT_NOW: lambda: any(
            0 in [e.index for e in a.entries] for a in w.actions if isinstance(a, Resubmit)
        ),
        Effect.BACK_OFF: lambda: (w.unit().next_attempt_after or 0) > NOW,
        Effect.FAIL_INDEX: lambda: any(e.type == "Warning" and e.name == "exp/0"
                                       for e in u.events),
        Effect.FAIL_EXPERIMENT: lambda: u.fail_experiment is not None,
        Effect.HOLD: lambda: w.unit().reason == "RuntimeMissing"
        and any(e.reason == "RuntimeMissing" for e in u.events),
        Effect.SUBMIT: lambda: any(
            0 in [e.index for e in a.entries]
            for a in w.actions
            if isinstance(a, Submit)
        ),
        Effect.WAIT: lambda: w.unit().reason == "DependencyNotMet",
        Effect.NOTE_DEPENDENCY: lambda: any(
            e.reason in ("DependencyMet", "DependencyFailed") and e.name == "exp/0"
            for e in u.events
        ),
        Effect.DEPENDENCY_FAILED: lambda: w.unit().reason == "DependencyFailed",
        Effect.WAIT_FOR_ARTIFACTS: lambda: w.unit().reason == "ArtifactsNotReady"
                                           and not any(isinstance(a, Submit) for a in w.actions),
    }  # fmt: skip
    return checks[effect]()


ROWS = [
    pytest.param(row, source.value, id=f"{source.value}-{row.event.value}")
    for row in WORK_UNIT_TRANSITIONS
    for source in sorted(row.sources, key=list(WorkUnitPhase).index)
]


#: event -> the work unit's phase after the cycle, written out here rather than read from the
#: table (None: it stays in the phase it was in)
EXPECTED: dict[Event, str | None] = {
    Event.SUBMIT_REJECTED: "BackOff",
    Event.INTENT_UNCONFIRMED: "Pending",
    Event.INTENT_ABANDONED: "Stopped",
    Event.ADOPTED: "Running",
    Event.TASK_QUEUED: "Queued",
    Event.TASK_RUNNING: "Running",
    Event.TASK_QUEUED_UNWANTED: "Queued",
    Event.TASK_RUNNING_UNWANTED: "Running",
    Event.TASK_SUCCEEDED: "Succeeded",
    Event.TASK_FAILED: "BackOff",
    Event.TASK_CANCELLED: "Failed",
    Event.TASK_ENDED_AFTER_CANCEL: "Stopped",
    Event.TASK_UNREPORTED: "Unknown",
    Event.TASK_UNREPORTED_UNWANTED: "Unknown",
    Event.TASK_GONE_AFTER_CANCEL: "Stopped",
    Event.TASK_LOST: "Pending",
    Event.GANG_BROKEN: "Running",
    Event.DISRUPTED: "Pending",
    Event.RETRY_AFTER_BACKOFF: "BackOff",
    Event.DISRUPTION_LIMIT_EXCEEDED: "Failed",
    Event.BACKOFF_LIMIT_EXCEEDED: "Failed",
    Event.INDEX_FAILED: "Failed",
    Event.JOB_FAILED: "Failed",
    Event.EXPERIMENT_FAILING: None,
    Event.STOP_WANTED: "Stopped",
    Event.BACKOFF_PENDING: "BackOff",
    Event.RUNTIME_MISSING: "Pending",
    Event.READY: "Pending",
    Event.DEPENDENCY_PENDING: "Waiting",
    Event.DEPENDENCY_MET: "Pending",
    Event.DEPENDENCY_FAILED: "Stopped",
    Event.ARTIFACTS_PENDING: "Pending",
}


def test_every_row_has_a_scenario() -> None:
    events = {row.event for row in WORK_UNIT_TRANSITIONS}
    assert set(SCENARIOS) == events and set(EXPECTED) == events


@pytest.mark.parametrize(("row", "source"), ROWS)
def test_row(monkeypatch: pytest.MonkeyPatch, row: Transition, source: str) -> None:
    """From ``source``, the scenario is classified as the row's event; the work unit ends in the
    row's target (or, when the budget decides, in the target of the budget's verdict row), the
    attempt in the row's attempt phase, and every effect of the row is in the plan."""
    w = walk(monkeypatch, row.event, source)
    assert (source, row.event) in w.fired, f"classified as {w.fired}"
    later = w.fired[w.fired.index((source, row.event)) + 1 :]
    final = row.target
    if Effect.ACCOUNT in row.effects:
        verdict = work_unit_transition(*later[0])  # the budget's verdict comes next
        assert verdict.event in phases.Event and verdict.target is not None
        final = verdict.target
    elif row.target is None and later:
        final = work_unit_transition(*later[-1]).target
    units = (
        {u.index: u for u in w.update.work_units}
        if any(isinstance(a, UpdateStatus) for a in w.actions)
        else {}
    )
    got = units[0].phase if 0 in units else source
    assert got == (final.value if final else source)
    assert got == (EXPECTED[row.event] or source)
    if row.attempt is not None and row.attempt is not AttemptPhase.PENDING:
        assert any(a.phase == row.attempt for a in w.attempt_patches())
    for effect in row.effects:
        assert _effect_holds(effect, w, row), f"{effect.value} not in the plan: {w.actions}"


def test_unknown_move_raises() -> None:
    with pytest.raises(IllegalTransition, match="TaskRunning from Succeeded"):
        work_unit_transition(WorkUnitPhase.SUCCEEDED, Event.TASK_RUNNING)
    with pytest.raises(IllegalTransition):
        work_unit_transition("BackOff", Event.TASK_SUCCEEDED)  # BackOff has no attempt in flight
    with pytest.raises(IllegalTransition):
        check_work_unit("Failed", "Pending")
    with pytest.raises(IllegalTransition):
        check_attempt("Succeeded", "Running")
    with pytest.raises(IllegalTransition):
        check_submission("Submitted", "Intent")
    with pytest.raises(IllegalTransition):
        submission_transition(SubmissionState.FAILED, SubmissionEvent.ACCEPTED)
    with pytest.raises(IllegalTransition):
        check_experiment("Succeeded", "Running")
    # what the tables allow does not raise
    check_work_unit("Running", "BackOff")
    check_attempt("Running", "Queued")  # the scheduler requeued it
    check_submission("Intent", "Failed")
    check_experiment("Failed", "Stopped")


def test_planner_refuses_an_event_without_a_row() -> None:
    """A work unit in BackOff with an attempt in flight is no state the table knows: planning it
    raises instead of guessing."""
    unit = wu(0, attempt(), phase="BackOff")
    with pytest.raises(IllegalTransition, match="from BackOff"):
        plan_experiment(exp(unit), snap(task(TaskPhase.RUNNING)), NOW)


def test_allowed_moves_come_from_the_rows() -> None:
    moves = phases.WORK_UNIT_MOVES
    for row in WORK_UNIT_TRANSITIONS:
        for source in row.sources:
            if row.target is not None:
                assert row.target.value in moves[source.value]
    for terminal in phases.WORK_UNIT_TERMINAL:
        assert moves[terminal.value] == {terminal.value}
    for a in phases.ATTEMPT_TERMINAL:
        assert phases.ATTEMPT_MOVES[a.value] == {a.value}


@pytest.mark.parametrize("row", SUBMISSION_TRANSITIONS, ids=lambda r: r.event.value)
def test_submission_rows(row: phases.SubmissionTransition) -> None:
    assert submission_transition(row.source, row.event) is row
    check_submission(row.source.value, row.target.value)


FACTS = [
    # deleting, finished, failed, stopped, none submitted -> phase
    ((True, False, False, False, False), ExperimentPhase.STOPPING),
    ((True, True, True, False, False), ExperimentPhase.STOPPED),
    ((False, True, True, True, False), ExperimentPhase.FAILED),
    ((False, True, False, True, False), ExperimentPhase.STOPPED),
    ((False, True, False, False, False), ExperimentPhase.SUCCEEDED),
    ((False, False, False, False, True), ExperimentPhase.PENDING),
    ((False, False, True, False, False), ExperimentPhase.RUNNING),
]


@pytest.mark.parametrize(("facts", "phase"), FACTS)
def test_experiment_phase_rules(facts: tuple[bool, ...], phase: ExperimentPhase) -> None:
    assert experiment_phase(ExperimentFacts(*facts)) is phase


def test_every_experiment_rule_is_reachable() -> None:
    rules = phases.EXPERIMENT_PHASE_RULES
    first = {
        next(i for i, (_, holds, _) in enumerate(rules) if holds(ExperimentFacts(*facts)))
        for facts, _ in FACTS
    }
    assert first == set(range(len(rules))), "each rule is the first match of some case"


def test_readme_shows_the_current_tables() -> None:
    readme = (REPO / "README.md").read_text()
    assert phase_docs.rewrite_readme(readme) == readme, (
        "README.md's state machine tables are stale: run `uv run python -m lxr.api.phase_docs`"
    )


# (rule, reason, exit code, failures, disruptions before) -> (verdict, failures, disruptions)
ACCOUNT_CASES = [
    (None, FailureReason.ERROR, 1, 0, 0, Event.RETRY_AFTER_BACKOFF, 1, 0),
    (None, FailureReason.ERROR, 1, 2, 0, Event.BACKOFF_LIMIT_EXCEEDED, 3, 0),  # limit 2
    (None, FailureReason.PREEMPTED, None, 0, 5, Event.DISRUPTED, 0, 6),
    (None, FailureReason.LOST, None, 0, 20, Event.DISRUPTION_LIMIT_EXCEEDED, 0, 21),  # limit 20
    (None, FailureReason.CANCELLED, None, 0, 0, Event.INDEX_FAILED, 0, 0),
    (FailurePolicyRule(action="FailJob", on_reasons=["OutOfMemory"]), FailureReason.OUT_OF_MEMORY,
     None, 1, 1, Event.JOB_FAILED, 1, 1),
    (FailurePolicyRule(action="Ignore", on_exit_codes={"values": [75]}), FailureReason.ERROR,
     75, 0, 0, Event.DISRUPTED, 0, 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "reason", "code", "failures", "disruptions", "event", "f_after", "d_after"),
    ACCOUNT_CASES,
)
def test_budget_accounting(
    rule: FailurePolicyRule | None,
    reason: FailureReason,
    code: int | None,
    failures: int,
    disruptions: int,
    event: Event,
    f_after: int,
    d_after: int,
) -> None:
    spec = _rules(rule) if rule else SPEC
    verdict = account(spec, reason, code, failures, disruptions)  # type: ignore[arg-type]
    assert (verdict.event, verdict.failures, verdict.disruptions) == (event, f_after, d_after)
