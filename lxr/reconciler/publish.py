"""Counts for the metrics, computed after each reconcile pass (never at scrape time)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lxr.store import Store

if TYPE_CHECKING:
    from lxr.metrics import Metrics

__all__ = ["SnapshotPublisher"]


class SnapshotPublisher:
    """Hands :class:`~lxr.metrics.Metrics` the state it serves, pass after pass."""

    def __init__(self) -> None:
        # the store's staged-bytes totals when this controller first read them (see below)
        self._staged_seen: dict[str, int] | None = None

    def publish(
        self,
        metrics: Metrics,
        store: Store,
        snapshot_times: dict[str, float],
        busy: Sequence[str] | None = None,
    ) -> None:
        """Hand the metrics the counts they serve (computed here, never at scrape time).

        ``snapshot_times``: the time of each cluster's last observation (idle clusters are
        brought up to now: see below). ``busy``: the clusters that had work this pass
        (queried when not given).
        """
        from lxr.metrics import StateSnapshot

        # every configured cluster gets its counters at 0 before its first submission
        for configured in store.list_clusters():
            metrics.known_cluster(configured.metadata.name)
        with_work = set(store.clusters_with_work() if busy is None else busy)
        now = time.time()
        # A cluster with nothing in flight is not observed, and need not be: its (empty) view
        # is current. Without this its snapshot age would grow on an idle controller until
        # LxrSchedulerSnapshotStale fires. A busy cluster whose observation fails keeps aging.
        for idle in metrics.clusters() - with_work:
            snapshot_times[idle] = now
        # Staging runs in launch processes, which add to per-cluster totals in the store; the
        # counter moves by what they added since this controller started (like any counter,
        # it starts at 0 with the process: bytes staged earlier are not counted again).
        totals = store.staged_bytes()
        if self._staged_seen is None:
            self._staged_seen = dict(totals)
        for cluster, total in sorted(totals.items()):
            delta = total - self._staged_seen.get(cluster, 0)
            if delta > 0:
                metrics.staged_bytes(cluster, delta)
            self._staged_seen[cluster] = total
        exps, wus = store.phase_counts()
        metrics.set_snapshot(
            StateSnapshot(
                experiments_by_phase=exps,
                work_units_by_cluster_phase=wus,
                snapshot_time_by_cluster=dict(snapshot_times),
            )
        )
