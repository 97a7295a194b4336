"""One cluster's cycle: read the desired state, observe the scheduler once, plan, act."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxr.api.container import programs_needed_by
from lxr.api.records import ExperimentRecord
from lxr.reconciler.actions import Finalize, SetStatus
from lxr.reconciler.actor import Actor
from lxr.reconciler.planner import plan
from lxr.schedulers.base import ObserveQuery, Snapshot

__all__ = ["CycleResult", "missing_programs", "observe_query", "run_cycle"]


def observe_query(desired: Sequence[ExperimentRecord]) -> ObserveQuery:
    """What the snapshot must cover: jobs in flight (with their indexes) and unconfirmed tags."""
    jobs: dict[str, set[int]] = {}
    intents: set[str] = set()
    gangs: dict[str, int] = {}
    for exp in desired:
        # every component of a heterogeneous job is started as ranks, even a single one
        ranks = exp.spec.ranks
        gang = ranks > 1 or exp.spec.components is not None
        for wu in exp.work_units:
            att = wu.active
            if att is None:
                continue
            if att.job_id is None:
                intents.add(att.submission_tag)
            else:
                jobs.setdefault(att.job_id, set()).add(att.array_index)
                if gang:
                    gangs[att.job_id] = ranks
    return ObserveQuery({k: frozenset(v) for k, v in jobs.items()}, frozenset(intents), gangs)


async def missing_programs(actor: Actor, desired: Sequence[ExperimentRecord]) -> frozenset[str]:
    """The programs that work units about to be submitted need and the cluster lacks: one
    ``command -v`` round trip for the names not known yet (the driver caches the answers)."""
    names: set[str] = set()
    for exp in desired:
        if exp.deleting or exp.failed_reason:
            continue
        if any(wu.active is None and not wu.stop_requested for wu in exp.work_units):
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
    seconds: float = 0.0  # how long the cycle took

    def summary(self) -> str:
        """The cycle in one line: cluster, counts, duration."""
        return (
            f"cluster {self.cluster}: {self.experiments} experiment(s), {self.work_units} "
            f"work unit(s) active, {self.in_flight} in flight, {self.actions} action(s), "
            f"{self.submitted_tasks} task(s) submitted, {self.seconds:.3f}s"
        )


async def run_cycle(actor: Actor, snapshot_times: dict[str, float]) -> CycleResult:
    """One cycle for the actor's cluster: observe once, plan, act. ``snapshot_times`` gets the
    time of this cluster's observation."""
    cluster, store, db = actor.cluster, actor.store, actor.calls
    desired = await db(store.load_desired, cluster)
    result = CycleResult(cluster, experiments=len(desired))
    if not desired:
        return result
    for exp in desired:
        result.work_units += len(exp.work_units)
        result.in_flight += sum(wu.active is not None for wu in exp.work_units)
    by_uid = {e.uid: e for e in desired}
    # The planner reads the snapshot only for attempts in flight, so an experiment with none
    # (a new sweep, one waiting out a backoff) is planned and acted on before the cluster is
    # observed: a new sweep's sbatch does not wait for a squeue round trip. The intent is
    # still recorded before submitting, and the next observation covers the new jobs.
    idle = [e for e in desired if all(wu.active is None for wu in e.work_units)]
    busy = [e for e in desired if any(wu.active is not None for wu in e.work_units)]
    # runtimes and interpreters first: a work unit needing a missing one is held, not submitted
    missing = await missing_programs(actor, desired)
    on = where(actor)
    empty = Snapshot(cluster, time.time(), {}, missing_programs=missing, looked_up_on=on)
    actions = plan(idle, empty, time.time()) if idle else []
    for action in actions:
        result.submitted_tasks += await actor.execute(action, by_uid)
    if busy:
        # a leader that lost its lease learns it here, before it acts on what it observes
        await actor.guard()
        snapshot = await actor.driver.observe(observe_query(busy))
        snapshot_times[cluster] = snapshot.time
        snapshot = dataclasses.replace(snapshot, missing_programs=missing, looked_up_on=on)
        later = plan(busy, snapshot, time.time())
        for action in later:
            result.submitted_tasks += await actor.execute(action, by_uid)
        actions += later
    else:  # nothing in flight: an empty view of the cluster is current
        snapshot_times[cluster] = time.time()
    result.actions = len(actions)
    result.finished = [
        by_uid[a.experiment_uid].name
        for a in actions
        if isinstance(a, Finalize) or (isinstance(a, SetStatus) and a.finished)
    ]
    return result
