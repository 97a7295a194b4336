"""The controller's writes: a submission intent recorded before the scheduler is called, its
outcome, cancels sent, and the status updates the plan decided."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update

from lxr.api.phases import AttemptPhase, SubmissionState, SubmissionTransition, WorkUnitPhase
from lxr.store.codecs import attempt_patch_columns, event_row, work_unit_patch_columns
from lxr.store.engine import StoreEngine
from lxr.store.queries import chunks, update_columns
from lxr.store.tables import AttemptRow, ExperimentRow, SubmissionRow, WorkUnitRow

__all__ = ["ControllerWrites"]


def _copy_attempts(
    s: Any,
    submission_id: int,
    phase: str,
    entries: Sequence[tuple[int, int, int, str | None]],
    resources: Mapping[str, Any] | None,
) -> None:
    """The new attempts by PostgreSQL's ``COPY``, in the session's transaction."""
    raw = s.connection().connection.driver_connection
    columns = "work_unit_id, number, submission_id, array_index, phase, restarts, retry_reason"
    asked = None if resources is None else json.dumps(dict(resources))  # a JSON column's text
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY attempts ({columns}, final, resources) FROM STDIN") as copy,
    ):
        for wu_id, number, array_index, reason in entries:
            row = (wu_id, number, submission_id, array_index, phase, 0, reason, False, asked)
            copy.write_row(row)


class ControllerWrites(StoreEngine):
    """What the controller's actor persists, each call one transaction."""

    def record_intent(
        self,
        experiment_uid: str,
        cluster: str,
        tag: str,
        entries: Sequence[tuple[int, int, int, str | None]],
        *,
        phase: WorkUnitPhase,
        attempt_phase: AttemptPhase,
        resources: Mapping[str, Any] | None = None,
        attempts: dict[int, int] | None = None,
    ) -> int:
        """Record, before anything reaches the scheduler, that ``tag`` will be submitted with
        these ``(work unit id, attempt number, array index, retry reason)``: the new attempts in
        ``attempt_phase``, each work unit pointing at its attempt (its ``attempt_count`` the
        attempt's number) in ``phase``, as the plan decided; each attempt records ``resources``,
        what the submission asks for. Returns its id; ``attempts``, when given, gets each work
        unit's new attempt id (work unit id -> attempt id: the controller's cache takes the new
        attempts in from these, without reading them back)."""
        now = time.time()
        with self.session() as s:
            sub = SubmissionRow(
                tag=tag,
                cluster=cluster,
                experiment_uid=experiment_uid,
                state=SubmissionState.INTENT.value,
                created_at=now,
                tries=0,
            )
            s.add(sub)
            s.flush()
            if self.is_sqlite:
                s.execute(
                    insert(AttemptRow),
                    [
                        {
                            "work_unit_id": wu_id,
                            "number": number,
                            "submission_id": sub.id,
                            "array_index": array_index,
                            "phase": attempt_phase.value,
                            "restarts": 0,
                            "retry_reason": reason,
                            "final": False,
                            "resources": None if resources is None else dict(resources),
                        }
                        for wu_id, number, array_index, reason in entries
                    ],
                )
            else:  # COPY: an executemany is one statement per row there (10k tasks: 2.1 s)
                _copy_attempts(s, sub.id, attempt_phase.value, entries, resources)
            # each unit points at its new attempt: one set-based UPDATE ... FROM (a join),
            # not a correlated subquery per unit, which PostgreSQL ran in O(n^2): 10k tasks
            # took 6.1 s there, 0.9 s on SQLite; and not a 10k-row executemany of ids read back
            a, w = AttemptRow.__table__, WorkUnitRow.__table__
            point = (
                w.update()
                .where(a.c.submission_id == sub.id, a.c.work_unit_id == w.c.id)
                .values(
                    active_attempt_id=a.c.id,
                    attempt_count=a.c.number,
                    phase=phase.value,
                    updated_at=now,
                )
            )
            if attempts is None:
                s.connection().execute(point)
            else:  # SQLite returns only the updated table's columns: the pointer, as written
                rows = s.connection().execute(point.returning(w.c.id, w.c.active_attempt_id))
                attempts.update((wu_id, att_id) for wu_id, att_id in rows)
            return sub.id

    def mark_submitted(self, submission_id: int, job_id: str, row: SubmissionTransition) -> float:
        """The scheduler accepted the submission as ``job_id``: it and its attempts move as the
        state machine's ``row`` says (``Accepted``). Returns the time written as their submit
        and last-seen time."""
        now = time.time()
        attempt: dict[str, Any] = {} if row.attempt is None else {"phase": row.attempt.value}
        with self.session() as s:
            s.execute(
                update(SubmissionRow)
                .where(SubmissionRow.id == submission_id)
                .values(
                    state=row.target.value,
                    job_id=job_id,
                    submitted_at=now,
                    tries=SubmissionRow.tries + 1,
                )
            )
            s.execute(
                update(AttemptRow)
                .where(AttemptRow.submission_id == submission_id)
                .values(job_id=job_id, submit_time=now, last_seen=now, **attempt)
            )
        return now

    def mark_submit_failed(self, submission_id: int, error: str, row: SubmissionTransition) -> None:
        """The scheduler refused the submission: it moves as ``row`` says (``Rejected``)."""
        with self.session() as s:
            s.execute(
                update(SubmissionRow)
                .where(SubmissionRow.id == submission_id)
                .values(state=row.target.value, error=error[-4000:], tries=SubmissionRow.tries + 1)
            )

    def mark_cancel_requested(self, attempt_ids: Sequence[int], when: float) -> None:
        """A cancel went out for these attempts."""
        with self.session() as s:
            for chunk in chunks(list(attempt_ids), 500):
                s.execute(
                    update(AttemptRow)
                    .where(AttemptRow.id.in_(chunk))
                    .values(cancel_requested_at=when)
                )

    def apply_update(self, upd: Any, cluster: str) -> None:
        """Persist an :class:`~lxr.reconciler.actions.UpdateStatus` in one transaction."""
        now = time.time()
        with self.session() as s:
            for sid, job_id in upd.adoptions:
                s.execute(
                    update(SubmissionRow)
                    .where(SubmissionRow.id == sid)
                    .values(state=upd.adopted_state.value, job_id=job_id, submitted_at=now)
                )
                s.execute(
                    update(AttemptRow)
                    .where(AttemptRow.submission_id == sid, AttemptRow.job_id.is_(None))
                    .values(job_id=job_id, submit_time=now)
                )
            if upd.attempts:
                # an attempt's job id is set once (submit, adoption): not rewritten unchanged
                columns = attempt_patch_columns(upd.attempts)
                update_columns(s, AttemptRow, columns, rarely=("job_id",))
            for columns, fixed in work_unit_patch_columns(upd.work_units, now):
                update_columns(s, WorkUnitRow, columns, fixed)
            # removed by a sweep edit and stopped by this plan: gone in the same transaction
            for chunk in chunks(list(upd.remove), 500):
                s.execute(delete(AttemptRow).where(AttemptRow.work_unit_id.in_(chunk)))
                s.execute(delete(WorkUnitRow).where(WorkUnitRow.id.in_(chunk)))
            if upd.fail_experiment:
                reason, message = upd.fail_experiment
                s.execute(
                    update(ExperimentRow)
                    .where(
                        ExperimentRow.uid == upd.experiment_uid,
                        ExperimentRow.failed_reason.is_(None),
                    )
                    .values(failed_reason=reason, failed_message=message)
                )
            exp_name = s.scalar(
                select(ExperimentRow.name).where(ExperimentRow.uid == upd.experiment_uid)
            )
            s.add_all(
                event_row(
                    now,
                    e.type,
                    e.reason,
                    e.message,
                    e.kind,
                    e.name or exp_name or "",
                    upd.experiment_uid,
                    cluster,
                )
                for e in upd.events
            )
