"""The one in-process loop: it reconciles here when no controller leads, follows the one that
leads when asked to, takes a dead local controller's lease over, and gives up at its deadline."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import anyio

from lxr.api.resources import Experiment
from lxr.reconciler.controller import Controller
from lxr.reconciler.inprocess import InProcessReconciler, reconcile_until
from lxr.store import Store
from lxr.testing import finished


def _store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'lxr.db'}")


def _experiment(name: str = "e") -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"executable": {"command": ["true"]}, "workUnits": [{"args": {}}]},
        }
    )


def test_reconciles_here_when_nobody_leads(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply(_experiment())
    assert reconcile_until(store, lambda: finished(store, "e"), timeout=60)
    assert store.get_experiment("e").status.phase.value == "Succeeded"  # type: ignore[union-attr]
    assert store.lease() is None, "the in-process controller gives its lease up"


def test_follows_a_live_leader_without_reconciling(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply(_experiment())
    assert store.try_acquire_lease("elsewhere:1:abc", ttl=60)  # another host's controller
    polls = []

    def until() -> bool:
        polls.append(time.monotonic())
        return len(polls) >= 3

    assert reconcile_until(store, until, timeout=10, follow=True)
    assert store.lease() == ("elsewhere:1:abc", None)
    st = store.get_experiment("e").status
    assert st is None or st.observed_generation is None, "nothing was reconciled here"


def test_deadline_ends_the_wait(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.try_acquire_lease("elsewhere:1:abc", ttl=60)
    started = time.monotonic()
    assert not reconcile_until(store, lambda: False, timeout=1.0, follow=True)
    assert time.monotonic() - started < 5


def test_takes_over_a_dead_local_controllers_lease(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply(_experiment())
    dead = f"{socket.gethostname()}:{2**22 + os.getpid() % 1000}:dead"  # no such process
    assert store.try_acquire_lease(dead, ttl=60)
    ctl = Controller(store, local_interval=0.2)
    assert reconcile_until(store, lambda: finished(store, "e"), timeout=60, controller=ctl)


def test_step_runs_one_pass_then_closes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply(_experiment())
    here = InProcessReconciler(store)

    async def main() -> None:
        for _ in range(60):
            await here.step(0.1)
            if finished(store, "e"):
                break
        assert store.lease() is not None, "a stepping waiter keeps the lease between steps"
        await here.close()

    anyio.run(main)
    assert finished(store, "e") and store.lease() is None
