"""Clusters are reconciled in parallel: one worker per due cluster, so a cluster whose
scheduler calls hang delays no other cluster's experiments."""

from __future__ import annotations

import sys
import time

import anyio
import pytest

import lxr.reconciler.controller as controller_module
from lxr.api.resources import Cluster, Experiment
from lxr.store import Store
from lxr.testing import converge, finished

pytestmark = pytest.mark.slow

STALL_SECONDS = 30.0


def _experiment(name: str, cluster: str, n: int) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "cluster": cluster,
                "executable": {"command": [sys.executable, "-c", "pass"]},
                "workUnits": [{}] * n,
            },
        }
    )


def test_a_stalled_cluster_delays_no_other(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.apply(
        Cluster.model_validate({"metadata": {"name": "stalled"}, "spec": {"scheduler": "local"}})
    )
    store.apply(_experiment("slow", "stalled", 1))
    store.apply(_experiment("fast", "local", 3))
    stall: dict[str, float] = {}
    original = controller_module.make_driver

    def make_driver(cluster, spec, observer=None):
        driver = original(cluster, spec, observer=observer)
        if cluster == "stalled":
            write_files = driver.transport.write_files

            async def stalling(files, mode=0o644):
                if "began" not in stall:
                    stall["began"] = time.monotonic()
                    await anyio.sleep(STALL_SECONDS)
                    stall["ended"] = time.monotonic()
                return await write_files(files, mode)

            driver.transport.write_files = stalling
        return driver

    monkeypatch.setattr(controller_module, "make_driver", make_driver)
    started = time.monotonic()
    converge(store, ["fast"], timeout=STALL_SECONDS - 5)
    fast = time.monotonic() - started
    assert "began" in stall and "ended" not in stall, stall
    assert not finished(store, "slow")
    print(f"'fast' converged in {fast:.1f}s while 'stalled' hung for {STALL_SECONDS:.0f}s")
    assert fast < STALL_SECONDS / 2
    # the stalled cluster converges too once its calls come back
    converge(store, ["slow"], timeout=60)
    assert [u.status.phase.value for u in store.list_work_units("slow")] == ["Succeeded"]
