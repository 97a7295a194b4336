"""Dependencies in the planner, table-driven: a never-submitted work unit and its upstream
experiments' work units (as the records carry them) in, its event and actions out."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lxr.api.dependencies import (
    Dependency,
    DependencyCondition,
    DependencyMatch,
    WorkUnitDependencies,
    WorkUnitDependency,
)
from lxr.api.phases import Event, IllegalTransition, WorkUnitPhase, work_unit_transition
from lxr.api.records import UpstreamRecord, UpstreamUnit
from lxr.api.resources import Executable, Experiment, ExperimentSpec, WorkUnitTemplate
from lxr.metrics import Metrics
from lxr.reconciler.actions import Submit
from lxr.reconciler.controller import Controller
from lxr.reconciler.planner import plan_experiment
from lxr.store import Store
from lxr.testing import run_cycles
from tests.test_planner import NOW, exp, only, snap, update, wu

C, M = DependencyCondition, DependencyMatch


def spec(*deps: Dependency, **kw: object) -> ExperimentSpec:
    return ExperimentSpec(
        executable=Executable(command=["true"]),
        depends_on=list(deps),
        **kw,  # type: ignore[arg-type]
    )


def upstream(*phases: str, name: str = "train", **kw: object) -> UpstreamRecord:
    units = tuple(
        UpstreamUnit(i, str(i), p, **kw)  # type: ignore[arg-type]
        for i, p in enumerate(phases)
    )
    return UpstreamRecord(name, "slurm", units)


def outcome(record: object) -> dict[int, tuple[str, str | None, str | None]]:
    """index -> (phase, reason, message) of the work units the plan moved; a unit submitted
    this cycle reads ``("Submitted", None, None)``."""
    actions = plan_experiment(record, snap(), NOW)  # type: ignore[arg-type]
    moved: dict[int, tuple[str, str | None, str | None]] = {
        p.index: (p.phase, p.reason, p.message)
        for a in actions
        if type(a).__name__ == "UpdateStatus"
        for p in a.work_units  # type: ignore[attr-defined]
    }
    for s in only(actions, Submit):
        for e in s.entries:
            assert moved.get(e.index, ("Pending",))[0] == "Pending"
            moved[e.index] = ("Submitted", None, None)
    return moved


def submitted(record: object) -> list[int]:
    actions = plan_experiment(record, snap(), NOW)  # type: ignore[arg-type]
    return [e.index for s in only(actions, Submit) for e in s.entries]


SAME_INDEX = Dependency(experiment="train", condition=C.SUCCEEDED, match=M.SAME_INDEX)


def test_same_index_waits_submits_and_fails_each_unit_on_its_own() -> None:
    record = exp(
        wu(0),
        wu(1),
        wu(2),
        wu(3),
        spec=spec(SAME_INDEX),
        upstream={"train": upstream("Running", "Succeeded", "Failed", "Pending")},
    )
    moved = outcome(record)
    assert moved[0] == ("Waiting", "DependencyNotMet", "waiting for train/0 to succeed")
    assert moved[1][0] == "Submitted"
    assert moved[2] == ("Stopped", "DependencyFailed", "train/2 ended Failed")
    assert moved[3][0] == "Waiting"
    assert submitted(record) == [1]


def test_a_waiting_unit_is_submitted_with_its_ready_neighbours_in_one_array() -> None:
    record = exp(
        wu(0, phase="Waiting", message="waiting for train/0 to succeed"),
        wu(1, phase="Waiting", message="waiting for train/1 to succeed"),
        wu(2, phase="Waiting", message="waiting for train/2 to succeed"),
        spec=spec(SAME_INDEX),
        upstream={"train": upstream("Succeeded", "Succeeded", "Running")},
    )
    actions = plan_experiment(record, snap(), NOW)
    submits = only(actions, Submit)
    assert len(submits) == 1 and [e.index for e in submits[0].entries] == [0, 1]
    events = update(actions).events
    met = [e for e in events if e.reason == "DependencyMet"]
    assert [e.name for e in met] == ["exp/0", "exp/1"]


def test_a_steady_wait_writes_nothing() -> None:
    record = exp(
        wu(0, phase="Waiting", message="waiting for train/0 to succeed"),
        spec=spec(SAME_INDEX),
        upstream={"train": upstream("Running")},
    )
    actions = plan_experiment(record, snap(), NOW)
    assert not [a for a in actions if type(a).__name__ == "UpdateStatus"]
    assert not only(actions, Submit)


def test_a_preempted_upstream_resubmitted_is_not_final() -> None:
    # Pending again after a disruption (attempt 2 on its way): the dependent goes on waiting
    record = exp(wu(0), spec=spec(SAME_INDEX), upstream={"train": upstream("Pending")})
    assert outcome(record)[0][0] == "Waiting"
    assert submitted(record) == []


@pytest.mark.parametrize(
    ("condition", "phases", "expected"),
    [
        (C.SUCCEEDED, ("Succeeded", "Succeeded"), "Submitted"),
        (C.SUCCEEDED, ("Succeeded", "Running"), "Waiting"),
        (C.SUCCEEDED, ("Succeeded", "Stopped"), "Stopped"),
        (C.FINISHED, ("Succeeded", "Failed"), "Submitted"),
        (C.FINISHED, ("Succeeded", "BackOff"), "Waiting"),
        (C.FAILED, ("Failed", "Stopped"), "Submitted"),
        (C.FAILED, ("Failed", "Running"), "Waiting"),
        (C.FAILED, ("Failed", "Succeeded"), "Stopped"),
        (C.STARTED, ("Running", "Succeeded"), "Submitted"),
        (C.STARTED, ("Running", "Queued"), "Waiting"),
    ],
)
def test_conditions_over_every_upstream_unit(
    condition: DependencyCondition, phases: tuple[str, ...], expected: str
) -> None:
    dep = Dependency(experiment="train", condition=condition)
    record = exp(wu(0), spec=spec(dep), upstream={"train": upstream(*phases)})
    phase, reason, _ = outcome(record)[0]
    assert phase == expected
    assert (reason == "DependencyFailed") == (expected == "Stopped")


def test_failed_condition_asked_for_a_failure_is_met_not_stopped() -> None:
    dep = Dependency(experiment="train", condition=C.FAILED, match=M.SAME_INDEX)
    record = exp(wu(0), wu(1), spec=spec(dep), upstream={"train": upstream("Failed", "Succeeded")})
    moved = outcome(record)
    assert moved[0][0] == "Submitted"
    assert moved[1] == ("Stopped", "DependencyFailed", "train/1 ended Succeeded")


def test_started_counts_a_unit_that_ran_before_it_was_preempted() -> None:
    dep = Dependency(experiment="train", condition=C.STARTED, match=M.SAME_INDEX)
    record = exp(wu(0), spec=spec(dep), upstream={"train": upstream("Pending", started=True)})
    assert outcome(record)[0][0] == "Submitted"


def test_same_args_pairs_units_whose_shared_args_agree() -> None:
    dep = Dependency(experiment="train", match=M.SAME_ARGS)
    units = (
        UpstreamUnit(0, "0", "Succeeded", args={"lr": 0.1, "seed": 1}),
        UpstreamUnit(1, "1", "Succeeded", args={"lr": 0.1, "seed": 2}),
        UpstreamUnit(2, "2", "Running", args={"lr": 0.01, "seed": 1}),
        UpstreamUnit(3, "3", "Failed", args={"lr": 1, "seed": 1}),
    )
    record = exp(
        wu(0),
        wu(1),
        wu(2),
        wu(3),
        spec=spec(dep),
        upstream={"train": UpstreamRecord("train", "slurm", units)},
        waiting_args={
            0: {"lr": 0.1, "split": "test"},
            1: {"lr": 0.01},
            2: {"lr": 1},
            3: {"lr": True},  # True is not 1: no such upstream unit
        },
    )
    moved = outcome(record)
    assert moved[0][0] == "Submitted"
    assert moved[1] == (
        "Waiting",
        "DependencyNotMet",
        "waiting for work units of train with lr=0.01 to succeed",
    )
    assert moved[2] == ("Stopped", "DependencyFailed", "work units of train with lr=1 ended Failed")
    assert moved[3][0] == "Stopped"
    assert "no such work unit" in (moved[3][2] or "")


def test_missing_upstream_or_partner_stops_with_dependency_failed() -> None:
    record = exp(wu(0), wu(5), spec=spec(SAME_INDEX), upstream={"train": upstream("Succeeded")})
    moved = outcome(record)
    assert moved[0][0] == "Submitted"
    assert moved[5] == ("Stopped", "DependencyFailed", "train/5: no such work unit")
    gone = exp(wu(0), spec=spec(SAME_INDEX), upstream={"train": None})
    assert outcome(gone)[0] == (
        "Stopped",
        "DependencyFailed",
        "experiment train does not exist",
    )


def test_a_unit_already_submitted_is_not_held_back_again() -> None:
    # a retry of a unit whose dependency was met before: the upstream no longer matters
    record = exp(
        wu(0, attempt_count=1, retry_reason="Preempted"),
        spec=spec(SAME_INDEX),
        upstream={"train": None},
    )
    actions = plan_experiment(record, snap(), NOW)
    assert [e.index for s in actions if hasattr(s, "entries") for e in s.entries] == [0]


def test_stop_wins_over_a_waiting_dependency() -> None:
    record = exp(
        wu(0, phase="Waiting", stop_requested=True),
        spec=spec(SAME_INDEX),
        upstream={"train": upstream("Running")},
    )
    assert outcome(record)[0][:2] == ("Stopped", "StopRequested")


def named_spec(own: WorkUnitDependencies) -> ExperimentSpec:
    return ExperimentSpec(
        executable=Executable(command=["true"]),
        work_units=[WorkUnitTemplate(name="e1", depends_on=own)],
    )


def test_a_units_own_all_of_and_any_of() -> None:
    def dep(unit: str, condition: DependencyCondition = C.SUCCEEDED) -> WorkUnitDependency:
        return WorkUnitDependency(experiment="train", work_unit=unit, condition=condition)

    ups = {"train": upstream("Succeeded", "Running", "Failed")}

    def phase_of(own: WorkUnitDependencies) -> tuple[str, str | None, str | None]:
        record = exp(
            replace(wu(0), name="e1"),
            spec=named_spec(own),
            upstream=ups,
        )
        return outcome(record)[0]

    assert phase_of(WorkUnitDependencies(all_of=[dep("0")]))[0] == "Submitted"
    assert phase_of(WorkUnitDependencies(all_of=[dep("0"), dep("1")]))[2] == (
        "waiting for train/1 to succeed"
    )
    assert phase_of(WorkUnitDependencies(any_of=[dep("1"), dep("0")]))[0] == "Submitted"
    assert phase_of(WorkUnitDependencies(any_of=[dep("1"), dep("2")]))[2] == (
        "waiting for one of train/1 to succeed"
    )
    failed = phase_of(WorkUnitDependencies(any_of=[dep("2"), dep("2", C.STARTED)]))
    assert failed[0] == "Submitted"  # Started: a unit that ended started
    both = phase_of(WorkUnitDependencies(any_of=[dep("2"), dep("9")]))
    assert both == (
        "Stopped",
        "DependencyFailed",
        "train/2 ended Failed and train/9: no such work unit",
    )


def test_the_rows_exist_and_terminal_is_terminal() -> None:
    for event in (Event.DEPENDENCY_PENDING, Event.DEPENDENCY_MET, Event.DEPENDENCY_FAILED):
        work_unit_transition(WorkUnitPhase.WAITING, event)
        with pytest.raises(IllegalTransition):
            work_unit_transition(WorkUnitPhase.STOPPED, event)
    with pytest.raises(IllegalTransition):  # a unit in flight never waits again
        work_unit_transition(WorkUnitPhase.RUNNING, Event.DEPENDENCY_PENDING)


def test_waiting_units_are_counted_in_the_store_and_the_metrics(store: Store) -> None:
    """A controller pass on the store: units whose upstream has not run are Waiting, in
    ``lxr_work_units{phase="Waiting"}``; their experiment stays Pending."""
    base = {"cluster": "local", "executable": {"command": ["sleep", "30"]}}
    sweep = {"grid": {"i": [0, 1, 2]}}
    upstream = {"metadata": {"name": "train"}, "spec": {**base, "sweep": sweep}}
    down = {
        "metadata": {"name": "eval"},
        "spec": {**base, "sweep": sweep, "dependsOn": [{"experiment": "train"}]},
    }
    store.apply_all([Experiment.model_validate(upstream), Experiment.model_validate(down)])
    metrics = Metrics(registry=CollectorRegistry())
    ctl = Controller(store, metrics=metrics)
    try:
        run_cycles(store, 1, ctl)
        phases = {u.spec.index: u.status.phase.value for u in store.list_work_units("eval")}
        assert phases == {0: "Waiting", 1: "Waiting", 2: "Waiting"}
        assert store.get_experiment("eval").status.phase.value == "Pending"
        assert store.not_yet_submitted(["eval"]) == 0
        ctl.publish_snapshot()
        text = generate_latest(metrics.registry).decode()
        assert 'lxr_work_units{cluster="local",phase="Waiting"} 3.0' in text
    finally:
        store.stop_work_units("train", [0, 1, 2])
        run_cycles(store, 2, ctl)
