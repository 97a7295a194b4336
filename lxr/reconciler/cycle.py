"""One cluster's cycle: refresh the cached desired state, stage the artifacts it needs, observe
the scheduler once, plan what changed, act."""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxr.api.container import programs_needed_by
from lxr.api.records import ExperimentRecord
from lxr.reconciler.actions import Finalize, SetStatus
from lxr.reconciler.actor import Actor
from lxr.reconciler.artifacts import needs_staging, stage_artifacts
from lxr.reconciler.informer import Informer, observe_query
from lxr.reconciler.planner import plan
from lxr.schedulers.base import Snapshot

__all__ = ["BIG_CYCLE", "CycleResult", "missing_programs", "observe_query", "run_cycle"]

#: cycles over at least this many cached work units run without the cyclic garbage collector
BIG_CYCLE = 10_000


async def missing_programs(
    actor: Actor, desired: Sequence[ExperimentRecord], informer: Informer
) -> frozenset[str]:
    """The programs that work units about to be submitted need and the cluster lacks: one
    ``command -v`` round trip for the names not known yet (the driver caches the answers)."""
    names: set[str] = set()
    for exp in desired:
        if exp.deleting or exp.failed_reason:
            continue
        if informer.submittable(exp):
            names.update(programs_needed_by(exp.spec))
    if not names:
        return frozenset()
    return await actor.driver.programs.missing(names)


def where(actor: Actor) -> str:
    """Where the programs were looked up, for the RuntimeMissing message."""
    if actor.cluster_spec.scheduler == "local":
        return f"this machine (cluster {actor.cluster})"
    return f"login node of cluster {actor.cluster}"


@dataclass
class CycleResult:
    """What one cluster's cycle did."""

    cluster: str
    actions: int = 0
    submitted_tasks: int = 0
    finished: list[str] = field(default_factory=list)
    experiments: int = 0  # experiments with work on the cluster
    work_units: int = 0  # their work units not finished yet
    in_flight: int = 0  # of those, with an attempt at the scheduler
    loaded: int = 0  # work units read from the store (the rest came from the cache)
    planned: int = 0  # work units planned (the rest had not changed)
    seconds: float = 0.0  # how long the cycle took

    def summary(self) -> str:
        """The cycle in one line: cluster, counts, duration."""
        return (
            f"cluster {self.cluster}: {self.experiments} experiment(s), {self.work_units} "
            f"work unit(s) active, {self.in_flight} in flight, {self.loaded} loaded, "
            f"{self.planned} planned, {self.actions} action(s), {self.submitted_tasks} task(s) "
            f"submitted, {self.seconds:.3f}s"
        )


async def run_cycle(
    actor: Actor, snapshot_times: dict[str, float], informer: Informer | None = None
) -> CycleResult:
    """One cycle for the actor's cluster: refresh the cache, observe once, plan what changed,
    act. ``snapshot_times`` gets the time of this cluster's observation. Without an
    ``informer`` (a cache kept from cycle to cycle) everything is read and planned."""
    informer = informer if informer is not None else Informer(resync_seconds=0.0)
    # A pass over 100k work units makes several objects per unit, next to the cache's 100k
    # records: the cyclic collector's full passes walked them all again and again (half the
    # time of such a pass). Planning makes no cycles; reference counting frees its garbage.
    # Only big cycles run without it, so it still runs between them.
    collecting = gc.isenabled() and informer.size >= BIG_CYCLE
    if collecting:
        gc.disable()
    try:
        return await _cycle(actor, snapshot_times, informer)
    except BaseException:
        informer.failed()  # what this cycle wrote is unknown: read everything next time
        raise
    finally:
        if collecting:
            gc.enable()


async def _cycle(actor: Actor, snapshot_times: dict[str, float], informer: Informer) -> CycleResult:
    cluster, store, db = actor.cluster, actor.store, actor.calls
    todo = informer.plan_refresh(await db(store.experiment_versions, cluster))
    loaded = await db(store.load_desired, cluster, todo.full) if todo.full else []
    heads = await db(store.load_desired, cluster, todo.headers, units=False) if todo.headers else []
    desired = informer.refreshed(todo, loaded, heads)
    if actor.crash_hook:
        actor.crash_hook("cache-refreshed")
    result = CycleResult(cluster, experiments=len(desired), loaded=informer.loaded)
    if not desired:
        return result
    for exp in desired:
        result.work_units += len(exp.work_units)
        result.in_flight += sum(len(v) for v in informer.shape(exp).jobs.values())
    staging = needs_staging(desired, actor.driver.blobs_root is not None)
    if staging:  # artifacts first: one check for all of them, uploads of what is missing
        changed = await stage_artifacts(actor, staging)
        desired = [changed.get(e.uid, e) for e in desired]
    by_uid = {e.uid: e for e in desired}

    async def plan_and_act(exps: Sequence[ExperimentRecord], snap: Snapshot, seen: bool) -> None:
        now = time.time()
        for exp in exps:
            narrowed = informer.to_plan(exp, snap)
            if narrowed is None:  # nothing changed for it since its last plan
                continue
            result.planned += len(narrowed.work_units)
            planned = plan([narrowed], snap, now)
            informer.planned(narrowed, snap if seen else None)
            result.actions += len(planned)
            # the plan's actions are let go as they are carried out (100k patches are not
            # kept to the end of the cycle)
            planned.reverse()
            while planned:
                action = planned.pop()
                result.submitted_tasks += await actor.execute(action, by_uid)
                informer.acted(action, now, actor.written)
                if isinstance(action, Finalize) or (
                    isinstance(action, SetStatus) and action.finished
                ):
                    result.finished.append(by_uid[action.experiment_uid].name)

    # The planner reads the snapshot only for attempts in flight, so an experiment with none
    # (a new sweep, one waiting out a backoff) is planned and acted on before the cluster is
    # observed: a new sweep's sbatch does not wait for a squeue round trip. The intent is
    # still recorded before submitting, and the next observation covers the new jobs.
    idle = [e for e in desired if all(wu.active is None for wu in e.work_units)]
    busy = [e for e in desired if any(wu.active is not None for wu in e.work_units)]
    # runtimes and interpreters first: a work unit needing a missing one is held, not submitted
    missing = await missing_programs(actor, desired, informer)
    on = where(actor)
    if idle:
        empty = Snapshot(cluster, time.time(), {}, missing_programs=missing, looked_up_on=on)
        await plan_and_act(idle, empty, False)
    if busy:
        # a leader that lost its lease learns it here, before it acts on what it observes
        await actor.guard()
        snapshot = await actor.driver.observe(informer.query(busy))
        snapshot_times[cluster] = snapshot.time
        snapshot = dataclasses.replace(snapshot, missing_programs=missing, looked_up_on=on)
        await plan_and_act(busy, snapshot, True)
        informer.observed(snapshot)
    else:  # nothing in flight: an empty view of the cluster is current
        snapshot_times[cluster] = time.time()
    informer.settle()
    return result
