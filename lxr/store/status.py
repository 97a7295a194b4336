"""The experiment-status writes of a controller cycle: the status the plan derived
(:class:`~lxr.reconciler.actions.SetStatus`), and the deletion finalizer
(:class:`~lxr.reconciler.actions.Finalize`) that removes a deleted experiment whose tasks all
stopped. The store decides nothing here: it writes what the plan says.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import update

from lxr.store.codecs import event_row
from lxr.store.engine import StoreEngine
from lxr.store.queries import delete_experiment_rows
from lxr.store.tables import ExperimentRow

__all__ = ["ExperimentStatusWrites"]


class ExperimentStatusWrites(StoreEngine):
    """Status writes and the finalizer, each one transaction."""

    def write_status(self, status: Any, cluster: str) -> int | None:
        """Persist a :class:`~lxr.reconciler.actions.SetStatus` (and its event). Returns the
        experiment's new resourceVersion (None when it is gone)."""
        with self.session() as s:
            version = s.scalar(
                update(ExperimentRow)
                .where(ExperimentRow.uid == status.experiment_uid)
                .values(
                    phase=status.phase,
                    counts=status.counts,
                    conditions=list(status.conditions),
                    failed_indexes=list(status.failed_indexes),
                    observed_generation=status.observed_generation,
                    start_time=status.start_time,
                    completion_time=status.completion_time,
                    resource_version=ExperimentRow.resource_version + 1,
                )
                .returning(ExperimentRow.resource_version)
            )
            ev = status.event
            if ev is not None and version is not None:
                s.add(
                    event_row(
                        time.time(),
                        ev.type,
                        ev.reason,
                        ev.message,
                        ev.kind,
                        ev.name,
                        status.experiment_uid,
                        cluster,
                    )
                )
            return version

    def write_artifact_status(self, plan: Any, cluster: str) -> None:
        """Persist an :class:`~lxr.reconciler.artifacts.ArtifactPlan`: ``status.artifacts``,
        the conditions with ``ArtifactsReady``, and its event."""
        with self.session() as s:
            found = s.execute(
                update(ExperimentRow)
                .where(ExperimentRow.uid == plan.experiment_uid)
                .values(
                    artifacts=list(plan.artifacts),
                    conditions=list(plan.conditions),
                    resource_version=ExperimentRow.resource_version + 1,
                )
            )
            ev = plan.event
            if ev is not None and found.rowcount:  # type: ignore[attr-defined]
                s.add(
                    event_row(
                        time.time(),
                        ev.type,
                        ev.reason,
                        ev.message,
                        ev.kind,
                        ev.name,
                        plan.experiment_uid,
                        cluster,
                    )
                )

    def finalize(self, final: Any) -> None:
        """Remove a deleted experiment with its work units, attempts and submissions (a
        :class:`~lxr.reconciler.actions.Finalize`)."""
        uid = final.experiment_uid
        with self.session() as s:
            s.add(
                event_row(
                    time.time(),
                    "Normal",
                    "Deleted",
                    "all tasks stopped; experiment removed",
                    "Experiment",
                    final.name,
                    None,
                    final.cluster,
                )
            )
            delete_experiment_rows(s, uid)
