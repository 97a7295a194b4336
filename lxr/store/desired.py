"""The controller's reads: which clusters have work, the desired state of one cluster as
frozen records (the planner's input), and a recorded submission to (re)submit.

**Change counter.** An experiment's ``resource_version`` moves with every write that others
than the controller's cycle make to it or to its work units (apply, delete, stop, status
writes): the controller's cache (:mod:`lxr.reconciler.informer`) reloads an experiment
whose version moved, and keeps the others. A new writer of ``experiments`` or
``work_units`` must bump it (:func:`~lxr.store.queries.bump_version`); the cache's periodic
full resync is only the safety net.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from lxr.api.dependencies import upstream_experiments
from lxr.api.phases import WorkUnitPhase
from lxr.api.records import FAILED_INDEXES_SHOWN, ExperimentRecord, StatusRecord
from lxr.api.resources import ExperimentSpec
from lxr.store.codecs import (
    ATTEMPT_RECORD,
    WORK_UNIT_RECORD,
    experiment_record,
    status_record,
)
from lxr.store.dependencies import upstream_inputs
from lxr.store.engine import StoreEngine
from lxr.store.errors import NotFound
from lxr.store.queries import TERMINAL, unfinished_experiment
from lxr.store.tables import AttemptRow, ExperimentRow, SubmissionRow, WorkUnitRow

__all__ = ["DesiredState", "SubmissionInfo"]


@dataclass(frozen=True)
class SubmissionInfo:
    """A recorded submission with what it runs, enough to (re)submit it."""

    id: int
    tag: str
    cluster: str
    experiment_uid: str
    experiment: str
    state: str
    job_id: str | None
    spec: ExperimentSpec
    tasks: tuple[tuple[int, int, int, dict[str, Any], dict[str, str]], ...]
    # (array index, work unit index, attempt number, args, env)
    #: what its attempts recorded they ask for (None: recorded before attempts kept it)
    resources: dict[str, Any] | None = None


class DesiredState(StoreEngine):
    """What a controller cycle reads."""

    def clusters_with_work(self) -> list[str]:
        """Clusters that have experiments not yet finished (or being deleted)."""
        with self.session() as s:
            q = select(ExperimentRow.cluster).where(unfinished_experiment()).distinct()
            return sorted(s.scalars(q))

    def experiment_versions(self, cluster: str) -> dict[str, int]:
        """``{uid: resource_version}`` of the active experiments on ``cluster`` (one small
        query: what a cycle reads when nothing changed)."""
        with self.session() as s:
            q = select(ExperimentRow.uid, ExperimentRow.resource_version).where(
                ExperimentRow.cluster == cluster, unfinished_experiment()
            )
            return {uid: int(rv) for uid, rv in s.execute(q)}

    def load_desired(
        self, cluster: str, uids: Collection[str] | None = None, *, units: bool = True
    ) -> list[ExperimentRecord]:
        """Active experiments on ``cluster`` (only ``uids``, when given) with their
        non-terminal work units (none when not ``units``: the experiment and its status
        inputs alone), and, for those with dependencies and work units not yet submitted,
        their upstream experiments' work units (whatever cluster those run on)."""
        out: list[ExperimentRecord] = []
        w = WorkUnitRow
        # one query of plain tuples per experiment: ORM objects cost ~5x more at 100k rows
        columns = (*WORK_UNIT_RECORD.columns, *ATTEMPT_RECORD.columns)
        n = len(WORK_UNIT_RECORD.columns)
        unit, attempt = WORK_UNIT_RECORD.build, ATTEMPT_RECORD.build
        with self.session() as s:
            q = select(ExperimentRow).where(
                ExperimentRow.cluster == cluster, unfinished_experiment()
            )
            if uids is not None:
                if not uids:
                    return out
                q = q.where(ExperimentRow.uid.in_(list(uids)))
            exps = s.scalars(q.order_by(ExperimentRow.created_at)).all()
            for exp in exps:
                status = self._status_inputs(s, exp)
                failed_count = status.counts.get(WorkUnitPhase.FAILED, 0)
                if not units:
                    out.append(experiment_record(exp, failed_count, (), status))
                    continue
                # rows streamed into records (not all 100k rows held first)
                rows = s.execute(
                    select(*columns)
                    .outerjoin(AttemptRow, AttemptRow.id == w.active_attempt_id)
                    .outerjoin(SubmissionRow, SubmissionRow.id == AttemptRow.submission_id)
                    .where(w.experiment_uid == exp.uid, w.phase.not_in(TERMINAL))
                    .order_by(w.idx)
                    # in batches (PostgreSQL: a server-side cursor, not 100k rows in libpq)
                    .execution_options(yield_per=2000)
                )
                strings: dict[str, str] = {}
                loaded = tuple(
                    unit(r[:n], None if r[n] is None else attempt(r[n:], None, strings), strings)
                    for r in rows
                )
                record = experiment_record(exp, failed_count, loaded, status)
                if upstream_experiments(record.spec):
                    upstream, args = upstream_inputs(s, exp.uid, record.spec, loaded)
                    record = replace(record, upstream=upstream, waiting_args=args)
                out.append(record)
        return out

    @staticmethod
    def _status_inputs(s: Session, exp: ExperimentRow) -> StatusRecord:
        """Every work unit of ``exp`` counted per phase, those never submitted, the smallest
        failed indexes: what the plan derives the experiment's status from."""
        w, uid = WorkUnitRow, exp.uid
        # one pass over the experiment's units (no index holds the phase: 0011), the failed
        # indexes looked for only when some failed
        counts, never = {}, 0
        for phase, n, unsubmitted in s.execute(
            select(w.phase, func.count(), func.sum(case((w.attempt_count == 0, 1), else_=0)))
            .where(w.experiment_uid == uid)
            .group_by(w.phase)
        ):
            counts[phase] = n
            never += int(unsubmitted or 0)
        failed: Sequence[int] = ()
        if counts.get(WorkUnitPhase.FAILED.value):
            failed = s.scalars(
                select(w.idx)
                .where(w.experiment_uid == uid, w.phase == WorkUnitPhase.FAILED.value)
                .order_by(w.idx)
                .limit(FAILED_INDEXES_SHOWN)
            ).all()
        return status_record(exp, counts, never, failed)

    def submission(self, submission_id: int) -> SubmissionInfo:
        """A submission and the tasks it holds, in array-index order."""
        with self.session() as s:
            sub = s.get(SubmissionRow, submission_id)
            if sub is None:
                raise NotFound(f"submission {submission_id} not found")
            exp = s.get(ExperimentRow, sub.experiment_uid)
            assert exp is not None
            rows = s.execute(
                select(
                    AttemptRow.array_index,
                    WorkUnitRow.idx,
                    AttemptRow.number,
                    WorkUnitRow.args,
                    WorkUnitRow.env,
                    AttemptRow.resources,
                )
                .join(WorkUnitRow, AttemptRow.work_unit_id == WorkUnitRow.id)
                # an attempt that ended meanwhile (its unit was stopped) is not submitted again
                .where(AttemptRow.submission_id == submission_id, AttemptRow.final.is_(False))
                .order_by(AttemptRow.array_index)
            ).all()
            return SubmissionInfo(
                id=sub.id,
                tag=sub.tag,
                cluster=sub.cluster,
                experiment_uid=sub.experiment_uid,
                experiment=exp.name,
                state=sub.state,
                job_id=sub.job_id,
                spec=ExperimentSpec.model_validate(exp.spec),
                tasks=tuple((a, i, n, dict(args), dict(env)) for a, i, n, args, env, _ in rows),
                resources=next((dict(r[-1]) for r in rows if r[-1] is not None), None),
            )
