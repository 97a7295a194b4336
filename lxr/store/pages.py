"""Paged reads for listings that may hold 100k rows: ``lxr get workunits`` streams these,
and ``describe`` counts in SQL instead of loading every work unit.

Rows become the JSON form of the API objects directly (what ``WorkUnit.model_dump(mode="json",
by_alias=True, exclude_none=True)`` gives, key for key), without building pydantic models:
at 100k work units that is the difference between seconds and minutes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, or_, select, text

from lxr.api.phases import WorkUnitPhase
from lxr.api.resources import API_VERSION, WorkUnit
from lxr.store.codecs import experiment_from_row, work_unit_view
from lxr.store.engine import StoreEngine
from lxr.store.queries import experiment_row
from lxr.store.tables import AttemptRow, WorkUnitRow

__all__ = ["ATTENTION_PHASES", "PAGE_SIZE", "PagedViews", "rfc3339"]

#: work units read per query; the first page is what a user sees first
PAGE_SIZE = 1000
#: phases of work units that ``describe`` lists under "needing attention"
ATTENTION_PHASES = tuple(
    p.value for p in (WorkUnitPhase.FAILED, WorkUnitPhase.BACKOFF, WorkUnitPhase.UNKNOWN)
)

# plain SQL on the driver's cursor: no ORM objects, no per-column result processing
_UNITS_SQL = (
    "SELECT id, idx, name, args, env, phase, reason, message, exit_code, failures, "
    "disruptions, next_attempt_after FROM work_units "
    "WHERE experiment_uid = :uid AND idx > :last{extra} ORDER BY idx LIMIT :limit"
)
_ATTEMPTS_SQL = (
    "SELECT a.work_unit_id, a.number, a.job_id, a.array_index, a.phase, a.state, a.exit_code, "
    "a.reason, a.message, a.restarts, a.submit_time, a.start_time, a.end_time, "
    "a.rank_exit_codes, a.first_failed_rank "
    "FROM attempts a JOIN work_units w ON a.work_unit_id = w.id "
    "WHERE w.experiment_uid = :uid AND w.idx >= :lo AND w.idx <= :hi "
    "ORDER BY a.work_unit_id, a.number"
)

_seconds_cache: dict[int, str] = {}


def rfc3339(value: float) -> str:
    """UNIX seconds as pydantic writes an aware UTC datetime (``...T10:32:40.677802Z``)."""
    whole = int(value // 1)
    head = _seconds_cache.get(whole)
    if head is None:
        if len(_seconds_cache) > 100_000:
            _seconds_cache.clear()
        head = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _seconds_cache[whole] = head
    micros = round((value - whole) * 1_000_000)
    if micros >= 1_000_000:  # rounding reached the next second: let datetime do it
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    return f"{head}.{micros:06d}Z" if micros else f"{head}Z"


def _json(value: Any) -> Any:
    # SQLite hands JSON columns over as text, PostgreSQL as decoded values
    if value is None or value == "{}":
        return {}
    return json.loads(value) if isinstance(value, str) else value


def _attempt(a: Any) -> dict[str, Any]:
    (_wid, number, job_id, array_index, phase, state, exit_code, reason, message, restarts,
     submit_time, start_time, end_time, rank_codes, first_failed) = a  # fmt: skip
    out: dict[str, Any] = {"attempt": number}
    if job_id is not None:
        out["jobId"] = job_id
    if array_index is not None:
        out["index"] = array_index
    out["phase"] = phase
    if state is not None:
        out["state"] = state
    if exit_code is not None:
        out["exitCode"] = exit_code
    if reason is not None:
        out["reason"] = reason
    if message is not None:
        out["message"] = message
    out["restarts"] = restarts
    if submit_time is not None:
        out["submitTime"] = rfc3339(submit_time)
    if start_time is not None:
        out["startTime"] = rfc3339(start_time)
    if end_time is not None:
        out["endTime"] = rfc3339(end_time)
    if isinstance(rank_codes, str):  # SQLite hands JSON over as text
        rank_codes = json.loads(rank_codes)
    if rank_codes is not None:
        out["rankExitCodes"] = rank_codes
    if first_failed is not None:
        out["firstFailedRank"] = first_failed
    return out


def _unit(exp_name: str, exp_uid: str, r: Any, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    (_id, idx, name, args, env, phase, reason, message, exit_code, failures, disruptions,
     next_attempt_after) = r  # fmt: skip
    index = str(idx)
    labels = {"experiment": exp_name, "index": index}
    if name != index:
        labels["name"] = name
    status: dict[str, Any] = {"phase": phase}
    if reason is not None:
        status["reason"] = reason
    if message is not None:
        status["message"] = message
    if exit_code is not None:
        status["exitCode"] = exit_code
    status["failures"] = failures
    status["disruptions"] = disruptions
    if next_attempt_after is not None:
        status["nextAttemptAfter"] = rfc3339(next_attempt_after)
    status["attempts"] = attempts
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkUnit",
        "metadata": {"name": f"{exp_name}-{index}", "uid": f"{exp_uid}/{index}", "labels": labels},
        "spec": {"index": idx, "args": _json(args), "env": _json(env)},
        "status": status,
    }


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
        ``page_size`` at a time (keyset pages, so each page costs the same)."""
        with self.session() as s:
            row = experiment_row(s, experiment)
            name, uid = row.name, row.uid
        last = -1
        extra = ""
        params: dict[str, Any] = {"uid": uid, "limit": page_size}
        if phase:
            extra += " AND phase = :phase"
            params["phase"] = phase
        if index is not None:
            extra += " AND idx = :index"
            params["index"] = index
        units_sql = text(_UNITS_SQL.format(extra=extra))
        attempts_sql = text(_ATTEMPTS_SQL)
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(units_sql, {**params, "last": last}).all()
                if not rows:
                    return
                attempts: dict[int, list[dict[str, Any]]] = {}
                # the attempts of this page's units: one idx range of one experiment
                bounds = {"uid": uid, "lo": rows[0][1], "hi": rows[-1][1]}
                for a in conn.execute(attempts_sql, bounds):
                    attempts.setdefault(a[0], []).append(_attempt(a))
            for r in rows:
                yield _unit(name, uid, r, attempts.get(r[0], []))
            if len(rows) < page_size or index is not None:
                return
            last = rows[-1][1]

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
