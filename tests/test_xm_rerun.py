"""XManager on a reattached experiment (issue 15.4): ``get_experiment(id)`` then ``add`` of an
identity whose unit ended Failed runs it again with a fresh budget, keeping its attempts; a
Succeeded one is adopted as before."""

from __future__ import annotations

import pytest

pytest.importorskip("xmanager")

from lxr import xm, xm_cluster
from lxr.store import Store
from lxr.testing import converge
from tests.test_xm_fidelity import _exe

pytestmark = pytest.mark.slow


def _add(experiment: xm_cluster.ClusterExperiment, exe: xm.Executable) -> None:
    job = xm.Job(exe, xm_cluster.Local())
    experiment.add(job, args={"args": {"seed": 1}}, identity="ok")
    experiment.add(job, args={"args": {"seed": 2, "fail": True}}, identity="bad")


def test_add_on_a_reattached_experiment_reruns_the_failed_identity(store: Store) -> None:
    overrides = {"backoff_limit_per_index": 0}
    with xm_cluster.create_experiment(
        "rerun", store=store, quiet=True, spec_overrides=overrides
    ) as experiment:
        _add(experiment, _exe(experiment))
    [name] = [e.metadata.name for e in store.list_experiments()]
    converge(store, [name], timeout=120)
    before = {w.spec.index: w.status for w in store.list_work_units(name)}
    assert (before[0].phase.value, before[1].phase.value) == ("Succeeded", "Failed")

    again = xm_cluster.get_experiment(experiment.experiment_id, store=store)
    with again:
        _add(again, _exe(again))
    assert again.work_unit_count == 2  # nothing added
    assert [e.metadata.name for e in store.list_experiments()] == [name]
    converge(store, [name], timeout=120)
    after = {w.spec.index: w.status for w in store.list_work_units(name)}
    assert len(after[0].attempts) == 1  # the Succeeded unit did not run again
    assert [a.exit_code for a in after[1].attempts] == [3, 3]  # rerun; --fail fails again
    assert after[1].phase.value == "Failed" and after[1].failures == 1
