"""XManager dependencies on lxr: ``wu.after_*()`` combined with ``&``/``|`` become the lxr work
units' own ``dependsOn``; the job-dependencies example (xmanager-slurm's, on lxr) is written at
once, its launch returns while the evals wait, and a controller runs each eval after its
train unit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("xmanager")

from xmanager import xm

from lxr import xm_cluster
from lxr.store import Store
from lxr.testing import converge
from lxr.xm_cluster.dependencies import DependencyError, per_element, resolve_dependency
from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "xm" / "job_dependencies"
PKG = REPO / "examples" / "xm" / "py_package"


class FakeUnit:
    """What resolve_dependency reads of an xm work unit: its id (for messages)."""

    def __init__(self, wu_id: int, tasks: int = 1) -> None:
        self.work_unit_id = wu_id
        self.tasks = tasks

    after_completed = xm_cluster.ClusterWorkUnit.after_completed
    after_started = xm_cluster.ClusterWorkUnit.after_started
    after_failed = xm_cluster.ClusterWorkUnit.after_failed
    after_finished = xm_cluster.ClusterWorkUnit.after_finished


def names(wu: FakeUnit) -> list[tuple[str, str]]:
    if wu.tasks == 1:
        return [(f"exp{wu.work_unit_id}", str(wu.work_unit_id))]
    return [(f"exp{wu.work_unit_id}", f"{wu.work_unit_id}.{k}") for k in range(wu.tasks)]


def spelled(dep: object) -> dict[str, list[tuple[str, str, str]]]:
    out = resolve_dependency(dep, names)  # type: ignore[arg-type, arg-type]
    return {
        "allOf": [(d.experiment, d.work_unit, d.condition.value) for d in out.all_of],
        "anyOf": [(d.experiment, d.work_unit, d.condition.value) for d in out.any_of],
    }


def test_after_and_or_as_xmanager_slurm_spells_them() -> None:
    a, b, c, big = FakeUnit(1), FakeUnit(2), FakeUnit(3), FakeUnit(4, tasks=2)
    assert spelled(a.after_completed()) == {"allOf": [("exp1", "1", "Succeeded")], "anyOf": []}
    assert spelled(a.after_completed() & b.after_failed()) == {
        "allOf": [("exp1", "1", "Succeeded"), ("exp2", "2", "Failed")],
        "anyOf": [],
    }
    assert spelled(a.after_started() | b.after_finished()) == {
        "allOf": [],
        "anyOf": [("exp1", "1", "Started"), ("exp2", "2", "Finished")],
    }
    assert spelled((a.after_completed() | b.after_completed()) & c.after_completed()) == {
        "allOf": [("exp3", "3", "Succeeded")],
        "anyOf": [("exp1", "1", "Succeeded"), ("exp2", "2", "Succeeded")],
    }
    # a work unit of two tasks: both
    assert spelled(big.after_completed())["allOf"] == [
        ("exp4", "4.0", "Succeeded"),
        ("exp4", "4.1", "Succeeded"),
    ]
    for bad in (
        (a.after_completed() & b.after_completed()) | c.after_completed(),
        (a.after_completed() | b.after_completed()) & (c.after_completed() | a.after_failed()),
        big.after_completed() | a.after_completed(),
    ):
        with pytest.raises(DependencyError):
            resolve_dependency(bad, names)  # type: ignore[arg-type]
    with pytest.raises(DependencyError, match="delay"):
        a.after_started(time=60)
    with pytest.raises(TypeError):
        a.after_completed() & "train"  # type: ignore[operator]


def test_dependency_per_element_of_args() -> None:
    a, b = FakeUnit(1), FakeUnit(2)
    one = a.after_completed()
    assert per_element(one, 3) == [one, one, one]
    assert per_element([one, b.after_completed()], 2)[1] is not one
    with pytest.raises(DependencyError, match="a list of 1 for 2 elements"):
        per_element([one], 2)
    with pytest.raises(DependencyError, match="expected wu.after_completed"):
        per_element("after:42", None)


def test_dependency_in_a_launch_is_written_and_met_by_the_controller(
    store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    overrides = {"backoff_limit_per_index": 0}
    with xm_cluster.create_experiment("deps", quiet=True, spec_overrides=overrides) as experiment:
        executor = xm_cluster.Local()
        spec = xm_cluster.PythonPackage(
            path=str(PKG), entrypoint=xm_cluster.ModuleName("sweep_demo.train")
        )
        [exe] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])
        experiment.add(xm.Job(exe, executor, args={"lr": 0.1, "sleep": 1.0}))
        experiment.add(xm.Job(exe, executor, args={"lr": 0.2, "fail": True}))
        first, failing = experiment.work_units[1], experiment.work_units[2]
        experiment.add(xm.Job(exe, executor, args={"lr": 0.3}), dependency=first.after_completed())
        experiment.add(
            xm.Job(exe, executor, args={"lr": 0.4}),
            dependency=first.after_completed() & failing.after_failed(),
        )
        experiment.add(
            xm.Job(exe, executor, args={"lr": 0.5}),
            dependency=failing.after_completed(),
        )
    exps = {e.metadata.name: e for e in store.list_experiments()}
    (name,) = exps
    tpl = exps[name].spec.work_units
    assert tpl is not None and [t.name for t in tpl] == ["1", "2", "3", "4", "5"]
    assert tpl[2].depends_on is not None
    assert [(d.work_unit, d.condition.value) for d in tpl[3].depends_on.all_of] == [
        ("1", "Succeeded"),
        ("2", "Failed"),
    ]
    converge(store, [name], timeout=180)
    phases = {
        u.spec.index: (u.status.phase.value, u.status.reason) for u in store.list_work_units(name)
    }
    assert phases[2][0] == "Succeeded" and phases[3][0] == "Succeeded"
    assert phases[4] == ("Stopped", "DependencyFailed")
    unit3 = store.list_work_units(name, index=2)[0]
    unit1 = store.list_work_units(name, index=0)[0]
    assert unit3.status.attempts[0].start_time > unit1.status.attempts[0].end_time


def _lxr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lxr.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_job_dependencies_example_returns_at_once_and_converges(
    store: Store, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    started = time.monotonic()
    res = _lxr(
        "launch", str(EXAMPLE / "launch.py"), "--", "--seeds=3", "--sleep=8", f"--workdir={work}"
    )
    took = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert "waiting for dependencies" in res.stderr + res.stdout
    names = [e.metadata.name for e in store.list_experiments()]
    assert len(names) == 6
    units = {u.metadata["name"]: u.status for n in names for u in store.list_work_units(n)}
    waiting = [s for s in units.values() if s.phase.value == "Waiting"]
    # the launch returned while the trains ran: every eval still waits for its train unit
    assert len(waiting) == 3, (took, {k: s.phase.value for k, s in units.items()})
    assert all(s.message and "to succeed" in s.message for s in waiting)
    converge(store, names, timeout=240)
    done = [u for n in names for u in store.list_work_units(n)]
    assert {u.status.phase.value for u in done} == {"Succeeded"}
    results = sorted(work.rglob("result.json"))
    assert len(results) == 3 and all(json.loads(p.read_text())["result"] for p in results)


@pytest.mark.integration
@pytest.mark.slow
def test_job_dependencies_example_on_slurm(dev_cluster: dict[str, str], store: Store) -> None:
    """The same example on the real Slurm of the dev cluster, over SSH: the launch returns
    with the evals waiting, and each eval reads the result its train unit wrote."""
    applied = _lxr("apply", "-f", str(REPO / "examples" / "slurm" / "cluster.yaml"))
    require(applied.returncode == 0, f"no dev-slurm cluster: {applied.stderr}")
    workdir = f"/tmp/lxr-job-dependencies-{os.getpid()}"
    res = _lxr(
        "launch",
        str(EXAMPLE / "launch.py"),
        "--",
        "--cluster=dev-slurm",
        "--seeds=3",
        "--sleep=5",
        f"--workdir={workdir}",
    )
    assert res.returncode == 0, res.stderr
    names = [e.metadata.name for e in store.list_experiments()]
    assert len(names) == 6
    waiting = [
        u for n in names for u in store.list_work_units(n) if u.status.phase.value == "Waiting"
    ]
    assert len(waiting) == 3, [(n, store.get_experiment(n).status.work_units) for n in names]
    converge(store, names, timeout=300)
    units = [u for n in names for u in store.list_work_units(n)]
    # an eval fails when its train's result file is missing: all succeeded, in order
    assert {u.status.phase.value for u in units} == {"Succeeded"}
    evals = [n for n in names if "jobdeps.eval" in str(store.get_experiment(n).spec.executable)]
    assert len(evals) == 3
