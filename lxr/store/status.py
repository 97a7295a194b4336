"""An experiment's status written from its work units, and the deletion finalizer: a deleted
experiment whose tasks all stopped is removed.

The store decides no phase here: the caller passes the derivation (today
:func:`lxr.reconciler.status.derive_status`), the store reads its inputs and writes its result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy import delete, func, select

from lxr.api.resources import Condition, ExperimentPhase
from lxr.store.codecs import event_row
from lxr.store.engine import StoreEngine
from lxr.store.tables import AttemptRow, ExperimentRow, SubmissionRow, WorkUnitRow

__all__ = ["DeriveStatus", "DerivedStatusLike", "ExperimentStatusWrites"]


class DerivedStatusLike(Protocol):
    """What a status derivation returns."""

    @property
    def phase(self) -> ExperimentPhase: ...
    @property
    def conditions(self) -> list[Condition]: ...
    @property
    def finished(self) -> bool: ...


class DeriveStatus(Protocol):
    """The signature of :func:`lxr.reconciler.status.derive_status`."""

    def __call__(
        self,
        counts: Mapping[str, int],
        failed_indexes: Sequence[int],
        *,
        never_submitted: int,
        deleting: bool,
        failed_reason: str | None,
        failed_message: str | None,
        conditions: Sequence[Condition],
        now: float,
    ) -> DerivedStatusLike: ...


class ExperimentStatusWrites(StoreEngine):
    """The experiment-status write of a controller cycle."""

    def refresh_status(
        self, experiment_uid: str, now: float, derive_status: DeriveStatus
    ) -> tuple[str, bool]:
        """Recompute an experiment's status from its work units with ``derive_status``; remove
        it when deleted and finished. Returns ``(phase, finished)``."""
        with self.session() as s:
            exp = s.get(ExperimentRow, experiment_uid)
            if exp is None:
                return "Stopped", True
            counts = dict(
                s.execute(
                    select(WorkUnitRow.phase, func.count())
                    .where(WorkUnitRow.experiment_uid == experiment_uid)
                    .group_by(WorkUnitRow.phase)
                ).all()
            )
            never = (
                s.scalar(
                    select(func.count())
                    .select_from(WorkUnitRow)
                    .where(
                        WorkUnitRow.experiment_uid == experiment_uid, WorkUnitRow.attempt_count == 0
                    )
                )
                or 0
            )
            failed_idx = list(
                s.scalars(
                    select(WorkUnitRow.idx)
                    .where(
                        WorkUnitRow.experiment_uid == experiment_uid, WorkUnitRow.phase == "Failed"
                    )
                    .order_by(WorkUnitRow.idx)
                    .limit(1000)
                )
            )
            derived = derive_status(
                counts,
                failed_idx,
                never_submitted=never,
                deleting=exp.deletion_timestamp is not None,
                failed_reason=exp.failed_reason,
                failed_message=exp.failed_message,
                conditions=[Condition.model_validate(c) for c in exp.conditions],
                now=now,
            )
            if exp.deletion_timestamp is not None and derived.finished:
                s.add(
                    event_row(
                        now,
                        "Normal",
                        "Deleted",
                        "all tasks stopped; experiment removed",
                        "Experiment",
                        exp.name,
                        None,
                        exp.cluster,
                    )
                )
                s.execute(
                    delete(AttemptRow).where(
                        AttemptRow.work_unit_id.in_(
                            select(WorkUnitRow.id).where(
                                WorkUnitRow.experiment_uid == experiment_uid
                            )
                        )
                    )
                )
                s.execute(delete(WorkUnitRow).where(WorkUnitRow.experiment_uid == experiment_uid))
                s.execute(
                    delete(SubmissionRow).where(SubmissionRow.experiment_uid == experiment_uid)
                )
                s.execute(delete(ExperimentRow).where(ExperimentRow.uid == experiment_uid))
                return "Stopped", True
            new_counts = {**counts, "total": sum(counts.values())}
            conditions = [c.model_dump(mode="json", by_alias=True) for c in derived.conditions]
            start = exp.start_time
            if start is None and never < new_counts["total"]:
                start = now
            completion = (
                now if derived.finished and exp.completion_time is None else exp.completion_time
            )
            if not derived.finished:
                completion = None
            if (
                exp.phase != derived.phase.value
                or exp.counts != new_counts
                or exp.conditions != conditions
                or exp.failed_indexes != failed_idx
                or exp.observed_generation != exp.generation
                or exp.start_time != start
                or exp.completion_time != completion
            ):
                if exp.phase != derived.phase.value and derived.finished:
                    kind = "Warning" if derived.phase.value == "Failed" else "Normal"
                    s.add(
                        event_row(
                            now,
                            kind,
                            derived.phase.value,
                            next(
                                (c.message for c in derived.conditions if c.type == "Succeeded"), ""
                            ),
                            "Experiment",
                            exp.name,
                            exp.uid,
                            exp.cluster,
                        )
                    )
                exp.phase = derived.phase.value
                exp.counts = new_counts
                exp.conditions = conditions
                exp.failed_indexes = failed_idx
                exp.observed_generation = exp.generation
                exp.start_time = start
                exp.completion_time = completion
                exp.resource_version += 1
            return exp.phase, derived.finished
