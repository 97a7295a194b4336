"""Query pieces shared by the store's modules."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, ColumnElement, CursorResult, Result, bindparam, delete, select, update
from sqlalchemy.orm import Session

from lxr.api.phases import EXPERIMENT_TERMINAL, WORK_UNIT_TERMINAL
from lxr.store.errors import NotFound
from lxr.store.tables import (
    AttemptRow,
    Base,
    ClusterRow,
    ExperimentRow,
    SubmissionRow,
    WorkUnitRow,
)

__all__ = [
    "CONFLICT_RETRIES",
    "TERMINAL",
    "bump_version",
    "chunks",
    "cluster_names",
    "delete_experiment_rows",
    "experiment_row",
    "experiment_uid_of",
    "rowcount",
    "unfinished_experiment",
    "update_columns",
]

#: work-unit phases that end (the experiment's terminal phases have the same names)
TERMINAL = tuple(sorted(p.value for p in WORK_UNIT_TERMINAL))
assert set(TERMINAL) == {p.value for p in EXPERIMENT_TERMINAL}
#: attempts at a write that lost an optimistic-concurrency race before giving up
CONFLICT_RETRIES = 5


def unfinished_experiment() -> ColumnElement[bool]:
    """Experiments the controller still has work for: not finished, being deleted, or with a
    spec it has not yet seen."""
    return (
        ExperimentRow.phase.not_in(TERMINAL)
        | ExperimentRow.deletion_timestamp.is_not(None)
        | (ExperimentRow.observed_generation != ExperimentRow.generation)
        | ExperimentRow.observed_generation.is_(None)
    )


def experiment_row(s: Session, name: str) -> ExperimentRow:
    """The stored experiment ``name``; raises :class:`NotFound`."""
    row = s.scalars(select(ExperimentRow).where(ExperimentRow.name == name)).one_or_none()
    if row is None:
        raise NotFound(f"experiment {name!r} not found")
    return row


def experiment_uid_of(s: Session, name: str) -> str:
    """The uid of experiment ``name``; raises :class:`NotFound`."""
    uid = s.scalars(select(ExperimentRow.uid).where(ExperimentRow.name == name)).one_or_none()
    if uid is None:
        raise NotFound(f"experiment {name!r} not found")
    return uid


def cluster_names(s: Session) -> list[str]:
    """Every cluster's name, ``local`` first (for messages naming the known ones)."""
    stored = s.scalars(select(ClusterRow.name).where(ClusterRow.name != "local"))
    return ["local", *sorted(stored)]


def bump_version(s: Session, experiment_uid: str) -> None:
    """One more on the experiment's ``resource_version``, its change counter: every write to
    an experiment or its work units by anything but the controller's cycle bumps it, so the
    controller's cache reloads the experiment (see :mod:`lxr.store.desired`)."""
    s.execute(
        update(ExperimentRow)
        .where(ExperimentRow.uid == experiment_uid)
        .values(resource_version=ExperimentRow.resource_version + 1)
    )


#: from this many rows on, an update is one statement per table (below: row by row)
_SET_ROWS = 200
#: SQLite's UPDATE ... FROM came in 3.33 (older SQLite updates row by row)
_SQLITE_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)
#: and its JSON functions are built in from 3.38 on
_SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38)


def _copy_text(kind: Any) -> Callable[[Any], Any] | None:
    """How a value of a column of type ``kind`` goes into COPY: JSON as its text (SQL NULL or
    JSON ``null`` for None, as the type says), anything else as it is."""
    if not isinstance(kind, JSON):
        return None
    null_is_sql = kind.none_as_null

    def text(value: Any) -> str | None:
        if value is None and null_is_sql:
            return None
        return json.dumps(value)

    return text


def _same(values: Sequence[Any]) -> bool:
    """Whether every value equals the first (a column the batch sets to one value)."""
    return values.count(values[0]) == len(values)


def update_columns(
    s: Session,
    table: type[Base],
    columns: Mapping[str, Sequence[Any]],
    fixed: Mapping[str, Any] | None = None,
    *,
    rarely: Collection[str] = (),
) -> None:
    """``UPDATE table SET ... WHERE id = ...`` for every row: ``columns`` maps each column
    written (``id`` first) to its values, one per row; ``fixed`` sets columns to one value
    for every row. A column whose type converts values (JSON) goes through that type's bind
    processor (its text for COPY), as SQLAlchemy would.

    From :data:`_SET_ROWS` rows on (SQLite and PostgreSQL) it is one statement per table,
    not one per row: a column the whole batch sets to one value is a parameter bound once
    (a pass where every task ended writes the same phase, reason and exit code 100k times),
    the columns that vary come from a temporary table (filled by the driver's executemany on
    SQLite, by COPY on PostgreSQL) joined by id. ``rarely`` names indexed columns whose value
    seldom changes (an attempt's job id): on SQLite, which rewrites the index entries of every
    indexed column it sets, they are set by a second statement only where they differ."""
    keys = list(columns)
    assert keys[0] == "id", keys
    ids = columns["id"]
    if not ids:
        return
    t = table.__table__
    conn = s.connection()
    dialect = conn.dialect.name
    fixed = dict(fixed or {})
    if (
        len(ids) < _SET_ROWS
        or dialect not in ("sqlite", "postgresql")
        or (dialect == "sqlite" and not _SQLITE_UPDATE_FROM)
    ):
        names = [*keys, *fixed]
        rows = [(*row, *fixed.values()) for row in zip(*columns.values(), strict=True)]
        _update_each(conn, t, names, rows)
        return

    def processor(kind: Any) -> Callable[[Any], Any] | None:
        if not isinstance(kind, JSON):
            return None
        return _copy_text(kind) if dialect == "postgresql" else _bound(kind, conn.dialect)

    for k, v in fixed.items():
        if (proc := processor(t.c[k].type)) is not None:
            fixed[k] = proc(v)
    values: dict[str, Sequence[Any]] = {}
    for k, col in columns.items():
        proc = processor(t.c[k].type)
        values[k] = col if proc is None else list(map(proc, col))
    for k, col in list(values.items())[1:]:
        if _same(col):
            fixed[k] = col[0]
            del values[k]
    varying = [t.c[k].name for k in values]  # id first
    guarded = [n for n in varying[1:] if dialect == "sqlite" and n in rarely]
    temp = f"lxr_set_{t.name}"
    feed = zip(*values.values(), strict=True)
    raw: Any = conn.connection.driver_connection
    mark = "?" if dialect == "sqlite" else "%s"
    sets = [f"{t.c[k].name} = {_param(t.c[k].type, mark, dialect)}" for k in fixed]
    cur = raw.cursor()
    try:
        if len(varying) == 1 and (dialect == "postgresql" or _SQLITE_JSON):
            # only the ids vary (a work unit's status, most passes): they go in as one
            # parameter, no temporary table
            ids_in = "IN (SELECT value FROM json_each(?))" if dialect == "sqlite" else "= ANY(%s)"
            ids_value = json.dumps(list(ids)) if dialect == "sqlite" else list(ids)
            cur.execute(
                f"UPDATE {t.name} SET {', '.join(sets)} WHERE id {ids_in}",
                [*fixed.values(), ids_value],
            )
            return
        if dialect == "sqlite":
            cur.execute(
                f"CREATE TEMP TABLE {temp} ({', '.join(['id INTEGER PRIMARY KEY', *varying[1:]])})"
            )
            cur.executemany(f"INSERT INTO {temp} VALUES ({', '.join('?' * len(varying))})", feed)
        else:
            cur.execute(
                f"CREATE TEMPORARY TABLE {temp} ON COMMIT DROP AS "
                f"SELECT {', '.join(varying)} FROM {t.name} WITH NO DATA"
            )
            with cur.copy(f"COPY {temp} ({', '.join(varying)}) FROM STDIN") as copy:
                for row in feed:
                    copy.write_row(row)
        sets += [f"{n} = u.{n}" for n in varying[1:] if n not in guarded]
        where = f"FROM {temp} AS u WHERE {t.name}.id = u.id"
        if sets:
            cur.execute(f"UPDATE {t.name} SET {', '.join(sets)} {where}", list(fixed.values()))
        for n in guarded:
            cur.execute(f"UPDATE {t.name} SET {n} = u.{n} {where} AND {t.name}.{n} IS NOT u.{n}")
        cur.execute(f"DROP TABLE {temp}")
    finally:
        cur.close()


def _param(kind: Any, mark: str, dialect: str) -> str:
    """A bound parameter for a column of type ``kind`` (JSON text cast to JSON on
    PostgreSQL)."""
    return f"CAST({mark} AS JSON)" if dialect == "postgresql" and isinstance(kind, JSON) else mark


def _update_each(conn: Any, t: Any, keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """The update of a few rows, one statement each (the driver's executemany of plain tuples
    on SQLite: SQLAlchemy's per-row parameter handling costs more than the database's work)."""
    if conn.dialect.name != "sqlite":
        stmt = (
            t.update().where(t.c.id == bindparam("_id")).values({k: bindparam(k) for k in keys[1:]})
        )
        conn.execute(
            stmt, [{"_id": row[0], **dict(zip(keys[1:], row[1:], strict=True))} for row in rows]
        )
        return
    # on SQLite only JSON changes form on the way in: the driver stores floats, ints and
    # bools as SQLAlchemy's own coercions would (REAL affinity, booleans as 0/1)
    converts = [
        (i, p)
        for i, k in enumerate(keys)
        if isinstance(t.c[k].type, JSON) and (p := _bound(t.c[k].type, conn.dialect)) is not None
    ]

    def converted(row: Sequence[Any]) -> Sequence[Any]:
        if not converts:
            return row
        out = list(row)
        for i, p in converts:
            out[i] = p(out[i])
        return out

    # numbered parameters: each row's values go in as they are, ``id`` (?1) first
    assignments = ", ".join(f"{t.c[k].name} = ?{i + 1}" for i, k in enumerate(keys) if i)
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.executemany(f"UPDATE {t.name} SET {assignments} WHERE id = ?1", map(converted, rows))
    finally:
        cur.close()


def _bound(kind: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The bind processor of a column type, with its value for None computed once (a JSON
    column's None is the same text every row)."""
    proc = kind.bind_processor(dialect)
    if proc is None:
        return None
    for_none = proc(None)

    def bound(value: Any) -> Any:
        return for_none if value is None else proc(value)

    return bound


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (``Session.execute`` returns a ``CursorResult`` for
    them, typed as any ``Result``)."""
    return cast(CursorResult[Any], result).rowcount


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size`` (to keep ``IN (...)`` lists bounded)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def delete_experiment_rows(s: Session, experiment_uid: str) -> None:
    """Remove an experiment with its work units, attempts and submissions."""
    units = select(WorkUnitRow.id).where(WorkUnitRow.experiment_uid == experiment_uid)
    s.execute(delete(AttemptRow).where(AttemptRow.work_unit_id.in_(units)))
    s.execute(delete(WorkUnitRow).where(WorkUnitRow.experiment_uid == experiment_uid))
    s.execute(delete(SubmissionRow).where(SubmissionRow.experiment_uid == experiment_uid))
    s.execute(delete(ExperimentRow).where(ExperimentRow.uid == experiment_uid))
