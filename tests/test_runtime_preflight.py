"""Preflight of the programs a work unit needs: a cluster without its container runtime or
interpreter holds the work units in Pending with reason ``RuntimeMissing``, the experiment gets
a ``RuntimeReady=False`` condition naming what is missing where, and nothing is submitted;
once the program is there, the work units run. One ``command -v`` round trip per cluster for all
names, cached. (On the local cluster here; on Slurm over SSH in test_container_integration.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from lxr.api.resources import Experiment
from lxr.reconciler.controller import Controller
from lxr.schedulers import programs
from lxr.schedulers.programs import ProgramCheck
from lxr.schedulers.transport import LocalTransport
from lxr.store import Store
from lxr.testing import converge, run_cycles

MISSING = "lxr-test-no-such-interpreter"


def _experiment(name: str, executable: dict) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"executable": executable, "sweep": {"grid": {"i": [0, 1, 2]}}},
        }
    )


def _condition(store: Store, name: str):
    status = store.get_experiment(name).status
    assert status is not None
    found = [c for c in status.conditions if c.type == "RuntimeReady"]
    return found[0] if found else None


def test_missing_interpreter_holds_the_work_units_and_submits_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply(_experiment("held", {"command": [MISSING, "-c", "print(1)"]}))
    ctl = run_cycles(store, 3)
    units = store.list_work_units("held")
    assert [wu.status.phase.value for wu in units] == ["Pending"] * 3
    message = f"{MISSING} not found on this machine (cluster local)"
    for wu in units:
        assert wu.status.reason == "RuntimeMissing" and wu.status.message == message
        assert wu.status.attempts == []  # never submitted
    cond = _condition(store, "held")
    assert cond is not None and cond.status.value == "False"
    assert (cond.reason, cond.message) == ("RuntimeMissing", message)
    events = [e for e in store.list_events() if e.reason == "RuntimeMissing"]
    assert len(events) == 1 and events[0].message == f"{message}: nothing submitted"
    driver = ctl.drivers["local"][0]
    assert driver.programs.round_trips == 1  # 3 cycles, one lookup: the answer is cached

    # the interpreter appears (here: on PATH); a missing name is looked up again later
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / MISSING).symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(programs, "RECHECK_SECONDS", 0.0)
    converge(store, ["held"], timeout=60, controller=ctl)
    units = store.list_work_units("held")
    assert all(wu.status.phase.value == "Succeeded" for wu in units)
    cond = _condition(store, "held")
    assert cond is not None and (cond.status.value, cond.reason) == ("True", "RuntimeFound")


def test_missing_container_runtime_is_named(store: Store) -> None:
    exe = {"command": ["python3", "-V"], "container": {"image": "x.sif", "runtime": "apptainer"}}
    store.apply(_experiment("no-apptainer", exe))
    run_cycles(store, 2)
    cond = _condition(store, "no-apptainer")
    assert cond is not None
    assert cond.message == "apptainer not found on this machine (cluster local)"
    assert all(wu.status.attempts == [] for wu in store.list_work_units("no-apptainer"))


def test_present_programs_cost_one_lookup_and_change_nothing(store: Store) -> None:
    store.apply(_experiment("fine", {"command": [sys.executable, "-c", "pass"]}))
    ctl = Controller(store)
    converge(store, ["fine"], timeout=60, controller=ctl)
    assert _condition(store, "fine") is None  # no RuntimeReady condition when nothing was missing
    # an absolute path is the task's business (it may exist only on the node): not looked up
    assert ctl.drivers["local"][0].programs.round_trips == 0


def test_program_check_asks_once_for_all_names() -> None:
    check = ProgramCheck(LocalTransport())

    async def main() -> None:
        names = ["sh", MISSING, "ls", f"{MISSING}-2"]
        assert await check.missing(names, now=100.0) == {MISSING, f"{MISSING}-2"}
        assert check.round_trips == 1
        assert await check.missing(names, now=110.0) == {MISSING, f"{MISSING}-2"}
        assert check.round_trips == 1  # found names remembered, missing ones for a minute
        await check.missing(names, now=100.0 + programs.RECHECK_SECONDS)
        assert check.round_trips == 2  # the missing ones asked again, alone

    anyio.run(main)
