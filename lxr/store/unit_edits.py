"""Sweep edits: a re-applied ``spec.sweep`` or ``spec.workUnits`` reconciled against the stored
work units by their content (``work_units.identity``).

Unchanged units keep their row, index, state and history; new ones are added with new
indexes (never reused: ``experiments.next_index``) and the controller submits them; units no
longer in the spec are marked ``removed``: the controller stops the ones in flight, then
deletes them, or keeps them with ``removedWorkUnitPolicy: Retain``. A finished unit that is
removed is deleted at once (Retain: kept as it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from lxr.api.phases import WORK_UNIT_INITIAL
from lxr.api.resources import ExperimentSpec, RemovedWorkUnitPolicy
from lxr.api.sweep import DesiredWorkUnit, expand_work_units, unit_identities
from lxr.store.queries import TERMINAL, chunks
from lxr.store.tables import AttemptRow, ExperimentRow, WorkUnitRow

__all__ = ["UnitEdit", "plan_unit_edit", "write_unit_edit"]


@dataclass(frozen=True)
class UnitEdit:
    """What a sweep edit does to the stored work units."""

    added: tuple[tuple[int, DesiredWorkUnit, str], ...] = ()  # (new index, unit, identity)
    removed: tuple[int, ...] = ()  # indexes no longer in the spec
    delete_now: tuple[int, ...] = field(default=(), repr=False)  # their row ids, finished ones
    mark_removed: tuple[int, ...] = field(default=(), repr=False)  # row ids, stopped first
    restored: tuple[int, ...] = field(default=(), repr=False)  # row ids back in the spec
    next_index: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.restored)

    def summary(self) -> str:
        """``2 work units added (3, 4), 1 removed (1)``, or ``work units unchanged``."""
        parts = []
        if self.added:
            parts.append(f"{len(self.added)} added ({_shown([i for i, _, _ in self.added])})")
        if self.removed:
            parts.append(f"{len(self.removed)} removed ({_shown(self.removed)})")
        if self.restored and not parts:
            parts.append(f"{len(self.restored)} back in the spec")
        return "work units " + (", ".join(parts) if parts else "unchanged")


def _shown(indexes: Sequence[int], limit: int = 10) -> str:
    text = ", ".join(str(i) for i in indexes[:limit])
    return text + (f" and {len(indexes) - limit} more" if len(indexes) > limit else "")


def plan_unit_edit(s: Session, row: ExperimentRow, spec: ExperimentSpec) -> UnitEdit:
    """Match the units ``spec`` expands to against the stored ones, by identity."""
    desired = expand_work_units(spec)
    wanted = dict(zip(unit_identities(desired), desired, strict=True))
    w = WorkUnitRow
    stored = s.execute(
        select(w.id, w.idx, w.identity, w.phase, w.removed).where(w.experiment_uid == row.uid)
    ).all()
    have = {identity for _, _, identity, _, _ in stored}
    retain = spec.removed_work_unit_policy is RemovedWorkUnitPolicy.RETAIN
    removed, delete_now, mark, restored = [], [], [], []
    for wu_id, idx, identity, phase, was_removed in sorted(stored, key=lambda r: r[1]):
        if identity in wanted:
            if was_removed:
                restored.append(wu_id)
            continue
        if was_removed:
            continue
        removed.append(idx)
        if phase in TERMINAL and not retain:
            delete_now.append(wu_id)
        else:
            mark.append(wu_id)
    start = row.next_index
    if start is None:
        largest = s.scalar(select(func.max(w.idx)).where(w.experiment_uid == row.uid))
        start = 0 if largest is None else largest + 1
    new = [(identity, unit) for identity, unit in wanted.items() if identity not in have]
    added = tuple((start + k, unit, identity) for k, (identity, unit) in enumerate(new))
    return UnitEdit(
        added=added,
        removed=tuple(removed),
        delete_now=tuple(delete_now),
        mark_removed=tuple(mark),
        restored=tuple(restored),
        next_index=start + len(added),
    )


def write_unit_edit(s: Session, row: ExperimentRow, edit: UnitEdit, now: float) -> None:
    """Write ``edit``: insert the new units, delete or mark the removed ones."""
    w = WorkUnitRow
    if edit.added:
        s.execute(
            insert(w),
            [
                {
                    "experiment_uid": row.uid,
                    "idx": idx,
                    "name": unit.name if unit.named else str(idx),
                    "args": unit.args,
                    "env": unit.env,
                    "identity": identity,
                    "cluster": row.cluster,
                    "phase": WORK_UNIT_INITIAL.value,
                    "failures": 0,
                    "disruptions": 0,
                    "attempt_count": 0,
                    "updated_at": now,
                }
                for idx, unit, identity in edit.added
            ],
        )
    for chunk in chunks(list(edit.delete_now), 500):
        s.execute(delete(AttemptRow).where(AttemptRow.work_unit_id.in_(chunk)))
        s.execute(delete(w).where(w.id.in_(chunk)))
    for chunk in chunks(list(edit.mark_removed), 500):
        s.execute(update(w).where(w.id.in_(chunk)).values(removed=True, updated_at=now))
    for chunk in chunks(list(edit.restored), 500):
        s.execute(update(w).where(w.id.in_(chunk)).values(removed=False, updated_at=now))
