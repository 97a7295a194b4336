"""The reconcile loop: observe -> plan -> act, per cluster, until every work unit converges.

One cycle per cluster reads the desired state, takes *one* snapshot of the scheduler, asks the
pure planner for actions and has the :class:`~lxr.reconciler.actor.Actor` carry them out.

Clusters are reconciled in parallel: each due cluster gets a worker of its own in the term's
task group, so a cluster whose SSH or accounting call hangs delays no other. A cluster is due
again one poll period (``interval``, ``local_interval`` for the local cluster) after its last
cycle, at once when woken (``lxr apply`` notifies), and after an error with a backoff that
starts at one second and never exceeds that poll period, so a cluster recovers within two poll
periods of its daemons coming back. A wake-up or a success resets the backoff.

Blocking I/O follows one rule: every store call goes through
:class:`~lxr.reconciler.storecalls.StoreCalls` (a worker thread, transient errors retried);
drivers are asynchronous; the planner is pure CPU and runs inline.

Only the lease holder acts, and only within its term (see :mod:`lxr.reconciler.lease`): writes
go through the store's fenced view, scheduler calls are preceded by a lease renewal, and a
term that ends mid-pass cancels its workers at once, discarding their plans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from lxr.api.resources import ClusterSpec
from lxr.reconciler.actor import CRASH_ENV, STOP_ENV, Actor, env_crash_hook
from lxr.reconciler.cycle import CycleResult, observe_query, run_cycle
from lxr.reconciler.handoff import RequestServer
from lxr.reconciler.informer import Informer
from lxr.reconciler.lease import LeaseKeeper
from lxr.reconciler.publish import SnapshotPublisher
from lxr.reconciler.reachability import Reachability, describe_error
from lxr.reconciler.sockets import (
    controller_socket_path,
    remove_dead_sockets,
    request_socket_path,
)
from lxr.reconciler.storecalls import StoreCalls, is_transient
from lxr.reconciler.wakeup import WakeupListener
from lxr.reconciler.workqueue import WorkQueue
from lxr.schedulers.base import Driver
from lxr.schedulers.registry import make_driver, poll_interval
from lxr.store import LeaseLost, Store

if TYPE_CHECKING:
    from lxr.metrics import Metrics

__all__ = [
    "CRASH_ENV",
    "DEFAULT_INTERVAL",
    "FIRST_LEASE_SECONDS",
    "STOP_ENV",
    "Actor",
    "Controller",
    "CycleResult",
    "RequestHandler",
    "controller_socket_path",
    "observe_query",
]

log = logging.getLogger("lxr.controller")
#: one line per cycle (cluster, counts, duration): shown with ``lxr -v``
cycle_log = logging.getLogger("lxr.cycles")

#: seconds between the cycles of a busy Slurm or Grid Engine cluster unless told otherwise
DEFAULT_INTERVAL = 2.0
#: how long a request waits for a just-started controller's first try at the lease
FIRST_LEASE_SECONDS = 10.0
#: a failing cluster's ReconcileError event is repeated at most this often (same message)
_EVENT_REPEAT_SECONDS = 60.0
#: a cluster's spec is read again at least this often (and after every wake-up)
_SPEC_RECHECK_SECONDS = 10.0

#: what a leading controller does for a request handed to it (``lxr apply``'s file), in a
#: worker thread with its store; ``"wake": True`` in the answer starts a pass at once
RequestHandler = Callable[[Store, dict[str, Any]], dict[str, Any]]


class Controller:
    """Runs reconcile cycles for every cluster with work, as the lease holder.

    ``standby_interval``: how often a controller that does not lead checks whether the lease
    lapsed (and ``until()``, for in-process waiters). ``lease_ttl``: the lease's lifetime
    without renewal (``LXR_LEASE_TTL`` or 15 s). ``requests``: serve requests on a socket
    beside the wake-up socket while leading (:mod:`lxr.reconciler.handoff`).
    """

    def __init__(
        self,
        store: Store,
        *,
        interval: float = DEFAULT_INTERVAL,
        local_interval: float = 0.5,
        metrics: Metrics | None = None,
        holder: str | None = None,
        crash_hook: Callable[[str], None] | None = None,
        lease_ttl: float | None = None,
        standby_interval: float | None = None,
        calls: StoreCalls | None = None,
        idle_exit: float | None = None,
        requests: RequestHandler | None = None,
    ) -> None:
        self.store = store
        self.requests = requests
        self.idle_exit = idle_exit
        self._busy_at = time.monotonic()  # when a cluster last had work (or we started)
        self._serving = 0  # requests being applied
        self._exiting = False  # idle: decided to exit
        #: set once :meth:`run` first tried to lead: a request that comes before it (to a
        #: controller just started by ``lxr apply``) waits for that, not answered "not leading"
        self._first_lease: anyio.Event | None = None
        self.interval = interval
        self.local_interval = local_interval
        self.metrics = metrics
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.crash_hook = crash_hook or env_crash_hook()
        self.queue = WorkQueue()
        self.reachability = Reachability(metrics)
        self.drivers: dict[str, tuple[Driver, ClusterSpec]] = {}
        #: each cluster's cache of desired state, kept for one term
        self.informers: dict[str, Informer] = {}
        #: when each cluster's spec was last read: (wake-ups seen then, monotonic time)
        self._spec_checked: dict[str, tuple[int, float]] = {}
        self.socket_path = controller_socket_path(
            store.url, f"{os.getpid()}.{secrets.token_hex(2)}"
        )
        self.calls = calls or StoreCalls()
        self.keeper = LeaseKeeper(store, self.holder, str(self.socket_path), self.calls, lease_ttl)
        self.standby_interval = standby_interval or self.keeper.ttl / 3
        self.cycles = 0
        #: False when the last pass of :meth:`run_once` (or a cycle of :meth:`run`) failed
        self.last_pass_ok = True
        self.snapshot_times: dict[str, float] = {}
        self._publisher = SnapshotPublisher()
        self._fstore: Store = store  # the fenced view of the current term
        self._running: set[str] = set()  # clusters with a worker in flight
        self._next: dict[str, float] = {}  # when each cluster is due again (wall clock)
        self._wake: WakeupListener | None = None
        self._wakeups = 0  # external wake-ups seen, so a cycle in flight knows it missed one
        self._last_error: dict[str, tuple[str, float]] = {}
        self._published = 0.0

    # ------------------------------------------------------------------ lease

    @property
    def leader(self) -> bool:
        """True while this controller holds the lease (as far as it knows)."""
        return self.keeper.leading

    async def acquire_lease(self) -> bool:
        """Lead: renew the current term, or start a new one if the lease is free, lapsed or
        held by a dead controller of this host (no TTL wait then)."""
        was = self.keeper.epoch is not None
        if was and self.keeper.valid_for() > 0:
            await self.keeper.renew()
        elif was:
            # stalled past the TTL between passes: whatever was planned before is void
            self.keeper.lost("not renewed in time")
        if self.keeper.epoch is None:
            await self.keeper.acquire()
            self.informers.clear()  # a new term starts from a full read of the store
        if self.keeper.epoch is not None:
            self._fstore = self.store.fenced(self.holder, self.keeper.epoch)
        if self.metrics:
            self.metrics.set_leader(self.keeper.epoch is not None)
        return self.keeper.epoch is not None

    def _lease_lost(self, cluster: str | None, exc: BaseException) -> None:
        where = f"cluster {cluster}: " if cluster else ""
        log.warning(
            "%slost the lease mid-pass (%s): stopped, its plan discarded, nothing more done",
            where,
            exc,
        )
        self.keeper.lost(str(exc))
        if self.metrics:
            self.metrics.set_leader(False)

    # ------------------------------------------------------------------ cycles

    async def driver_for(self, cluster: str) -> tuple[Driver, ClusterSpec]:
        """The cluster's driver, built and prepared on first use (rebuilt if its spec changed).
        The spec is read again after a wake-up (an apply) and at least every
        :data:`_SPEC_RECHECK_SECONDS`, not every cycle (a store round trip each)."""
        cached = self.drivers.get(cluster)
        checked = self._spec_checked.get(cluster)
        if (
            cached
            and checked
            and checked[0] == self._wakeups
            and time.monotonic() - checked[1] < _SPEC_RECHECK_SECONDS
        ):
            return cached
        spec = (await self.calls(self._fstore.get_cluster, cluster)).spec
        self._spec_checked[cluster] = (self._wakeups, time.monotonic())
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
        """One cycle for one cluster: observe once, plan, act (see :func:`run_cycle`)."""
        driver, spec = await self.driver_for(cluster)
        actor = Actor(
            self._fstore,
            driver,
            spec,
            self.metrics,
            self.crash_hook,
            calls=self.calls,
            guard=self.keeper.guard,
        )
        informer = self.informers.setdefault(cluster, Informer())
        return await run_cycle(actor, self.snapshot_times, informer)

    async def _cycle(self, cluster: str) -> CycleResult | None:
        """One cluster's cycle with its bookkeeping: backoff, events, metrics. None when it
        failed. Raises LeaseLost (the term is over) and cancellation only."""
        started = time.monotonic()
        wakeups = self._wakeups
        try:
            result = await self.reconcile(cluster)
        except LeaseLost:
            raise
        except Exception as exc:  # a cluster's error must not stop the others
            await self._cycle_failed(cluster, exc, started)
            return None
        result.seconds = time.monotonic() - started
        self.keeper.last_cycle = (time.time(), result.summary())
        cycle_log.info("%s", result.summary())
        self.queue.succeeded(cluster)
        self._last_error.pop(cluster, None)
        try:  # Reachable=True (written, with an event, only when it was not already)
            await self.calls(self.reachability.succeeded, self._fstore, cluster)
        except LeaseLost:
            raise
        except Exception as exc:
            log.warning("could not record that cluster %s is reachable: %s", cluster, exc)
        # woken while this cycle ran: the change it was woken for may not be in it
        self._next[cluster] = (
            0.0 if wakeups != self._wakeups else time.time() + self._period(cluster)
        )
        if self.metrics:
            self.metrics.observe_reconcile("success", time.monotonic() - started)
        return result

    async def _cycle_failed(self, cluster: str, exc: Exception, started: float) -> None:
        delay = self.queue.failed(cluster, time.time(), cap=self._period(cluster))
        message = describe_error(exc)[:2000]  # exception groups unwrapped: the cause, named
        last = self._last_error.get(cluster)
        now = time.monotonic()
        # the backoff never exceeds a poll period, so an outage would repeat the same warning
        # and event every few seconds: say it when it starts or changes, then once a minute
        repeat = last is not None and last[0] == message and now - last[1] < _EVENT_REPEAT_SECONDS
        log.log(
            logging.DEBUG if repeat else logging.WARNING,
            "reconcile of cluster %s failed (retry in %.0fs): %s",
            cluster,
            delay,
            message,
        )
        log.debug("reconcile error", exc_info=True)
        # a connection failure is the cluster's Reachable=False condition (one event when it
        # changes); anything else a ReconcileError event, when it starts or changes
        unreachable = self.reachability.connect_failure(cluster, exc)
        if not repeat:
            self._last_error[cluster] = (message, now)
        try:  # the store may be what failed: the handler itself must not fail the loop
            if unreachable is not None:
                await self.calls(self.reachability.failed, self._fstore, cluster, unreachable)
            elif not repeat:
                await self.calls(
                    self._fstore.add_events,
                    [("Warning", "ReconcileError", message, "Cluster", cluster)],
                    cluster=cluster,
                )
        except LeaseLost:
            raise
        except Exception as inner:
            log.warning("could not record the error of cluster %s: %s", cluster, inner)
        if self.metrics:
            self.metrics.reconcile_error()
            self.metrics.workqueue_retry()
            self.metrics.observe_reconcile("error", time.monotonic() - started)

    def _period(self, cluster: str) -> float:
        """How often a busy cluster is observed: ``interval``, or ``local_interval`` for
        schedulers cheap to poll, those whose plugin asks for less than the default interval
        (the local one). A Slurm or Grid Engine cluster asks for that default itself, so a
        longer ``--interval`` is what it gets, not the local cluster's period."""
        cached = self.drivers.get(cluster)
        if cached is None:
            return self.interval
        wanted = poll_interval(cached[1])
        if wanted < min(self.interval, DEFAULT_INTERVAL):
            return min(wanted, self.local_interval)
        return self.interval

    async def run_once(self) -> list[CycleResult]:
        """One pass over every cluster that is due, in parallel; errors back the cluster off.
        ``last_pass_ok`` tells whether every cycle of it succeeded."""
        self.last_pass_ok = True
        try:
            if not await self.acquire_lease():
                return []
            now = time.time()
            keys = await self.calls(self._fstore.clusters_with_work)
        except LeaseLost as exc:
            self._lease_lost(None, exc)
            return []
        except Exception as exc:
            self.last_pass_ok = False
            if not is_transient(exc):
                raise
            log.warning("pass skipped, the store is unavailable: %s", exc)
            return []
        due = self.queue.due(keys, now)
        if self.metrics:
            self.metrics.set_workqueue_depth(self.queue.depth(keys, now))
        results: list[CycleResult] = []

        async with anyio.create_task_group() as term:

            async def one(cluster: str) -> None:
                try:
                    res = await self._cycle(cluster)
                except LeaseLost as exc:
                    self._lease_lost(cluster, exc)
                    term.cancel_scope.cancel()
                    return
                if res is None:
                    self.last_pass_ok = False
                else:
                    results.append(res)

            term.start_soon(self.keeper.keep, term.cancel_scope)
            async with anyio.create_task_group() as workers:
                for cluster in due:
                    workers.start_soon(one, cluster)
            term.cancel_scope.cancel()  # the pass is over: stop renewing on a timer
        if self.keeper.epoch is None:  # the term ended mid-pass
            self.last_pass_ok = False
            return results
        self.cycles += 1
        try:
            await self.calls(self.publish_snapshot, keys)
        except Exception as exc:  # metrics must not fail a pass
            log.warning("metrics snapshot failed: %s", exc)
        return sorted(results, key=lambda r: due.index(r.cluster))

    def publish_snapshot(self, busy: Sequence[str] | None = None) -> None:
        """Hand the metrics the counts they serve (computed here, never at scrape time).

        ``busy``: the clusters that had work this pass (queried when not given).
        """
        if self.metrics:
            self._publisher.publish(self.metrics, self.store, self.snapshot_times, busy)

    # ------------------------------------------------------------------ the loop

    async def run(self, until: Callable[[], bool] | None = None) -> None:
        """Reconcile until cancelled (or until ``until()`` is true). Leads when it can: a
        standby (or an in-process waiter) takes the lease over once its holder stopped
        renewing it, never before. Never exits on a store or cluster error."""
        remove_dead_sockets(self.socket_path)
        self._first_lease = anyio.Event()
        async with contextlib.AsyncExitStack() as stack:
            wake = WakeupListener(self.socket_path, self.store.postgres_conninfo())
            self._wake = await stack.enter_async_context(wake)
            if self.requests is not None:
                path = request_socket_path(self.socket_path)
                await stack.enter_async_context(RequestServer(path, self._request))
            try:
                while True:
                    try:
                        leading = await self.acquire_lease()
                    except Exception as exc:  # never exit on a store error
                        log.warning("cannot take or renew the lease (retrying): %s", exc)
                        leading = False
                    self._first_lease.set()
                    if leading and await self._term(until):
                        return
                    if not leading:
                        if self._until(until) or self._idle():
                            return
                        if await wake.wait(self.standby_interval):
                            self._woken()
            finally:
                with anyio.CancelScope(shield=True):
                    await self.close()

    async def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Serve a request handed over the request socket, while leading (a standby's
        work would wait for the leader's next resync): then its desired state is
        planned at once. A request that comes while the controller first tries to lead
        waits for that (at most :data:`FIRST_LEASE_SECONDS`)."""
        if self._first_lease is not None and not self._first_lease.is_set():
            with anyio.move_on_after(FIRST_LEASE_SECONDS):
                await self._first_lease.wait()
        if self.requests is None or not self.leader or self.keeper.valid_for() <= 0:
            return {"fallback": "this controller does not lead"}
        if self._exiting:  # it would write what no one then reconciles
            return {"fallback": "this controller is exiting"}
        # an idle controller must not exit while it applies: the command would get no
        # answer and apply the file again itself
        self._busy_at = time.monotonic()
        self._serving += 1
        try:
            answer = await anyio.to_thread.run_sync(self.requests, self.store, request)
        finally:
            self._serving -= 1
            self._busy_at = time.monotonic()
        if answer.pop("wake", False) and self._wake is not None:
            self._wake.wake()
        return answer

    async def close(self) -> None:
        """Close the drivers and give the lease up (best effort, bounded)."""
        for driver, _ in self.drivers.values():
            with contextlib.suppress(Exception):
                await driver.close()
        with anyio.move_on_after(5), contextlib.suppress(Exception):
            await self.keeper.release()
        if self.metrics:
            self.metrics.set_leader(False)

    def _until(self, until: Callable[[], bool] | None) -> bool:
        if until is None:
            return False
        try:
            return until()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("cannot check progress, the store is unavailable: %s", exc)
            return False

    def _idle(self) -> bool:
        """True once no cluster had work for ``idle_exit`` seconds (never without it)."""
        if self.idle_exit is None or self._running or self._serving:
            return False
        if time.monotonic() - self._busy_at < self.idle_exit:
            return False
        log.info("nothing to do for %.0fs: exiting", self.idle_exit)
        self._exiting = True  # requests from now on are handed back
        return True

    def _woken(self) -> None:
        """Someone changed desired state: every cluster is due now, backoffs forgotten."""
        self._busy_at = time.monotonic()  # an idle controller must not exit as work arrives
        self._wakeups += 1
        self._next.clear()
        self.queue.reset()

    async def _term(self, until: Callable[[], bool] | None) -> bool:
        """Lead until the lease is lost (False) or ``until()`` holds (True)."""
        assert self._wake is not None
        done = False
        self._next.clear()
        async with anyio.create_task_group() as term:
            term.start_soon(self.keeper.keep, term.cancel_scope)
            while True:
                try:
                    await self._start_due(term)
                except LeaseLost as exc:
                    self._lease_lost(None, exc)
                    term.cancel_scope.cancel()
                    break
                except Exception as exc:  # never exit on a store error
                    log.warning("pass failed (retrying): %s", exc)
                    log.debug("pass error", exc_info=True)
                    self.last_pass_ok = False
                    await anyio.sleep(min(self.interval, 5.0))
                    continue
                if self._until(until) or self._idle():
                    done = True
                    term.cancel_scope.cancel()
                    break
                if await self._wake.wait(self._sleep_for()):
                    self._woken()
        if not done:
            self._running.clear()
        return done

    async def _start_due(self, term: TaskGroup) -> None:
        """Start a worker for every due cluster that has none in flight."""
        now = time.time()
        keys = await self.calls(self._fstore.clusters_with_work)
        if keys or self._running:
            self._busy_at = time.monotonic()
        if self.metrics:
            self.metrics.set_workqueue_depth(self.queue.depth(keys, now))
        for cluster in self.queue.due(keys, now):
            if cluster in self._running or self._next.get(cluster, 0.0) > now:
                continue
            self._running.add(cluster)
            term.start_soon(self._worker, cluster, term)
        self.cycles += 1
        if self.metrics and time.monotonic() - self._published >= self.interval:
            self._published = time.monotonic()
            try:
                await self.calls(self.publish_snapshot, keys)
            except Exception as exc:  # metrics must not fail the loop
                log.warning("metrics snapshot failed: %s", exc)

    async def _worker(self, cluster: str, term: TaskGroup) -> None:
        try:
            result = await self._cycle(cluster)
            self.last_pass_ok = result is not None
        except LeaseLost as exc:
            self._lease_lost(cluster, exc)
            term.cancel_scope.cancel()
        finally:
            self._running.discard(cluster)
            if self._wake is not None:
                self._wake.poke()  # the loop re-checks what is due (and until())

    def _sleep_for(self) -> float:
        """Until the next cluster is due (a worker finishing or a wake-up comes sooner)."""
        now = time.time()
        times = [t for c, t in self._next.items() if c not in self._running]
        nxt = self.queue.next_due()
        if nxt is not None:
            times.append(nxt)
        if not times:
            return self.interval
        return min(self.interval, max(0.05, min(times) - now))
