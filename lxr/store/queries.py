"""Query pieces shared by the store's modules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice
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
    "update_by_id",
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


#: from this many rows on, PostgreSQL updates go through COPY and a temporary table
_COPY_ROWS = 200


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


def update_by_id(
    s: Session, table: type[Base], keys: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """``UPDATE table SET ... WHERE id = ...`` for every row: ``keys`` name the columns of each
    row's values, the first of them ``id``. As the driver's own executemany of plain tuples:
    at 100k rows SQLAlchemy's per-row parameter handling (and a dict per row) cost more than
    the database's work. A column whose type converts values (JSON) goes through that type's
    bind processor, as SQLAlchemy would."""
    assert keys[0] == "id", keys
    t = table.__table__
    conn = s.connection()
    sqlite = conn.dialect.name == "sqlite"
    # on SQLite only JSON changes form on the way in: the driver stores floats, ints and
    # bools as SQLAlchemy's own coercions would (REAL affinity, booleans as 0/1)
    procs = [
        (i, _bound(t.c[k].type, conn.dialect))
        for i, k in enumerate(keys)
        if not sqlite or isinstance(t.c[k].type, JSON)
    ]
    converts = [(i, p) for i, p in procs if p is not None]

    def converted(row: Sequence[Any]) -> Sequence[Any]:
        if not converts:
            return row
        out = list(row)
        for i, p in converts:
            out[i] = p(out[i])
        return out

    if sqlite:
        # numbered parameters: each row's values go in as they are, ``id`` (?1) first
        assignments = ", ".join(f"{t.c[k].name} = ?{i + 1}" for i, k in enumerate(keys) if i)
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.executemany(
                f"UPDATE {t.name} SET {assignments} WHERE id = ?1", map(converted, rows)
            )
        finally:
            cur.close()
        return
    # the first rows tell whether there are enough for COPY; the rest stream (not held)
    stream = iter(rows)
    head = list(islice(stream, _COPY_ROWS))
    if not head:
        return
    names = ", ".join(t.c[k].name for k in keys[1:])
    if conn.dialect.name == "postgresql" and len(head) >= _COPY_ROWS:
        # psycopg sends an executemany one statement per row (100k rows: tens of seconds):
        # COPY the new values into a temporary table, then one UPDATE ... FROM it
        texts = [(i, f) for i, k in enumerate(keys) if (f := _copy_text(t.c[k].type)) is not None]
        temp = f"lxr_update_{t.name}"
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute(
                f"CREATE TEMPORARY TABLE {temp} ON COMMIT DROP AS "
                f"SELECT id, {names} FROM {t.name} WITH NO DATA"
            )
            with cur.copy(f"COPY {temp} (id, {names}) FROM STDIN") as copy:
                for row in chain(head, stream):
                    if texts:
                        row = list(row)
                        for i, f in texts:
                            row[i] = f(row[i])
                    copy.write_row(row)
            sets = ", ".join(f"{t.c[k].name} = u.{t.c[k].name}" for k in keys[1:])
            cur.execute(f"UPDATE {t.name} SET {sets} FROM {temp} u WHERE {t.name}.id = u.id")
            cur.execute(f"DROP TABLE {temp}")
        return
    stmt = t.update().where(t.c.id == bindparam("_id")).values({k: bindparam(k) for k in keys[1:]})
    conn.execute(
        stmt,
        [
            {"_id": row[0], **dict(zip(keys[1:], row[1:], strict=True))}
            for row in chain(head, stream)
        ],
    )


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
