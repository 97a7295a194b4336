"""Counters for metrics: bytes staged per cluster, objects per phase."""

from __future__ import annotations

import time

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from lxr.store.engine import StoreEngine
from lxr.store.errors import Conflict
from lxr.store.queries import CONFLICT_RETRIES, rowcount
from lxr.store.tables import ExperimentRow, StagingTotalRow, WorkUnitRow

__all__ = ["Counters"]


class Counters(StoreEngine):
    """Totals the controller exports to Prometheus."""

    def add_staged_bytes(self, cluster: str, n: int) -> None:
        """Count ``n`` bytes uploaded to ``cluster`` by staging (in whichever process staged)."""
        if n <= 0:
            return
        now = time.time()
        for _ in range(CONFLICT_RETRIES):
            try:
                with self.session() as s:
                    done = rowcount(
                        s.execute(
                            update(StagingTotalRow)
                            .where(StagingTotalRow.cluster == cluster)
                            .values(bytes_total=StagingTotalRow.bytes_total + n, updated_at=now)
                        )
                    )
                    if not done:
                        s.add(StagingTotalRow(cluster=cluster, bytes_total=n, updated_at=now))
                return
            except IntegrityError:  # another launch created the row first: add to it
                continue
        raise Conflict(f"staging total of cluster {cluster} kept changing; try again")

    def staged_bytes(self) -> dict[str, int]:
        """Bytes uploaded by staging so far, per cluster (over every launch, every process)."""
        with self.session() as s:
            return {
                c: int(n)
                for c, n in s.execute(select(StagingTotalRow.cluster, StagingTotalRow.bytes_total))
            }

    def phase_counts(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Experiments per phase, and work units per (cluster, phase): two GROUP BY queries."""
        with self.session() as s:
            exps = dict(
                s.execute(
                    select(ExperimentRow.phase, func.count()).group_by(ExperimentRow.phase)
                ).all()
            )
            # per experiment and phase from their index; a work unit runs on its
            # experiment's cluster (an immutable field)
            per = (
                select(WorkUnitRow.experiment_uid, WorkUnitRow.phase, func.count().label("n"))
                .group_by(WorkUnitRow.experiment_uid, WorkUnitRow.phase)
                .subquery()
            )
            wus: dict[tuple[str, str], int] = {}
            for c, p, n in s.execute(
                select(ExperimentRow.cluster, per.c.phase, per.c.n).join(
                    per, per.c.experiment_uid == ExperimentRow.uid
                )
            ):
                wus[c, p] = wus.get((c, p), 0) + int(n)
        return exps, wus
