"""Sweep edits reconcile (issue 15.3): a work unit is its content, so a re-applied sweep keeps
the unchanged units with their state and history, adds and runs the new ones, and stops and
removes (or retains) the ones it no longer has; ``lxr rerun`` (15.4) runs finished units again
with a fresh budget. Real processes on the local cluster; marker files written by the tasks
themselves count the runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lxr.api.resources import Cluster, Experiment
from lxr.api.sweep import expand_work_units, unit_identities
from lxr.store import Invalid, Store
from lxr.store.tables import WorkUnitRow
from lxr.testing import converge
from tests.conftest import REPO
from tests.test_local_cluster import TASK, experiment, read_marks, starts

pytestmark = pytest.mark.slow


def sweep(name: str, marks: Path, lrs: list[float], **spec: object) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "executable": {
                    "command": [sys.executable, "-c", TASK],
                    "env": {"MARKS": str(marks)},
                },
                "sweep": {"grid": {"lr": lrs}, "list": [{"sleep": spec.pop("sleep", 0)}]},
                **spec,
            },
        }
    )


def units(store: Store, name: str) -> dict[int, tuple[float, str, int]]:
    """index -> (lr, phase, attempts)"""
    return {
        w.spec.index: (w.spec.args["lr"], w.status.phase.value, len(w.status.attempts))
        for w in store.list_work_units(name)
    }


def test_a_finished_sweep_grown_by_two_runs_exactly_the_two_new_units(
    store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.jsonl"
    assert store.apply(sweep("grow", marks, [0.1, 0.2, 0.3])).action == "created"
    converge(store, ["grow"], timeout=90)
    assert len(starts(marks)) == 3
    first = {w.spec.index: w.status.attempts[0].job_id for w in store.list_work_units("grow")}

    grown = store.apply(sweep("grow", marks, [0.1, 0.2, 0.3, 0.4, 0.5]))
    assert (grown.action, grown.generation) == ("configured", 2)
    assert grown.detail == "work units 2 added (3, 4)"
    converge(store, ["grow"], timeout=90)
    assert len(starts(marks)) == 5  # the three earlier units did not run again
    assert sorted(starts(marks)[3:]) == [("3", "1"), ("4", "1")]  # LXR_WORK_UNIT, LXR_ATTEMPT
    now = units(store, "grow")
    assert now == {i: (lr, "Succeeded", 1) for i, lr in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])}
    # the kept units kept their history (the same attempt, the same job)
    kept = {w.spec.index: w.status.attempts[0].job_id for w in store.list_work_units("grow")}
    assert {i: kept[i] for i in first} == first
    exp = store.get_experiment("grow")
    assert exp.status is not None and exp.status.phase.value == "Succeeded"
    assert exp.status.observed_generation == 2 and exp.status.work_units["total"] == 5
    assert any(
        e.reason == "SweepEdited" and "2 added (3, 4)" in e.message
        for e in store.list_events("grow")
    )

    # unchanged: nothing written, nothing run (written another way: the same spec)
    again = store.apply(sweep("grow", marks, [0.1, 0.2, 0.3, 0.4, 0.5]))
    assert (again.action, again.generation) == ("unchanged", 2)
    reordered = store.apply(sweep("grow", marks, [0.5, 0.4, 0.3, 0.2, 0.1]))
    assert (reordered.action, reordered.detail) == ("configured", "work units unchanged")
    converge(store, ["grow"], timeout=30)
    assert len(starts(marks)) == 5

    # a point dropped from a finished sweep is removed with its history, its index not reused
    shrunk = store.apply(sweep("grow", marks, [0.1, 0.3, 0.4, 0.5, 0.6]))
    assert shrunk.detail == "work units 1 added (5), 1 removed (1)"
    converge(store, ["grow"], timeout=90)
    assert sorted(units(store, "grow")) == [0, 2, 3, 4, 5]
    assert len(starts(marks)) == 6


def test_removing_a_point_of_a_running_sweep_cancels_that_unit_alone(
    store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.jsonl"
    store.apply(sweep("shrink", marks, [0.1, 0.2, 0.3], sleep=8))
    t0 = time.monotonic()
    converge(
        store, ["shrink"], until=lambda: ("1", "1") in starts(marks), timeout=60
    )  # unit 1 runs (the local cluster may have fewer slots than 3)
    result = store.apply(sweep("shrink", marks, [0.1, 0.3], sleep=8))
    assert result.detail == "work units 1 removed (1)"
    converge(store, ["shrink"], timeout=90)
    assert units(store, "shrink") == {0: (0.1, "Succeeded", 1), 2: (0.3, "Succeeded", 1)}
    ended = {m["wu"] for m in read_marks(marks) if "end" in m}
    assert ended == {"0", "2"}  # unit 1 was killed mid-sleep, the others ran to the end
    assert time.monotonic() - t0 < 60
    exp = store.get_experiment("shrink")
    assert exp.status is not None and exp.status.phase.value == "Succeeded"
    assert exp.status.work_units == {"Succeeded": 2, "total": 2}
    events = {e.reason: e.message for e in store.list_events("shrink")}
    assert events["Cancelling"] == "cancelling 1 task(s): RemovedFromSpec"
    assert events["WorkUnitsRemoved"] == "removed 1 work unit(s) no longer in the spec: 1"


def test_retain_keeps_a_removed_unit_stopped_with_its_history(store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks.jsonl"
    retain = {"removedWorkUnitPolicy": "Retain"}
    store.apply(sweep("keep", marks, [0.1, 0.2], sleep=30, **retain))
    converge(store, ["keep"], until=lambda: ("1", "1") in starts(marks), timeout=60)
    store.apply(sweep("keep", marks, [0.1], sleep=30, **retain))
    converge(
        store,
        ["keep"],
        until=lambda: units(store, "keep").get(1, (0, ""))[1] == "Stopped",
        timeout=60,
    )
    [removed] = [w for w in store.list_work_units("keep") if w.spec.index == 1]
    assert removed.status.reason == "RemovedFromSpec" and len(removed.status.attempts) == 1
    with pytest.raises(Invalid, match="work unit 1 of experiment keep is no longer in its spec"):
        store.rerun_work_units("keep", [1])
    store.delete_experiment("keep")
    converge(store, ["keep"], timeout=60)


def test_what_each_unit_runs_stays_immutable(store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks.jsonl"
    store.apply(sweep("fixed", marks, [0.1]))
    store.apply(
        Cluster.model_validate({"metadata": {"name": "other"}, "spec": {"scheduler": "local"}})
    )
    for change in ({"resources": {"cpus": 2}}, {"cluster": "other"}):
        with pytest.raises(Invalid, match="immutable.*a new experiment is the answer"):
            store.apply(sweep("fixed", marks, [0.1, 0.2], **change))
    assert sorted(units(store, "fixed")) == [0]


def test_identities_are_content_named_units_and_repeats(store: Store, tmp_path: Path) -> None:
    """Two replicas of the same content are two units; a third is one more; a named unit's
    name is part of what it is."""
    base = {"metadata": {"name": "reps"}, "spec": {"executable": {"command": ["true"]}}}

    def with_units(*templates: dict) -> Experiment:
        return Experiment.model_validate(
            {**base, "spec": {**base["spec"], "workUnits": list(templates)}}
        )

    store.apply(with_units({}, {}))
    assert store.apply(with_units({}, {}, {})).detail == "work units 1 added (2)"
    assert store.apply(with_units({}, {}, {}, {"name": "x"})).detail == "work units 1 added (3)"
    renamed = store.apply(with_units({}, {}, {}, {"name": "y"}))
    assert renamed.detail == "work units 1 added (4), 1 removed (3)"
    spec = with_units({"args": {"a": 1}}, {"args": {"a": 1.0}}, {"args": {"a": True}}).spec
    assert len(set(unit_identities(expand_work_units(spec)))) == 3


def test_migration_0007_gives_existing_units_the_identity_apply_gives(
    store: Store, tmp_path: Path
) -> None:
    """Stores made before 0007 get identities from the stored spec, so re-applying an old
    experiment unchanged keeps every unit, and an edit adds only the new ones."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import select

    marks = tmp_path / "marks.jsonl"
    store.apply(sweep("old", marks, [0.1, 0.2]))
    named = Experiment.model_validate(
        {
            "metadata": {"name": "named"},
            "spec": {
                "executable": {"command": ["true"]},
                "workUnits": [{"name": "a", "args": {"x": 1}}, {"args": {"x": 1}}, {}],
            },
        }
    )
    store.apply(named)

    def identities() -> list[str | None]:
        with store.session() as s:
            return list(s.scalars(select(WorkUnitRow.identity).order_by(WorkUnitRow.id)))

    written = identities()
    cfg = Config()
    cfg.set_main_option("script_location", str(REPO / "lxr" / "store" / "migrations"))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
    store.migrate()
    assert identities() == written and None not in written
    assert store.apply(sweep("old", marks, [0.1, 0.2, 0.3])).detail == "work units 1 added (2)"


def _lxr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lxr.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
        check=False,
    )


def test_rerun_failed_reruns_exactly_the_failed_units(store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks.jsonl"
    plan = [{"code": 0}, {"code": 3, "fail_until": 1}, {"code": 0}, {"code": 4, "fail_until": 1}]
    store.apply(experiment("again", marks, plan, backoffLimitPerIndex=0))
    converge(store, ["again"], timeout=90)
    exp = store.get_experiment("again")
    assert exp.status is not None and exp.status.phase.value == "Failed"
    assert exp.status.failed_indexes == [1, 3]

    usage = _lxr("rerun", "experiment", "again")
    assert usage.returncode == 2 and "--failed, --wu N" in usage.stderr
    done = _lxr("rerun", "experiment", "again", "--failed")
    assert done.returncode == 0, done.stderr
    assert "experiment/again work units 1, 3: rerun" in done.stdout
    converge(store, ["again"], timeout=90)
    assert sorted(starts(marks)) == [
        ("0", "1"), ("1", "1"), ("1", "2"), ("2", "1"), ("3", "1"), ("3", "2"),
    ]  # fmt: skip
    wus = {w.spec.index: w.status for w in store.list_work_units("again")}
    assert [a.exit_code for a in wus[1].attempts] == [3, 0]  # the earlier attempt is kept
    assert [a.exit_code for a in wus[3].attempts] == [4, 0]
    assert (wus[1].phase.value, wus[1].failures, wus[1].reason) == ("Succeeded", 0, "Completed")
    exp = store.get_experiment("again")
    assert exp.status is not None and exp.status.phase.value == "Succeeded"
    assert exp.status.failed_indexes == [] and exp.metadata.generation == 2
    assert "RerunRequested" in [e.reason for e in store.list_events("again")]

    # --wu reruns a Succeeded one too; an unknown index is not found, nothing failed is a no-op
    assert _lxr("rerun", "exp/again", "--wu", "0").returncode == 0
    assert _lxr("rerun", "exp/again", "--wu", "9").returncode == 1
    assert "nothing to rerun" in _lxr("rerun", "exp/again", "--failed").stdout
    converge(store, ["again"], timeout=90)
    assert starts(marks).count(("0", "2")) == 1 and len(starts(marks)) == 7


def test_rerun_refuses_a_unit_in_progress(store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks.jsonl"
    store.apply(experiment("busy", marks, [{"sleep": 30}]))
    with pytest.raises(Invalid, match="work unit 0 of experiment busy is Pending: only finished"):
        store.rerun_work_units("busy", [0])
    refused = _lxr("rerun", "experiment", "busy", "--wu", "0")
    assert refused.returncode == 2 and "only finished work units" in refused.stderr
