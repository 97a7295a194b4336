"""The reconcile loop: observe -> plan -> act, per cluster, until every work unit converges.

One cycle per cluster reads the desired state, takes *one* snapshot of the scheduler, asks the
pure planner for actions and has the :class:`Actor` carry them out. A cluster whose cycle
fails is retried with exponential backoff (:class:`WorkQueue`). Cycles run when woken
(``lxr apply`` notifies), and at least every ``interval`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from lxr.api.argv import task_argv
from lxr.api.phases import SubmissionEvent, submission_transition
from lxr.api.records import ExperimentRecord
from lxr.api.resources import ClusterSpec, RequeuePolicy
from lxr.reconciler.actions import (
    Action,
    Cancel,
    Finalize,
    Resubmit,
    RetryIntent,
    SetStatus,
    Submit,
    UpdateStatus,
)
from lxr.reconciler.planner import plan
from lxr.reconciler.wakeup import WakeupListener
from lxr.reconciler.workqueue import WorkQueue
from lxr.schedulers.base import (
    ArrayJob,
    Driver,
    ObserveQuery,
    Snapshot,
    SubmitRejected,
    TaskSpec,
)
from lxr.schedulers.registry import make_driver, poll_interval
from lxr.store import Store, SubmissionInfo, state_dir

if TYPE_CHECKING:
    from lxr.metrics import Metrics

__all__ = [
    "CRASH_ENV",
    "Actor",
    "Controller",
    "CycleResult",
    "controller_socket_path",
    "observe_query",
]

log = logging.getLogger("lxr.controller")

LEASE_TTL_SECONDS = 15.0


def controller_socket_path(database_url: str) -> Path:
    """Where the controller for ``database_url`` listens for wake-ups."""
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:12]
    return state_dir() / "run" / f"controller-{digest}.sock"


def observe_query(desired: Sequence[ExperimentRecord]) -> ObserveQuery:
    """What the snapshot must cover: jobs in flight (with their indexes) and unconfirmed tags."""
    jobs: dict[str, set[int]] = {}
    intents: set[str] = set()
    for exp in desired:
        for wu in exp.work_units:
            att = wu.active
            if att is None:
                continue
            if att.job_id is None:
                intents.add(att.submission_tag)
            else:
                jobs.setdefault(att.job_id, set()).add(att.array_index)
    return ObserveQuery({k: frozenset(v) for k, v in jobs.items()}, frozenset(intents))


def _new_tag(experiment: str) -> str:
    return f"{experiment[:40]}-{secrets.token_hex(5)}"


@dataclass
class CycleResult:
    """What one cluster's cycle did."""

    cluster: str
    actions: int = 0
    submitted_tasks: int = 0
    finished: list[str] = field(default_factory=list)


class Actor:
    """Carries out the planner's actions against the store and one cluster's driver."""

    def __init__(
        self,
        store: Store,
        driver: Driver,
        cluster_spec: ClusterSpec,
        metrics: Metrics | None = None,
        crash_hook: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.driver = driver
        self.cluster_spec = cluster_spec
        self.metrics = metrics
        # tests inject crashes at the two points that matter for idempotent submission
        self.crash_hook = crash_hook or _env_crash_hook()

    @property
    def cluster(self) -> str:
        return self.driver.cluster

    async def execute(self, action: Action, desired: dict[str, ExperimentRecord]) -> int:
        """Carry out ``action``; returns the number of tasks it submitted."""
        if isinstance(action, UpdateStatus):
            self.store.apply_update(action, self.cluster)
            if self.metrics:
                for h in action.handled:
                    self.metrics.failure_handled(self.cluster, h.action)
            return 0
        if isinstance(action, SetStatus):
            self.store.write_status(action, self.cluster)
            return 0
        if isinstance(action, Finalize):
            self.store.finalize(action)
            return 0
        if isinstance(action, Cancel):
            await self.driver.cancel(list(action.targets))
            self.store.mark_cancel_requested(action.attempt_ids, time.time())
            return 0
        if isinstance(action, RetryIntent):
            return await self._submit(self.store.submission(action.submission_id))
        if isinstance(action, Submit):  # and Resubmit
            exp = desired[action.experiment_uid]
            total = 0
            size = max(1, self.driver.max_array_size)
            for start in range(0, len(action.entries), size):
                chunk = action.entries[start : start + size]
                indexes = self.driver.array_indexes([e.index for e in chunk])
                tag = _new_tag(exp.name)
                sub_id = self.store.record_intent(
                    exp.uid,
                    self.cluster,
                    tag,
                    [
                        (e.work_unit_id, e.attempt, ai, e.retry_reason)
                        for e, ai in zip(chunk, indexes, strict=True)
                    ],
                    phase=action.phase,
                    attempt_phase=action.attempt_phase,
                )
                if self.crash_hook:
                    self.crash_hook("intent-recorded")
                total += await self._submit(self.store.submission(sub_id))
                if isinstance(action, Resubmit) and self.metrics:
                    for e in chunk:
                        self.metrics.resubmission(self.cluster, _metric_reason(e.retry_reason))
            return total
        raise TypeError(f"unknown action {action!r}")

    def build_job(self, sub: SubmissionInfo) -> ArrayJob:
        """The array job a recorded submission stands for."""
        spec = sub.spec
        tasks = [
            TaskSpec(
                array_index=array_index,
                argv=task_argv(spec.executable.command, args),
                env={
                    **spec.executable.env,
                    **env,
                    "LXR_EXPERIMENT": sub.experiment,
                    "LXR_WORK_UNIT": str(wu_index),
                    "LXR_ATTEMPT": str(attempt),
                },
                working_dir=spec.executable.working_dir,
                work_unit=wu_index,
                attempt=attempt,
                env_from=tuple(spec.executable.env_from),
            )
            for array_index, wu_index, attempt, args, env in sub.tasks
        ]
        return ArrayJob(
            tag=sub.tag,
            experiment=sub.experiment,
            experiment_uid=sub.experiment_uid,
            tasks=tasks,
            resources=spec.resources.merged_over(self.cluster_spec.defaults),
            throttle=spec.parallelism,
            scheduler_requeue=spec.requeue is RequeuePolicy.SCHEDULER,
        )

    async def _submit(self, sub: SubmissionInfo) -> int:
        job = self.build_job(sub)
        try:
            job_id = await self.driver.submit(job)
        except SubmitRejected as exc:
            # the next plan ends these attempts with reason SubmitError (a table row)
            row = submission_transition(sub.state, SubmissionEvent.REJECTED)
            self.store.mark_submit_failed(sub.id, str(exc), row)
            reason = row.event_reason or "SubmitRejected"
            self.store.add_events(
                [("Warning", reason, str(exc)[:2000], "Experiment", sub.experiment)],
                sub.experiment_uid,
                self.cluster,
            )
            if self.metrics:
                self.metrics.submission(self.cluster, "error")
            return 0
        except Exception:
            if self.metrics:
                self.metrics.submission(self.cluster, "error")
            raise
        if self.crash_hook:
            self.crash_hook("job-submitted")
        self.store.mark_submitted(
            sub.id, job_id, submission_transition(sub.state, SubmissionEvent.ACCEPTED)
        )
        # retries get their own reason, so `lxr get events` tells them from first submissions
        retried = sorted(t.work_unit for t in job.tasks if t.attempt > 1)
        what = f"{len(job.tasks)} task(s)"
        if retried:
            shown = ", ".join(map(str, retried[:10])) + (", ..." if len(retried) > 10 else "")
            what += f", retrying work unit(s) {shown}"
        self.store.add_events(
            [
                (
                    "Normal",
                    "Resubmitted" if retried else "Submitted",
                    f"job {job_id}: {what} (tag {sub.tag})",
                    "Experiment",
                    sub.experiment,
                )
            ],
            sub.experiment_uid,
            self.cluster,
        )
        if self.metrics:
            self.metrics.submission(self.cluster, "success")
        return len(job.tasks)


#: ``LXR_TEST_CRASH_AT=intent-recorded|job-submitted`` makes the controller SIGKILL itself there
CRASH_ENV = "LXR_TEST_CRASH_AT"


def _env_crash_hook() -> Callable[[str], None] | None:
    """A hook that kills this process at the point named in :data:`CRASH_ENV` (for tests that
    prove a crash between "intent recorded" and "job id recorded" never submits twice)."""
    point = os.environ.get(CRASH_ENV)
    if not point:
        return None

    def crash(at: str) -> None:
        if at == point:
            log.warning("%s=%s: killing this controller now", CRASH_ENV, point)
            os.kill(os.getpid(), signal.SIGKILL)

    return crash


def _metric_reason(reason: str | None) -> str:
    if reason in ("Error", "SubmitError", "Cancelled", None):
        return "Failed"
    return reason


class Controller:
    """Runs reconcile cycles for every cluster with work, as the lease holder."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 2.0,
        local_interval: float = 0.5,
        metrics: Metrics | None = None,
        holder: str | None = None,
        crash_hook: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.local_interval = local_interval
        self.metrics = metrics
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.crash_hook = crash_hook or _env_crash_hook()
        self.queue = WorkQueue()
        self.drivers: dict[str, tuple[Driver, ClusterSpec]] = {}
        self.socket_path = controller_socket_path(store.url)
        self.leader = False
        self.cycles = 0
        self.snapshot_times: dict[str, float] = {}
        # the store's staged-bytes totals when this controller first read them (see below)
        self._staged_seen: dict[str, int] | None = None

    # ------------------------------------------------------------------ lease

    def acquire_lease(self) -> bool:
        """Take the lease, also from a dead controller of this host (no TTL wait)."""
        address = str(self.socket_path)
        ok = self.store.try_acquire_lease(self.holder, LEASE_TTL_SECONDS, address)
        if not ok:
            current = self.store.lease()
            if current and _dead_local_holder(current[0]):
                self.store.release_lease(current[0])
                ok = self.store.try_acquire_lease(self.holder, LEASE_TTL_SECONDS, address)
        if ok != self.leader:
            log.info("leadership %s", "acquired" if ok else "lost")
        self.leader = ok
        if self.metrics:
            self.metrics.set_leader(ok)
        return ok

    # ------------------------------------------------------------------ cycles

    async def driver_for(self, cluster: str) -> tuple[Driver, ClusterSpec]:
        """The cluster's driver, built and prepared on first use (rebuilt if its spec changed)."""
        spec = self.store.get_cluster(cluster).spec
        cached = self.drivers.get(cluster)
        if cached and cached[1] == spec:
            return cached
        if cached:
            await cached[0].close()
        observer = None
        if self.metrics:
            metrics = self.metrics
            metrics.known_cluster(cluster)

            def observer(command: str, seconds: float, ok: bool) -> None:
                metrics.scheduler_command(cluster, command, seconds, ok)

        driver = make_driver(cluster, spec, observer=observer)
        await driver.prepare()
        self.drivers[cluster] = (driver, spec)
        return driver, spec

    async def reconcile(self, cluster: str) -> CycleResult:
        """One cycle for one cluster: observe once, plan, act, refresh statuses."""
        driver, spec = await self.driver_for(cluster)
        desired = self.store.load_desired(cluster)
        result = CycleResult(cluster)
        if not desired:
            return result
        actor = Actor(self.store, driver, spec, self.metrics, self.crash_hook)
        by_uid = {e.uid: e for e in desired}
        # The planner reads the snapshot only for attempts in flight, so an experiment with none
        # (a new sweep, one waiting out a backoff) is planned and acted on before the cluster is
        # observed: a new sweep's sbatch does not wait for a squeue round trip. The intent is
        # still recorded before submitting, and the next observation covers the new jobs.
        idle = [e for e in desired if all(wu.active is None for wu in e.work_units)]
        busy = [e for e in desired if any(wu.active is not None for wu in e.work_units)]
        actions = plan(idle, Snapshot(cluster, time.time(), {}), time.time()) if idle else []
        for action in actions:
            result.submitted_tasks += await actor.execute(action, by_uid)
        if busy:
            snapshot = await driver.observe(observe_query(busy))
            self.snapshot_times[cluster] = snapshot.time
            later = plan(busy, snapshot, time.time())
            for action in later:
                result.submitted_tasks += await actor.execute(action, by_uid)
            actions += later
        else:  # nothing in flight: an empty view of the cluster is current
            self.snapshot_times[cluster] = time.time()
        result.actions = len(actions)
        result.finished = [
            by_uid[a.experiment_uid].name
            for a in actions
            if isinstance(a, Finalize) or (isinstance(a, SetStatus) and a.finished)
        ]
        return result

    async def run_once(self) -> list[CycleResult]:
        """One pass over every cluster that is due; errors back the cluster off."""
        if not self.acquire_lease():
            return []
        now = time.time()
        keys = self.store.clusters_with_work()
        due = self.queue.due(keys, now)
        if self.metrics:
            self.metrics.set_workqueue_depth(self.queue.depth(keys, now))
        results = []
        for cluster in due:
            started = time.monotonic()
            try:
                results.append(await self.reconcile(cluster))
            except Exception as exc:  # a cluster's error must not stop the others
                delay = self.queue.failed(cluster, time.time())
                log.warning(
                    "reconcile of cluster %s failed (retry in %.0fs): %s", cluster, delay, exc
                )
                log.debug("reconcile error", exc_info=True)
                self.store.add_events(
                    [
                        (
                            "Warning",
                            "ReconcileError",
                            f"{type(exc).__name__}: {exc}"[:2000],
                            "Cluster",
                            cluster,
                        )
                    ],
                    cluster=cluster,
                )
                if self.metrics:
                    self.metrics.reconcile_error()
                    self.metrics.workqueue_retry()
                    self.metrics.observe_reconcile("error", time.monotonic() - started)
            else:
                self.queue.succeeded(cluster)
                if self.metrics:
                    self.metrics.observe_reconcile("success", time.monotonic() - started)
        self.cycles += 1
        self.publish_snapshot(keys)
        return results

    def publish_snapshot(self, busy: Sequence[str] | None = None) -> None:
        """Hand the metrics the counts they serve (computed here, never at scrape time).

        ``busy``: the clusters that had work this pass (queried when not given).
        """
        if not self.metrics:
            return
        from lxr.metrics import StateSnapshot

        # every configured cluster gets its counters at 0 before its first submission
        for known in self.store.list_clusters():
            self.metrics.known_cluster(known.metadata.name)
        working = set(self.store.clusters_with_work() if busy is None else busy)
        now = time.time()
        # A cluster with nothing in flight is not observed, and need not be: its (empty) view
        # is current. Without this its snapshot age would grow on an idle controller until
        # LxrSchedulerSnapshotStale fires. A busy cluster whose observation fails keeps aging.
        for idle in self.metrics.clusters() - working:
            self.snapshot_times[idle] = now
        # Staging runs in launch processes, which add to per-cluster totals in the store; the
        # counter moves by what they added since this controller started (like any counter,
        # it starts at 0 with the process: bytes staged earlier are not counted again).
        totals = self.store.staged_bytes()
        if self._staged_seen is None:
            self._staged_seen = dict(totals)
        for name, total in sorted(totals.items()):
            delta = total - self._staged_seen.get(name, 0)
            if delta > 0:
                self.metrics.staged_bytes(name, delta)
            self._staged_seen[name] = total
        exps, wus = self.store.phase_counts()
        self.metrics.set_snapshot(
            StateSnapshot(
                experiments_by_phase=exps,
                work_units_by_cluster_phase=wus,
                snapshot_time_by_cluster=dict(self.snapshot_times),
            )
        )

    def _period(self, spec: ClusterSpec) -> float:
        """How often a busy cluster is observed: ``interval``, or ``local_interval`` for
        schedulers that ask to be polled faster than that (the local one)."""
        wanted = poll_interval(spec)
        return min(wanted, self.local_interval) if wanted < self.interval else self.interval

    def _sleep_for(self) -> float:
        keys = set(self.store.clusters_with_work())
        # each scheduler says how often it wants a look (its plugin's poll interval): the
        # controller sleeps as long as the least hurried busy cluster allows
        interval = max(
            (self._period(self.store.get_cluster(k).spec) for k in keys), default=self.interval
        )
        nxt = self.queue.next_due()
        if nxt is not None:
            interval = min(interval, max(0.05, nxt - time.time()))
        return interval

    async def run(self, until: Callable[[], bool] | None = None) -> None:
        """Cycle until cancelled (or until ``until()`` is true after a cycle)."""
        async with WakeupListener(self.socket_path, self.store.postgres_conninfo()) as wake:
            try:
                while True:
                    await self.run_once()
                    if until is not None and until():
                        return
                    await wake.wait(self._sleep_for() if self.leader else LEASE_TTL_SECONDS / 3)
            finally:
                with anyio.CancelScope(shield=True):
                    for driver, _ in self.drivers.values():
                        with contextlib.suppress(Exception):
                            await driver.close()
                if self.leader:
                    self.store.release_lease(self.holder)
                    if self.metrics:
                        self.metrics.set_leader(False)


def _dead_local_holder(holder: str) -> bool:
    """True when ``holder`` is a controller of this host whose process is gone."""
    host, _, rest = holder.partition(":")
    pid_s = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_s.isdigit():
        return False
    try:
        os.kill(int(pid_s), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid_s}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
