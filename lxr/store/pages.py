"""Paged reads for listings that may hold 100k rows: ``lxr get workunits`` streams these,
and ``describe`` counts in SQL instead of loading every work unit.

Rows become the JSON form of the API objects directly (what ``WorkUnit.model_dump(mode="json",
by_alias=True, exclude_none=True)`` gives, key for key), without building pydantic models:
at 100k work units that is the difference between seconds and minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, or_, select

from lxr.api.resources import WorkUnit
from lxr.store.codecs import experiment_from_row, work_unit_view
from lxr.store.engine import StoreEngine
from lxr.store.jsonform import rfc3339
from lxr.store.queries import experiment_row
from lxr.store.reads import ATTENTION_PHASES, PAGE_SIZE, Reader, core_connection
from lxr.store.tables import AttemptRow, WorkUnitRow

__all__ = ["ATTENTION_PHASES", "PAGE_SIZE", "PagedViews", "rfc3339"]


class PagedViews(StoreEngine):
    """Listings read page by page."""

    def iter_work_units(
        self,
        experiment: str,
        *,
        phase: str | None = None,
        index: int | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """The work units of ``experiment`` in index order, as JSON-form dicts, read
        ``page_size`` at a time (:meth:`lxr.store.reads.Reader.iter_work_units`, on this
        store's engine)."""
        reader = Reader(core_connection(self.engine), self.url)
        return reader.iter_work_units(experiment, phase=phase, index=index, page_size=page_size)

    def work_units_needing_attention(
        self, experiment: str, limit: int = 50
    ) -> tuple[list[WorkUnit], int]:
        """Up to ``limit`` work units that failed, back off, are unknown or were disrupted,
        and how many there are in all (counted in SQL)."""
        with self.session() as s:
            row = experiment_row(s, experiment)
            cond = (WorkUnitRow.experiment_uid == row.uid) & or_(
                WorkUnitRow.phase.in_(ATTENTION_PHASES), WorkUnitRow.disruptions > 0
            )
            total = s.scalar(select(func.count()).select_from(WorkUnitRow).where(cond)) or 0
            units = s.scalars(
                select(WorkUnitRow).where(cond).order_by(WorkUnitRow.idx).limit(limit)
            ).all()
            if not units:
                return [], total
            exp = experiment_from_row(row)
            attempts: dict[int, list[AttemptRow]] = {}
            for a in s.scalars(
                select(AttemptRow)
                .where(AttemptRow.work_unit_id.in_([u.id for u in units]))
                .order_by(AttemptRow.work_unit_id, AttemptRow.number)
            ):
                attempts.setdefault(a.work_unit_id, []).append(a)
            return [work_unit_view(exp, u, attempts.get(u.id, [])) for u in units], total
