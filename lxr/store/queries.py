"""Query pieces shared by the store's modules."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    CursorResult,
    Float,
    Integer,
    Result,
    String,
    bindparam,
    delete,
    select,
    update,
)
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
    """How a value of a column of type ``kind`` goes into PostgreSQL as text: JSON as its text
    (SQL NULL or JSON ``null`` for None, as the type says), anything else as it is."""
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


def _uniform(kind: Any, values: Sequence[Any]) -> bool:
    """Whether a column's values are one value for the whole batch. A JSON column's are
    compared as given only when all are None (``True == 1`` in Python, not in JSON); the
    caller compares their text otherwise."""
    if isinstance(kind, JSON):
        return values[0] is None and _same(values)
    return _same(values)


def _escaped(text: str) -> str:
    """``text`` as it goes between the double quotes of an array literal's element."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _array_element(value: Any) -> str:
    """One element of a PostgreSQL array literal (``{...}``): NULL, a boolean, a number as
    Python prints it (``repr`` of a float reads back as the same double), or text quoted."""
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, (int, float)):
        return repr(value)
    return f'"{_escaped(str(value))}"'


def _array_literal(kind: Any, values: Sequence[Any]) -> str:
    """A column's values as one PostgreSQL array literal: one parameter, parsed by the server
    (a driver's list of 100k values is dumped element by element in Python, ~0.17 s)."""
    if None not in values:  # the common cases, printed by map and join in C
        if isinstance(kind, (Integer, Float)) and not isinstance(kind, Boolean):
            return "{" + ",".join(map(repr, values)) + "}"
        if isinstance(kind, String) and all(map(str.__instancecheck__, values)):
            if "\\" in (whole := "\0".join(values)) or '"' in whole:  # (one string to search)
                values = list(map(_escaped, values))
            return '{"' + '","'.join(values) + '"}'
    return "{" + ",".join(map(_array_element, values)) + "}"


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
    processor (its text on PostgreSQL), as SQLAlchemy would.

    From :data:`_SET_ROWS` rows on (SQLite and PostgreSQL) it is one statement per table,
    not one per row: a column the whole batch sets to one value is a parameter bound once
    (a pass where every task ended writes the same phase, reason and exit code 100k times).
    The columns that vary come, on PostgreSQL, as one array parameter each (``unnest``),
    on SQLite from a temporary table filled by the driver's executemany, joined by id.
    ``rarely`` names indexed columns whose value seldom changes (an attempt's job id): on
    SQLite, which rewrites the index entries of every indexed column it sets, they are set
    by a second statement only where they differ."""
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

    def bound(k: str, value: Any) -> Any:
        proc = processor(t.c[k].type)
        return value if proc is None else proc(value)

    # every column set to one value, as bound; a column the batch sets alike is found before
    # its values are converted (100k JSON nulls are one null, not 100k calls of the encoder)
    sets = {k: bound(k, v) for k, v in fixed.items()}
    values: dict[str, Sequence[Any]] = {"id": ids}
    for k in keys[1:]:
        col = columns[k]  # (a list made on demand: one alike is let go at once)
        if dialect == "sqlite" and k in rarely:  # set only where it differs, even if alike
            values[k] = col if (proc := processor(t.c[k].type)) is None else list(map(proc, col))
            continue
        if _uniform(t.c[k].type, col):
            sets[k] = bound(k, col[0])
            continue
        if (proc := processor(t.c[k].type)) is not None:
            col = list(map(proc, col))
            if _same(col):
                sets[k] = col[0]
                continue
        values[k] = col
    raw: Any = conn.connection.driver_connection
    cur = raw.cursor()
    try:
        if dialect == "postgresql":
            _update_postgresql(cur, t, conn.dialect, values, sets)
        else:
            _update_sqlite(cur, t, values, sets, [k for k in values if k in rarely])
    finally:
        cur.close()


def _update_postgresql(
    cur: Any, t: Any, dialect: Any, values: Mapping[str, Sequence[Any]], sets: Mapping[str, Any]
) -> None:
    """One UPDATE on PostgreSQL: each varying column (``values``, ``id`` first) one array
    parameter, read by ``unnest`` and joined by id; only ids varying: ``id = ANY(...)``."""
    assigns = [f"{t.c[k].name} = {_param(t.c[k].type, '%s', 'postgresql')}" for k in sets]
    varying = [k for k in values if k != "id"]
    assigns += [f"{t.c[k].name} = u.{t.c[k].name}" for k in varying]
    if not assigns:
        return
    arrays = [_array_literal(t.c[k].type, col) for k, col in values.items()]
    if not varying:
        sql = f"UPDATE {t.name} SET {', '.join(assigns)} WHERE id = ANY(%s::INTEGER[])"
    else:
        kinds = ", ".join(f"%s::{t.c[k].type.compile(dialect=dialect)}[]" for k in values)
        names = ", ".join(t.c[k].name for k in values)
        sql = (
            f"UPDATE {t.name} SET {', '.join(assigns)} FROM unnest({kinds}) AS u({names}) "
            f"WHERE {t.name}.id = u.id"
        )
    cur.execute(sql, [*sets.values(), *arrays])


def _update_sqlite(
    cur: Any,
    t: Any,
    values: Mapping[str, Sequence[Any]],
    sets: Mapping[str, Any],
    guarded: Sequence[str],
) -> None:
    """One UPDATE on SQLite: the varying columns (``values``, ``id`` first) from a temporary
    table filled by executemany, joined by id; only ids varying: one JSON parameter (3.38 on).
    A ``guarded`` column is set by a second statement, only where it differs."""
    assigns = [f"{t.c[k].name} = ?" for k in sets]
    varying = [t.c[k].name for k in values]  # id first
    if len(varying) == 1 and _SQLITE_JSON:
        if assigns:
            cur.execute(
                f"UPDATE {t.name} SET {', '.join(assigns)} "
                "WHERE id IN (SELECT value FROM json_each(?))",
                [*sets.values(), json.dumps(list(values["id"]))],
            )
        return
    temp = f"lxr_set_{t.name}"
    cur.execute(f"CREATE TEMP TABLE {temp} ({', '.join(['id INTEGER PRIMARY KEY', *varying[1:]])})")
    feed = zip(*values.values(), strict=True)
    cur.executemany(f"INSERT INTO {temp} VALUES ({', '.join('?' * len(varying))})", feed)
    assigns += [f"{n} = u.{n}" for n in varying[1:] if n not in guarded]
    where = f"FROM {temp} AS u WHERE {t.name}.id = u.id"
    if assigns:
        cur.execute(f"UPDATE {t.name} SET {', '.join(assigns)} {where}", list(sets.values()))
    for n in guarded:
        cur.execute(f"UPDATE {t.name} SET {n} = u.{n} {where} AND {t.name}.{n} IS NOT u.{n}")
    cur.execute(f"DROP TABLE {temp}")


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
