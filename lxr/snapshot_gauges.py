"""The scrape-time gauges: the controller's latest :class:`StateSnapshot` and the collector
that turns it into ``lxr_experiments``, ``lxr_work_units`` and
``lxr_scheduler_snapshot_age_seconds`` when Prometheus scrapes (see :mod:`lxr.metrics`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from lxr.metrics import Metrics

__all__ = ["SnapshotCollector", "StateSnapshot"]


@dataclass(frozen=True)
class StateSnapshot:
    """What the controller last observed; the source of the scrape-time gauges.

    Attributes:
        experiments_by_phase: number of experiments per phase (``"Running" -> 3``).
        work_units_by_cluster_phase: number of work units per ``(cluster, phase)``.
        snapshot_time_by_cluster: unix time (``time.time()``) of the last *successful*
            scheduler observation of each cluster.

    Phases that are absent count as 0.  :meth:`Metrics.set_snapshot` copies the mappings,
    so mutating them afterwards does not change what is exported.
    """

    experiments_by_phase: Mapping[str, int] = field(default_factory=dict)
    work_units_by_cluster_phase: Mapping[tuple[str, str], int] = field(default_factory=dict)
    snapshot_time_by_cluster: Mapping[str, float] = field(default_factory=dict)


class SnapshotCollector:
    """Custom collector producing the snapshot gauges at scrape time.

    It only reads the immutable state that :meth:`Metrics.set_snapshot` swapped in, so a
    scrape costs O(clusters x phases) and never blocks on the controller.
    """

    def __init__(
        self,
        metrics: Metrics,
        experiment_phases: tuple[str, ...],
        work_unit_phases: tuple[str, ...],
    ) -> None:
        self._metrics = metrics
        self._experiment_phases = experiment_phases
        self._work_unit_phases = work_unit_phases

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "lxr_experiments",
                "Number of experiments per phase, from the controller's latest snapshot.",
                labels=["phase"],
            ),
            GaugeMetricFamily(
                "lxr_work_units",
                "Number of work units per cluster and phase, from the latest snapshot.",
                labels=["cluster", "phase"],
            ),
            GaugeMetricFamily(
                "lxr_scheduler_snapshot_age_seconds",
                "Seconds since the last successful scheduler observation of the cluster "
                "(since controller start if there was none yet).",
                labels=["cluster"],
            ),
        )

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """Return the (sample-less) families, so the registry can detect name clashes."""
        return self._families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Build the gauges from the latest snapshot."""
        m = self._metrics
        snapshot = m._snapshot  # one read: set_snapshot swaps the reference atomically
        clusters = m.clusters()
        now = m._clock()
        experiments, work_units, age = self._families()

        if snapshot is not None:
            for phase in _phases(self._experiment_phases, snapshot.experiments_by_phase):
                experiments.add_metric([phase], snapshot.experiments_by_phase.get(phase, 0))
            by_cluster: dict[str, dict[str, int]] = {c: {} for c in clusters}
            for (cluster, phase), count in snapshot.work_units_by_cluster_phase.items():
                by_cluster.setdefault(cluster, {})[phase] = count
            for cluster in sorted(by_cluster):
                counts = by_cluster[cluster]
                for phase in _phases(self._work_unit_phases, counts):
                    work_units.add_metric([cluster, phase], counts.get(phase, 0))
            times = snapshot.snapshot_time_by_cluster
        else:
            # No snapshot yet (or this process is not the leader): the domain gauges are
            # unknown, so they are left absent rather than reported as a misleading 0.
            times = {}

        for cluster in sorted(set(clusters) | set(times)):
            since = times.get(cluster, m._started)
            age.add_metric([cluster], max(0.0, now - since))
        return [experiments, work_units, age]


def _phases(known: tuple[str, ...], present: Mapping[str, object]) -> list[str]:
    """Known phases in their canonical order, then any unexpected ones, sorted."""
    return [*known, *sorted(p for p in present if p not in known)]
