"""Prometheus metrics for the lxr controller.

Conventions (see the observability issue):

* every name starts with ``lxr_`` and uses base units (seconds, bytes);
* counters end in ``_total`` and are pre-initialised to 0 for every known label value, so
  ``rate()``/``increase()`` see the first event instead of a series appearing out of nowhere;
* there are **no** per-experiment or per-job-id labels: label values come from small closed
  sets (see the ``*_PHASES``/``*_RESULTS``/... constants) plus the cluster and scheduler-command
  names, which are bounded by configuration;
* the domain gauges (``lxr_experiments``, ``lxr_work_units``,
  ``lxr_scheduler_snapshot_age_seconds``) are computed at scrape time from the latest
  :class:`StateSnapshot` handed over by the controller.  A scrape never queries a scheduler
  or walks database rows.

Every :class:`Metrics` owns its own :class:`prometheus_client.CollectorRegistry` (never the
process-global one), so tests can create as many as they like.

This module imports only the phase vocabulary and :mod:`lxr.snapshot_gauges` from :mod:`lxr`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from lxr.api.phases import ExperimentPhase, WorkUnitPhase
from lxr.schedulers.transport import CONNECT_REASONS
from lxr.snapshot_gauges import SnapshotCollector, StateSnapshot

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = [
    "CONNECT_ERROR_REASONS",
    "DEFAULT_METRICS_HOST",
    "DEFAULT_METRICS_PORT",
    "EXPERIMENT_PHASES",
    "FAILURE_ACTIONS",
    "RECONCILE_RESULTS",
    "RESUBMISSION_REASONS",
    "SUBMISSION_RESULTS",
    "WORK_UNIT_PHASES",
    "Metrics",
    "StateSnapshot",
    "parse_metrics_addr",
    "serve",
]

DEFAULT_METRICS_HOST = "127.0.0.1"
"""Default listen address: loopback only, the endpoint is unauthenticated."""

DEFAULT_METRICS_PORT = 9464
"""Default listen port of the metrics endpoint (``--metrics-addr 127.0.0.1:9464``)."""

RECONCILE_RESULTS: tuple[str, ...] = ("success", "error", "requeue")
"""Values of the ``result`` label of ``lxr_reconcile_total``."""

EXPERIMENT_PHASES: tuple[str, ...] = tuple(p.value for p in ExperimentPhase)
"""Values of the ``phase`` label of ``lxr_experiments``."""

WORK_UNIT_PHASES: tuple[str, ...] = tuple(p.value for p in WorkUnitPhase)
"""Values of the ``phase`` label of ``lxr_work_units``."""

SUBMISSION_RESULTS: tuple[str, ...] = ("success", "error")
"""Values of the ``result`` label of ``lxr_submissions_total``."""

CONNECT_ERROR_REASONS: tuple[str, ...] = CONNECT_REASONS
"""Values of the ``reason`` label of ``lxr_cluster_connect_errors_total`` (the reasons of
``lxr.schedulers.transport.ConnectError``, also the ``Reachable`` condition's)."""

RESUBMISSION_REASONS: tuple[str, ...] = (
    "Preempted",
    "NodeFail",
    "BootFail",
    "Failed",
    "OutOfMemory",
    "Timeout",
    "Lost",
    "Rescheduled",
)
"""Values of the ``reason`` label of ``lxr_resubmissions_total``."""

FAILURE_ACTIONS: tuple[str, ...] = ("Ignore", "Count", "FailIndex", "FailJob")
"""Values of the ``action`` label of ``lxr_task_failures_handled_total``."""

# Reconciles are mostly DB work plus, sometimes, one scheduler round trip.
_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Scheduler commands (sbatch, squeue, sacct, qsub, qstat, ...) may go through SSH and a busy
# slurmctld/qmaster: allow for multi-second latencies.
_COMMAND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _label(value: object, allowed: Iterable[str] | None, what: str) -> str:
    """Return ``value`` as a label string, rejecting values outside ``allowed``.

    Enum members are accepted and exported by their ``value``, so callers can pass the
    domain enums directly.
    """
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if allowed is not None and value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def _non_negative(value: float, what: str) -> float:
    value = float(value)
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{what} must be >= 0, got {value!r}")
    return value


class Metrics:
    """The controller's metrics, registered on a private registry.

    Args:
        registry: registry to register on; a fresh ``CollectorRegistry`` by default.
        clock: returns unix time; used for ``lxr_scheduler_snapshot_age_seconds``
            (injectable for tests).

    Label values are checked against the closed sets in this module (``ValueError``
    otherwise) to keep cardinality bounded; enum members are accepted and exported by
    their ``value``.  All methods are thread-safe.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._clusters: frozenset[str] = frozenset()
        self._snapshot: StateSnapshot | None = None
        r = self.registry

        # controller
        self._reconcile = Counter(
            "lxr_reconcile_total",
            "Reconciles finished, by result (success, error, requeue).",
            ["result"],
            registry=r,
        )
        self._reconcile_errors = Counter(
            "lxr_reconcile_errors_total",
            "Errors raised while reconciling (a reconcile that hits an error may still end "
            "as requeue).",
            registry=r,
        )
        self._reconcile_duration = Histogram(
            "lxr_reconcile_duration_seconds",
            "Wall-clock duration of one reconcile.",
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self._workqueue_depth = Gauge(
            "lxr_workqueue_depth", "Items waiting in the controller's work queue.", registry=r
        )
        self._workqueue_retries = Counter(
            "lxr_workqueue_retries_total",
            "Items re-added to the work queue with back-off.",
            registry=r,
        )
        self._leader = Gauge(
            "lxr_leader", "1 when this process holds the leader lease, else 0.", registry=r
        )

        # domain
        self._submissions = Counter(
            "lxr_submissions_total",
            "Job submissions to a scheduler, by cluster and result.",
            ["cluster", "result"],
            registry=r,
        )
        self._resubmissions = Counter(
            "lxr_resubmissions_total",
            "Work units resubmitted after a failure, by cluster and reason.",
            ["cluster", "reason"],
            registry=r,
        )
        self._failures_handled = Counter(
            "lxr_task_failures_handled_total",
            "Task failures handled by the failure policy, by cluster and action.",
            ["cluster", "action"],
            registry=r,
        )

        # I/O
        self._command_duration = Histogram(
            "lxr_scheduler_command_duration_seconds",
            "Duration of scheduler commands (sbatch, squeue, qsub, ...), by cluster and command.",
            ["cluster", "command"],
            buckets=_COMMAND_BUCKETS,
            registry=r,
        )
        self._command_errors = Counter(
            "lxr_scheduler_command_errors_total",
            "Scheduler commands that failed, by cluster and command.",
            ["cluster", "command"],
            registry=r,
        )
        self._connect_errors = Counter(
            "lxr_cluster_connect_errors_total",
            "Failed connections to a cluster's login node, by cluster and reason "
            "(ConnectionRefused, HostKeyMismatch, PermissionDenied, ...).",
            ["cluster", "reason"],
            registry=r,
        )
        self._staging_bytes = Counter(
            "lxr_staging_bytes_total",
            "Bytes staged (copied) to a cluster.",
            ["cluster"],
            registry=r,
        )

        for result in RECONCILE_RESULTS:
            self._reconcile.labels(result)
        self._leader.set(0)
        self._workqueue_depth.set(0)
        r.register(SnapshotCollector(self, EXPERIMENT_PHASES, WORK_UNIT_PHASES))

    # -- clusters ---------------------------------------------------------------------------

    def known_cluster(self, cluster: str) -> None:
        """Declare a cluster: its counters are created at 0 for every known label value.

        Idempotent.  Call it for each configured cluster at start-up; the per-cluster
        methods also call it on first use.
        """
        cluster = _label(cluster, None, "cluster")
        if cluster in self._clusters:
            return
        with self._lock:
            if cluster in self._clusters:
                return
            for result in SUBMISSION_RESULTS:
                self._submissions.labels(cluster, result)
            for reason in RESUBMISSION_REASONS:
                self._resubmissions.labels(cluster, reason)
            for action in FAILURE_ACTIONS:
                self._failures_handled.labels(cluster, action)
            self._staging_bytes.labels(cluster)
            for reason in CONNECT_ERROR_REASONS:
                self._connect_errors.labels(cluster, reason)
            self._clusters = self._clusters | {cluster}

    def clusters(self) -> frozenset[str]:
        """The clusters declared so far (explicitly or by first use)."""
        return self._clusters

    # -- controller -------------------------------------------------------------------------

    def observe_reconcile(self, result: str, seconds: float) -> None:
        """Record one finished reconcile: its ``result`` and its duration in seconds."""
        result = _label(result, RECONCILE_RESULTS, "reconcile result")
        seconds = _non_negative(seconds, "seconds")
        self._reconcile.labels(result).inc()
        self._reconcile_duration.observe(seconds)

    def reconcile_error(self) -> None:
        """Count one error raised while reconciling."""
        self._reconcile_errors.inc()

    def workqueue_retry(self) -> None:
        """Count one item re-queued with back-off."""
        self._workqueue_retries.inc()

    def set_workqueue_depth(self, n: int) -> None:
        """Set the current number of items waiting in the work queue."""
        self._workqueue_depth.set(_non_negative(n, "workqueue depth"))

    def set_leader(self, leader: bool) -> None:
        """Set whether this process currently leads.

        Losing leadership also drops the snapshot: a standby's view goes stale and would
        otherwise be double counted by ``sum()`` in dashboards.  Processes that run without
        leader election should call ``set_leader(True)`` once at start-up.
        """
        self._leader.set(1 if leader else 0)
        if not leader:
            self.clear_snapshot()

    # -- domain -----------------------------------------------------------------------------

    def submission(self, cluster: str, result: str) -> None:
        """Count one job submission to ``cluster`` (``result``: success or error)."""
        self.known_cluster(cluster)
        result = _label(result, SUBMISSION_RESULTS, "submission result")
        self._submissions.labels(_label(cluster, None, "cluster"), result).inc()

    def resubmission(self, cluster: str, reason: str) -> None:
        """Count one work unit resubmitted on ``cluster`` because of ``reason``."""
        self.known_cluster(cluster)
        reason = _label(reason, RESUBMISSION_REASONS, "resubmission reason")
        self._resubmissions.labels(_label(cluster, None, "cluster"), reason).inc()

    def cluster_connect_error(self, cluster: str, reason: str) -> None:
        """Count one failed connection to ``cluster`` (``reason``: see CONNECT_ERROR_REASONS)."""
        self.known_cluster(cluster)
        reason = _label(reason, CONNECT_ERROR_REASONS, "connect error reason")
        self._connect_errors.labels(_label(cluster, None, "cluster"), reason).inc()

    def failure_handled(self, cluster: str, action: str) -> None:
        """Count one task failure on ``cluster`` handled by the policy with ``action``."""
        self.known_cluster(cluster)
        action = _label(action, FAILURE_ACTIONS, "failure action")
        self._failures_handled.labels(_label(cluster, None, "cluster"), action).inc()

    def set_snapshot(self, snapshot: StateSnapshot) -> None:
        """Publish the controller's latest state; the next scrape reads it.

        The mappings are copied, so the caller may keep mutating its own.
        """
        frozen = StateSnapshot(
            experiments_by_phase={
                _label(p, None, "phase"): int(n) for p, n in snapshot.experiments_by_phase.items()
            },
            work_units_by_cluster_phase={
                (_label(c, None, "cluster"), _label(p, None, "phase")): int(n)
                for (c, p), n in snapshot.work_units_by_cluster_phase.items()
            },
            snapshot_time_by_cluster={
                _label(c, None, "cluster"): float(t)
                for c, t in snapshot.snapshot_time_by_cluster.items()
            },
        )
        for cluster in {c for c, _ in frozen.work_units_by_cluster_phase}:
            self.known_cluster(cluster)
        for cluster in frozen.snapshot_time_by_cluster:
            self.known_cluster(cluster)
        self._snapshot = frozen

    def clear_snapshot(self) -> None:
        """Forget the snapshot: the experiment and work-unit gauges become absent."""
        self._snapshot = None

    # -- I/O --------------------------------------------------------------------------------

    def scheduler_command(self, cluster: str, command: str, seconds: float, ok: bool) -> None:
        """Record one scheduler command (e.g. ``sbatch``) run against ``cluster``.

        ``command`` is the program name, never its arguments.  The error counter of the
        ``(cluster, command)`` pair is created at 0 on first use.
        """
        self.known_cluster(cluster)
        cluster = _label(cluster, None, "cluster")
        command = _label(command, None, "command")
        seconds = _non_negative(seconds, "seconds")
        self._command_duration.labels(cluster, command).observe(seconds)
        errors = self._command_errors.labels(cluster, command)
        if not ok:
            errors.inc()

    @contextmanager
    def time_scheduler_command(self, cluster: str, command: str) -> Iterator[None]:
        """Context manager timing a scheduler command; an exception counts as an error.

        Works around ``await`` too::

            with metrics.time_scheduler_command("hpc1", "sbatch"):
                await run(...)
        """
        start = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.scheduler_command(cluster, command, time.perf_counter() - start, ok)

    def staged_bytes(self, cluster: str, n: int) -> None:
        """Count ``n`` bytes staged to ``cluster``."""
        self.known_cluster(cluster)
        self._staging_bytes.labels(_label(cluster, None, "cluster")).inc(
            _non_negative(n, "staged bytes")
        )


def parse_metrics_addr(addr: str) -> tuple[str, int]:
    """Parse a ``--metrics-addr`` value: ``host:port``, ``[v6]:port`` or ``:port``.

    An empty host means :data:`DEFAULT_METRICS_HOST` (loopback), not all interfaces.
    """
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"metrics address must be HOST:PORT, got {addr!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"metrics port out of range: {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 metrics address must be bracketed, got {addr!r}")
    return host or DEFAULT_METRICS_HOST, port


def serve(
    metrics: Metrics, host: str = DEFAULT_METRICS_HOST, port: int = DEFAULT_METRICS_PORT
) -> WSGIServer:
    """Serve ``metrics`` on ``http://host:port/metrics`` from a daemon thread.

    Returns the server; stop it with ``server.shutdown(); server.server_close()``.
    ``port=0`` picks a free port (read it back from ``server.server_address[1]``).
    """
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
