"""Staging a launch's artifacts: one :class:`~lxr.staging.Stager` per cluster (its transport
kept open for the launch), uploads counted in the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxr.staging import Blob, Stager, StagingReport
from lxr.store import Store

__all__ = ["ClusterStagers"]


class ClusterStagers:
    """The stagers of one launch, by cluster."""

    def __init__(self, store: Store, metrics: Any | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self._stagers: dict[str, Stager] = {}
        self.reports: list[StagingReport] = []

    def _stager(self, cluster: str) -> Stager:
        if cluster not in self._stagers:
            from lxr.schedulers.registry import default_staging_dir, make_transport

            spec = self.store.get_cluster(cluster).spec
            on_bytes = self.metrics.staged_bytes if self.metrics is not None else None
            self._stagers[cluster] = Stager(
                cluster, make_transport(spec), default_staging_dir(cluster, spec), on_bytes
            )
        return self._stagers[cluster]

    async def stage(self, needs: Mapping[str, Mapping[str, Blob]]) -> dict[str, StagingReport]:
        """Send each cluster the blobs it lacks: one existence check, then the uploads."""
        reports: dict[str, StagingReport] = {}
        for cluster, blobs in needs.items():
            reports[cluster] = await self._stager(cluster).stage(list(blobs.values()))
            # the controller exports these totals as lxr_staging_bytes_total: uploads happen
            # here, in the launch process, whether or not the experiment is then written
            self.store.add_staged_bytes(cluster, reports[cluster].bytes_uploaded)
        self.reports.extend(reports.values())
        return reports

    async def close(self) -> None:
        """Close every transport (best effort)."""
        stagers, self._stagers = self._stagers, {}
        for stager in stagers.values():
            try:
                await stager.transport.close()
            except Exception:
                pass
