"""Clusters beyond their spec: the controller's conditions (``Reachable``), deleting a cluster,
and removing an experiment here when its cluster cannot be reached to cancel its tasks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, select

from lxr.api.resources import ClusterStatus, Condition, ConditionStatus
from lxr.store.codecs import event_row
from lxr.store.engine import StoreEngine
from lxr.store.errors import Invalid, NotFound
from lxr.store.events import EventInfo
from lxr.store.queries import cluster_names, delete_experiment_rows, experiment_row
from lxr.store.tables import (
    AttemptRow,
    ClusterRow,
    ClusterStatusRow,
    EventRow,
    ExperimentRow,
    SubmissionRow,
    WorkUnitRow,
)

__all__ = ["ClusterStatusWrites", "ForgottenExperiment"]


@dataclass(frozen=True)
class ForgottenExperiment:
    """What :meth:`ClusterStatusWrites.forget_experiment` removed that may still run."""

    cluster: str
    job_ids: tuple[str, ...]  # jobs with tasks not known to have ended
    unconfirmed: tuple[str, ...]  # tags of submissions whose job id was never recorded


class ClusterStatusWrites(StoreEngine):
    """Cluster conditions in and out; deleting clusters."""

    def cluster_status(self, name: str) -> ClusterStatus:
        """The conditions last written for cluster ``name`` (none yet: empty)."""
        with self.session() as s:
            row = s.get(ClusterStatusRow, name)
            return _status(row)

    def cluster_statuses(self) -> dict[str, ClusterStatus]:
        """Every cluster's status, by name."""
        with self.session() as s:
            return {r.cluster: _status(r) for r in s.scalars(select(ClusterStatusRow))}

    def set_cluster_condition(
        self,
        cluster: str,
        type_: str,
        status: ConditionStatus,
        reason: str = "",
        message: str = "",
        now: float | None = None,
    ) -> bool:
        """Write condition ``type_`` of ``cluster``. ``lastTransitionTime`` moves only when
        ``status`` does. Returns True when status or reason changed (worth an event)."""
        now = time.time() if now is None else now
        with self.session() as s:
            row = s.get(ClusterStatusRow, cluster)
            if row is None:
                row = ClusterStatusRow(cluster=cluster, conditions=[], updated_at=now)
                s.add(row)
            conditions = [Condition.model_validate(c) for c in row.conditions or []]
            old = next((c for c in conditions if c.type == type_), None)
            if old is not None and (old.status, old.reason, old.message) == (
                status,
                reason,
                message,
            ):
                return False
            changed = old is None or old.status != status or old.reason != reason
            since = (
                old.last_transition_time
                if old is not None and old.status == status
                else datetime.fromtimestamp(now, tz=timezone.utc)
            )
            new = Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=since,
            )
            others = [c for c in conditions if c.type != type_]
            row.conditions = [
                c.model_dump(mode="json", by_alias=True)
                for c in sorted([*others, new], key=lambda c: c.type)
            ]
            row.updated_at = now
            return changed

    def cluster_events(self, name: str, limit: int = 25) -> list[EventInfo]:
        """The newest ``limit`` events about cluster ``name``, oldest first."""
        with self.session() as s:
            rows = s.scalars(
                select(EventRow)
                .where(EventRow.kind == "Cluster", EventRow.name == name)
                .order_by(EventRow.id.desc())
                .limit(limit)
            ).all()
            return [
                EventInfo(r.id, r.time, r.type, r.reason, r.message, r.kind, r.name)
                for r in reversed(rows)
            ]

    def experiments_on(self, cluster: str) -> list[str]:
        """Names of the experiments that use ``cluster``, sorted."""
        with self.session() as s:
            return sorted(
                s.scalars(select(ExperimentRow.name).where(ExperimentRow.cluster == cluster))
            )

    def delete_cluster(self, name: str) -> None:
        """Remove cluster ``name``. Refused (:class:`Invalid`) while experiments use it, and
        for ``local``, which always exists; :class:`NotFound` when there is no such cluster."""
        with self.session() as s:
            row = s.get(ClusterRow, name)
            if row is None:
                if name == "local":
                    raise Invalid("cluster 'local' always exists; it cannot be deleted")
                raise NotFound(f"cluster {name!r} not found (known: {', '.join(cluster_names(s))})")
            users = sorted(
                s.scalars(select(ExperimentRow.name).where(ExperimentRow.cluster == name))
            )
            if users:
                shown = ", ".join(users[:10]) + (
                    f" and {len(users) - 10} more" if len(users) > 10 else ""
                )
                raise Invalid(
                    f"cluster {name!r} is used by {len(users)} experiment(s): {shown}; "
                    "delete them first"
                )
            s.delete(row)
            s.execute(delete(ClusterStatusRow).where(ClusterStatusRow.cluster == name))
            s.add(event_row(time.time(), "Normal", "Deleted", "cluster removed", "Cluster", name))

    def forget_experiment(self, name: str, why: str) -> ForgottenExperiment:
        """Remove experiment ``name`` here without cancelling its tasks (its cluster cannot be
        reached), with a Warning event saying ``why`` and which jobs may still run."""
        now = time.time()
        with self.session() as s:
            exp = experiment_row(s, name)
            active = s.execute(
                select(AttemptRow.job_id, SubmissionRow.tag)
                .join(WorkUnitRow, WorkUnitRow.active_attempt_id == AttemptRow.id)
                .join(SubmissionRow, SubmissionRow.id == AttemptRow.submission_id)
                .where(WorkUnitRow.experiment_uid == exp.uid)
            ).all()
            jobs = tuple(sorted({j for j, _ in active if j}))
            tags = tuple(sorted({t for j, t in active if not j}))
            left = _still_running(jobs, tags)
            s.add(
                event_row(
                    now,
                    "Warning",
                    "DeletedUnreachable",
                    f"removed without cancelling its tasks: {why}. {left}",
                    "Experiment",
                    name,
                    None,
                    exp.cluster,
                )
            )
            delete_experiment_rows(s, exp.uid)
            return ForgottenExperiment(exp.cluster, jobs, tags)


def _still_running(jobs: Sequence[str], tags: Sequence[str]) -> str:
    parts = []
    if jobs:
        parts.append(f"job(s) {', '.join(jobs)} may still run")
    if tags:
        parts.append(f"submission(s) tagged {', '.join(tags)} may have reached the scheduler")
    return "; ".join(parts) + "." if parts else "No task of it was submitted."


def _status(row: ClusterStatusRow | None) -> ClusterStatus:
    if row is None:
        return ClusterStatus()
    return ClusterStatus(conditions=[Condition.model_validate(c) for c in row.conditions or []])
