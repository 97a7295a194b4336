"""A Cluster's ``defaults`` are recorded with each experiment when it is applied: a later
change of the cluster's defaults does not change what an experiment already applied asks
the scheduler for (desired state is self-contained), and re-applying its file stays
``unchanged``."""

from __future__ import annotations

from typing import Any

import anyio

from lxr.api.loader import parse_object
from lxr.reconciler.controller import Controller
from lxr.store import Store


def _cluster(store: Store, defaults: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "lxr.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "here"},
        "spec": {"scheduler": "local", "defaults": defaults},
    }
    return store.apply(parse_object(doc, "t").obj).action


def _experiment(store: Store, name: str) -> str:
    doc = {
        "apiVersion": "lxr.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {"cluster": "here", "executable": {"command": ["true"]}},
    }
    return store.apply(parse_object(doc, "t").obj).action


def _asked(store: Store, name: str) -> dict[str, Any]:
    [unit] = store.list_work_units(name)
    [attempt] = unit.status.attempts
    assert attempt.resources is not None, unit.status
    return attempt.resources


def test_an_experiment_asks_what_the_cluster_defaults_were_when_it_was_applied(
    store: Store,
) -> None:
    assert _cluster(store, {"timeLimitSeconds": 600, "memory": "256Mi"}) == "created"
    assert _experiment(store, "before") == "created"
    assert _cluster(store, {"timeLimitSeconds": 30, "cpus": 2}) == "configured"
    # the same file again: nothing changed in what it asks
    assert _experiment(store, "before") == "unchanged"
    assert _experiment(store, "after") == "created"
    controller = Controller(store)
    anyio.run(controller.run_once)
    before, after = _asked(store, "before"), _asked(store, "after")
    assert (before.get("timeLimitSeconds"), before.get("memory"), before.get("cpus")) == (
        600,
        "256Mi",
        None,
    ), before
    assert (after.get("timeLimitSeconds"), after.get("memory"), after.get("cpus")) == (
        30,
        None,
        2,
    ), after
