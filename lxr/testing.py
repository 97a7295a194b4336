"""Helpers for tests of lxr and of code built on it: converge experiments in-process.

Like ``kopf.testing``: a test applies resources to a :class:`~lxr.store.Store`, then calls
:func:`converge` to run real reconcile cycles until the experiments finish (the same in-process
loop as ``lxr apply --wait``: :mod:`lxr.reconciler.inprocess`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio

from lxr.api.phases import EXPERIMENT_INITIAL, ExperimentPhase
from lxr.api.resources import Experiment
from lxr.reconciler.actions import Finalize, SetStatus
from lxr.reconciler.controller import Controller
from lxr.reconciler.inprocess import reconcile_until
from lxr.reconciler.status import plan_status
from lxr.store import NotFound, Store

__all__ = ["converge", "finished", "refresh_status", "run_cycles"]


def finished(store: Store, name: str) -> bool:
    """True when the experiment's status is current and its ``Finished`` condition is True
    (or it no longer exists)."""
    try:
        exp: Experiment = store.get_experiment(name)
    except NotFound:
        return True
    st = exp.status
    if st is None or st.observed_generation != exp.metadata.generation:
        return False
    return any(c.type == "Finished" and c.status.value == "True" for c in st.conditions)


def converge(
    store: Store,
    names: Sequence[str],
    *,
    timeout: float = 120.0,
    controller: Controller | None = None,
    until: Callable[[], bool] | None = None,
    interval: float = 0.5,
) -> Controller:
    """Run a controller in this process until every experiment in ``names`` finished (or
    ``until()`` holds). Raises TimeoutError after ``timeout`` seconds."""
    ctl = controller or Controller(store, interval=interval, local_interval=min(interval, 0.3))
    done = until or (lambda: all(finished(store, n) for n in names))
    started = time.monotonic()
    if not reconcile_until(store, done, timeout=timeout, controller=ctl):
        raise TimeoutError(
            f"experiments {list(names)} did not converge in {time.monotonic() - started:.0f}s"
        )
    return ctl


def run_cycles(store: Store, n: int, controller: Controller | None = None) -> Controller:
    """Run exactly ``n`` reconcile passes."""
    ctl = controller or Controller(store)

    async def main() -> None:
        for _ in range(n):
            await ctl.run_once()

    anyio.run(main)
    return ctl


def refresh_status(store: Store, experiment_uid: str, now: float) -> tuple[str, bool]:
    """Plan and write one experiment's status from its stored work units, outside a cycle (the
    status step of a plan that moves no work unit). Returns ``(phase, finished)``."""
    for cluster in store.clusters_with_work():
        for record in store.load_desired(cluster):
            if record.uid != experiment_uid:
                continue
            action = plan_status(record, {}, 0, (), None, now)
            if isinstance(action, Finalize):
                store.finalize(action)
                return ExperimentPhase.STOPPED.value, True
            if isinstance(action, SetStatus):
                store.write_status(action, cluster)
                return action.phase, action.finished
            written = record.status.written if record.status else {}
            return written.get("phase", EXPERIMENT_INITIAL.value), False
    # finished and current (nothing to plan), or gone
    for exp in store.list_experiments():
        if exp.metadata.uid == experiment_uid and exp.status is not None:
            return exp.status.phase.value, True
    return ExperimentPhase.STOPPED.value, True
