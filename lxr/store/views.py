"""Read views for the CLI and launch scripts: clusters, experiments, work units, attempts."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from lxr.api.resources import (
    Cluster,
    ClusterSpec,
    ClusterStatus,
    Condition,
    Experiment,
    ObjectMeta,
    WorkUnit,
)
from lxr.store.codecs import cluster_from_row, experiment_from_row, work_unit_view
from lxr.store.engine import StoreEngine
from lxr.store.errors import NotFound
from lxr.store.queries import chunks, cluster_names, experiment_row, experiment_uid_of
from lxr.store.tables import (
    AttemptRow,
    ClusterRow,
    ClusterStatusRow,
    ExperimentRow,
    SubmissionRow,
    WorkUnitRow,
)

__all__ = ["LOCAL_CLUSTER", "Views"]

#: the cluster that exists without being applied
LOCAL_CLUSTER = Cluster(metadata=ObjectMeta(name="local"), spec=ClusterSpec(scheduler="local"))


class Views(StoreEngine):
    """What ``lxr get`` and ``describe`` read."""

    def get_cluster(self, name: str) -> Cluster:
        """The cluster ``name`` (``local`` exists unless overridden by an applied one)."""
        with self.session() as s:
            row = s.get(ClusterRow, name)
            if row is None:
                if name != "local":
                    known = ", ".join(cluster_names(s))
                    raise NotFound(f"cluster {name!r} not found (known: {known})")
                cluster = LOCAL_CLUSTER
            else:
                cluster = cluster_from_row(row)
            return _with_status(cluster, s.get(ClusterStatusRow, name))

    def list_clusters(self) -> list[Cluster]:
        """Every cluster, ``local`` included."""
        with self.session() as s:
            rows = {r.name: cluster_from_row(r) for r in s.scalars(select(ClusterRow))}
            rows.setdefault("local", LOCAL_CLUSTER)
            statuses = {r.cluster: r for r in s.scalars(select(ClusterStatusRow))}
        return [_with_status(rows[k], statuses.get(k)) for k in sorted(rows)]

    def get_experiment(self, name: str) -> Experiment:
        """The experiment with its status."""
        with self.session() as s:
            row = experiment_row(s, name)
            return experiment_from_row(row)

    def list_experiments(self, selector: Mapping[str, str] | None = None) -> list[Experiment]:
        """Experiments whose labels include ``selector``, by name."""
        with self.session() as s:
            rows = s.scalars(select(ExperimentRow).order_by(ExperimentRow.name)).all()
            exps = [experiment_from_row(r) for r in rows]
        if selector:
            exps = [
                e for e in exps if all(e.metadata.labels.get(k) == v for k, v in selector.items())
            ]
        return exps

    def experiment_uid(self, name: str) -> str:
        """The uid of experiment ``name``."""
        with self.session() as s:
            return experiment_uid_of(s, name)

    def list_work_units(
        self,
        experiment: str | None = None,
        *,
        selector: Mapping[str, str] | None = None,
        phase: str | None = None,
        index: int | None = None,
    ) -> list[WorkUnit]:
        """Work units (with their attempts) of one experiment, or of those matching labels."""
        selector = dict(selector or {})
        wanted = selector.pop("experiment", None)
        if experiment:
            exps = [self.get_experiment(experiment)]
        else:
            exps = self.list_experiments(selector)
        if wanted is not None:
            exps = [e for e in exps if e.metadata.name == wanted]
        out: list[WorkUnit] = []
        with self.session() as s:
            for exp in exps:
                q = select(WorkUnitRow).where(WorkUnitRow.experiment_uid == exp.metadata.uid)
                if phase:
                    q = q.where(WorkUnitRow.phase == phase)
                if index is not None:
                    q = q.where(WorkUnitRow.idx == index)
                rows = s.scalars(q.order_by(WorkUnitRow.idx)).all()
                attempts: dict[int, list[AttemptRow]] = {}
                ids = [r.id for r in rows]
                for chunk in chunks(ids, 500):
                    for a in s.scalars(
                        select(AttemptRow)
                        .where(AttemptRow.work_unit_id.in_(chunk))
                        .order_by(AttemptRow.work_unit_id, AttemptRow.number)
                    ):
                        attempts.setdefault(a.work_unit_id, []).append(a)
                out.extend(work_unit_view(exp, r, attempts.get(r.id, [])) for r in rows)
        return out

    def find_attempt(
        self, experiment: str, index: int, attempt: int | None = None
    ) -> tuple[str, str, int, str | None]:
        """``(cluster, submission tag, array index, job id)`` of a work unit's attempt
        (the latest by default)."""
        with self.session() as s:
            exp = experiment_row(s, experiment)
            wu = s.scalars(
                select(WorkUnitRow).where(
                    WorkUnitRow.experiment_uid == exp.uid, WorkUnitRow.idx == index
                )
            ).one_or_none()
            if wu is None:
                raise NotFound(f"experiment {experiment} has no work unit {index}")
            q = (
                select(AttemptRow, SubmissionRow.tag)
                .join(SubmissionRow, AttemptRow.submission_id == SubmissionRow.id)
                .where(AttemptRow.work_unit_id == wu.id)
            )
            q = (
                q.where(AttemptRow.number == attempt)
                if attempt
                else q.order_by(AttemptRow.number.desc())
            )
            found = s.execute(q.limit(1)).first()
            if found is None:
                which = f"attempt {attempt}" if attempt else "any attempt"
                raise NotFound(f"work unit {experiment}/{index} has no {which} yet")
            att, tag = found
            return exp.cluster, tag, att.array_index, att.job_id


def _with_status(cluster: Cluster, row: ClusterStatusRow | None) -> Cluster:
    """``cluster`` with the status the controller wrote (empty conditions before any)."""
    conditions = [Condition.model_validate(c) for c in (row.conditions if row else None) or []]
    return cluster.model_copy(update={"status": ClusterStatus(conditions=conditions)})
