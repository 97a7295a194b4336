"""Finding experiments again: ``get_experiment(id)`` from the store (its work units, their
identities and context, ready for more ``add`` calls), and the current experiment or work
unit of a launch script or of a task."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable
from concurrent import futures
from typing import Any

from xmanager import xm
from xmanager.xm import core as xm_core

from lxr.redaction import redact
from lxr.store import Store
from lxr.xm_cluster.context import ANNOTATION_TITLE
from lxr.xm_cluster.experiment import ClusterExperiment
from lxr.xm_cluster.work_unit import ClusterWorkUnit
from lxr.xm_cluster.writer import ANNOTATION_WORK_UNITS, LABEL_EXPERIMENT_ID

__all__ = ["get_current_experiment", "get_current_work_unit", "get_experiment"]

#: where the title was kept before the context annotations
_OLD_TITLE = "xm.lxr.dev/title"


def get_experiment(experiment_id: int, *, store: Store | None = None) -> ClusterExperiment:
    """The experiment ``experiment_id`` as stored (its work units with their status)."""
    store = store or Store()
    exps = store.list_experiments({LABEL_EXPERIMENT_ID: str(experiment_id)})
    if not exps:
        raise xm.NotFoundError(f"no xm experiment {experiment_id} in {redact(store.url)}")
    exps = sorted(exps, key=lambda e: e.metadata.creation_timestamp or 0)
    stored = dict(exps[-1].metadata.annotations)
    title = stored.get(ANNOTATION_TITLE) or stored.get(_OLD_TITLE) or "xm"
    exp = ClusterExperiment(
        title, store=store, experiment_id=int(experiment_id), stored_annotations=stored
    )
    exp._names = [e.metadata.name for e in exps]
    for lxr_exp in exps:
        ids = json.loads(lxr_exp.metadata.annotations.get(ANNOTATION_WORK_UNITS, "[]"))
        for idx, (wu_id, _number, *more) in enumerate(ids):
            wu = exp._work_units.get(wu_id)
            if wu is None:
                identity = more[0] if more else ""
                wu = ClusterWorkUnit(exp, _no_tasks, None, xm.WorkUnitRole(), wu_id, identity)
                exp._work_units[wu_id] = wu
            wu._refs.append((lxr_exp.metadata.name, idx))
    exp._work_units = dict(sorted(exp._work_units.items()))
    return exp


def get_current_work_unit() -> ClusterWorkUnit:
    """The work unit being built (inside a job generator of a launch script), or, inside a
    task that can reach the store, the unit the task belongs to: tasks of launched experiments
    see ``XM_EXPERIMENT_ID``, ``LXR_EXPERIMENT`` and ``LXR_WORK_UNIT``; the unit's XManager
    id (1-based) is its ``work_unit_id``."""
    unit = xm_core._current_experiment_unit.get(None)  # xm keeps it there
    if isinstance(unit, ClusterWorkUnit):
        return unit
    xid = os.environ.get("XM_EXPERIMENT_ID")
    name, index = os.environ.get("LXR_EXPERIMENT"), os.environ.get("LXR_WORK_UNIT")
    if not xid or not name or index is None:
        raise RuntimeError(
            "get_current_work_unit() needs a job generator of a launch script, or a task of "
            "a launched experiment (XM_EXPERIMENT_ID, LXR_EXPERIMENT and LXR_WORK_UNIT)"
        )
    for wu in get_experiment(int(xid)).work_units.values():
        if (name, int(index)) in wu.refs:
            return wu
    raise xm.NotFoundError(f"no work unit of xm experiment {xid} runs {name}/{index}")


def get_current_experiment() -> ClusterExperiment:
    """The experiment whose ``with`` block (or job generator) is running (lxm3's function)."""
    exp = xm_core._current_experiment.get(None)
    if not isinstance(exp, ClusterExperiment):
        raise RuntimeError("get_current_experiment() needs an experiment context (a with block)")
    return exp


def _no_tasks(_: Awaitable[Any]) -> futures.Future[Any]:
    raise RuntimeError("a rehydrated experiment cannot add jobs; create a new experiment")
