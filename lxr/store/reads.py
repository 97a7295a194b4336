"""What ``lxr get`` and ``describe`` read, in plain SQL on the database driver.

A read command must start fast: the full :class:`~lxr.store.Store` costs SQLAlchemy's ORM,
pydantic and lxr's models at every start (~0.5 s on a quiet machine), a :class:`Reader` costs
``sqlite3``. On SQLite it talks to the file through :mod:`sqlite3`, on PostgreSQL through
:mod:`psycopg`, elsewhere through SQLAlchemy Core's connection (no ORM), with the same SQL.
Rows become the JSON form of the API objects (:mod:`lxr.store.jsonform`); ``full=True``
passes experiments and clusters through their pydantic models, so ``-o json``/``yaml`` print
exactly what the model holds.

The schema revision is checked with one query: a database at another revision is not read
here (:meth:`Reader.open` returns None, and the caller opens the full store, which migrates).
A SQLite file that does not exist is never created: the reader reads nothing, and says so
(:attr:`Reader.why`).
"""

from __future__ import annotations

import functools
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lxr.api.phases import WorkUnitPhase
from lxr.paths import make_private_database
from lxr.store.errors import NotFound
from lxr.store.jsonform import (
    ATTEMPT_COLUMNS,
    CLUSTER_COLUMNS,
    EXPERIMENT_COLUMNS,
    UNIT_COLUMNS,
    attempt_json,
    cluster_json,
    experiment_json,
    unit_json,
)
from lxr.store.revision import HEAD_REVISION

__all__ = [
    "ATTENTION_PHASES",
    "PAGE_SIZE",
    "UNIT_CELLS",
    "UNIT_NAME_CELLS",
    "UNIT_ORDER",
    "UNIT_SORT_VALUE",
    "UNIT_TABLE_CELLS",
    "UNIT_WIDE_CELLS",
    "EventInfo",
    "Reader",
    "core_connection",
    "missing_why",
    "sqlite_file",
]

#: work units read per query; the first page is what a user sees first
PAGE_SIZE = 1000
#: phases of work units that ``describe`` lists under "needing attention"
ATTENTION_PHASES = tuple(
    p.value for p in (WorkUnitPhase.FAILED, WorkUnitPhase.BACKOFF, WorkUnitPhase.UNKNOWN)
)


@dataclass(frozen=True)
class EventInfo:
    """A stored event."""

    id: int
    time: float
    type: str
    reason: str
    message: str
    kind: str
    name: str


def _cols(columns: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{c}" for c in columns)


_EXPERIMENTS_SQL = f"SELECT {_cols(EXPERIMENT_COLUMNS)} FROM experiments"
_CLUSTERS_SQL = f"SELECT {_cols(CLUSTER_COLUMNS)} FROM clusters"
_ATTENTION = (
    "experiment_uid = :uid AND (phase IN ("
    + ", ".join(f"'{p}'" for p in ATTENTION_PHASES)
    + ") OR disruptions > 0)"
)
_EVENT_COLUMNS = "id, time, type, reason, message, kind, name"

#: work-unit fields ``--sort-by`` can order in SQL (a JSON path's steps -> the SQL term):
#: each is of one type or null, so ``ORDER BY term IS NOT NULL, term, idx`` is the order of
#: ``lxr.cli.printing.sort_items`` (missing first, then by value, ties in index order)
UNIT_ORDER: dict[tuple[str, ...], str] = {
    ("metadata", "name"): "CAST(w.idx AS TEXT)",  # EXPERIMENT-INDEX, within one experiment
    ("spec", "index"): "w.idx",
    ("status", "phase"): "w.phase",
    ("status", "reason"): "w.reason",
    ("status", "message"): "w.message",
    ("status", "exitCode"): "w.exit_code",
    ("status", "failures"): "w.failures",
    ("status", "disruptions"): "w.disruptions",
}


# the last attempt of work unit w (the one a table's JOB names)
_LAST_ATTEMPT = "FROM attempts a WHERE a.work_unit_id = w.id ORDER BY a.number DESC LIMIT 1"

#: the cells of a work unit's row that a listing prints (``lxr.cli.output``'s table columns,
#: and ``-o name``), as SQL over work unit ``w`` with ``:exp`` its experiment's name: a table
#: of 100k work units builds no objects. ``args`` is the stored JSON text (the CLI writes it as
#: ``k=v``); ``ref`` is ``-o name``'s ``workunit/NAME``.
UNIT_CELLS = {
    "ref": "'workunit/' || :exp || '-' || CAST(w.idx AS TEXT)",
    "name": ":exp || '-' || CAST(w.idx AS TEXT)",
    "phase": "w.phase",
    "attempts": "CAST((SELECT count(*) FROM attempts a WHERE a.work_unit_id = w.id) AS TEXT)",
    "job": (
        "COALESCE((SELECT CASE WHEN a.job_id IS NULL OR a.job_id = '' THEN NULL"
        " WHEN a.array_index IS NULL THEN a.job_id"
        f" ELSE a.job_id || '[' || CAST(a.array_index AS TEXT) || ']' END {_LAST_ATTEMPT}), '-')"
    ),
    "exit": "COALESCE(CAST(w.exit_code AS TEXT), '-')",
    # for a waiting work unit, what it waits for (its message)
    "reason": (
        "CASE WHEN w.phase = 'Waiting' AND w.message <> '' THEN w.message"
        " ELSE COALESCE(w.reason, '') END"
    ),
    "args": "CAST(w.args AS TEXT)",
    "failures": "CAST(w.failures AS TEXT)",
    "disruptions": "CAST(w.disruptions AS TEXT)",
    "message": "COALESCE(w.message, '')",
}
#: the cells of ``lxr.cli.output``'s work-unit table, of its ``-o wide`` and of ``-o name``
UNIT_TABLE_CELLS = ("name", "phase", "attempts", "job", "exit", "reason", "args")
UNIT_WIDE_CELLS = (*UNIT_TABLE_CELLS, "failures", "disruptions", "message")
UNIT_NAME_CELLS = ("ref",)
#: the value each field of :data:`UNIT_ORDER` has in a work unit's JSON form (what a merge of
#: several experiments' ordered rows compares; :data:`UNIT_ORDER` orders within one)
UNIT_SORT_VALUE: dict[tuple[str, ...], str] = {
    ("metadata", "name"): UNIT_CELLS["name"],
    ("spec", "index"): "w.idx",
    **{path: term for path, term in UNIT_ORDER.items() if path[0] == "status"},
}


#: the fields of :data:`UNIT_ORDER` that hold text (ordered in code-point order, Python's)
_TEXT_ORDER = frozenset({("metadata", "name"), ("status", "phase"), ("status", "reason"),
                         ("status", "message")})  # fmt: skip
# JSON columns are read as their text: orjson parses it faster than a driver's json module
_JSON_COLUMNS = frozenset({"args", "env", "rank_exit_codes", "resources"})


def _select(columns: Sequence[str], table: str) -> list[str]:
    return [f"CAST({table}.{c} AS TEXT)" if c in _JSON_COLUMNS else f"{table}.{c}" for c in columns]


# a work unit and (joined) each of its attempts, one row each: the JSON form's columns
_UNIT_SELECT = (*_select(UNIT_COLUMNS, "w"), *_select(ATTEMPT_COLUMNS, "a"))
_JOIN_ATTEMPTS = "LEFT JOIN attempts a ON a.work_unit_id = w.id"
#: a query on the connection (and in the snapshot) of a stream: (SQL, parameters) -> rows
_Query = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]


def _records(
    pages: Iterator[tuple[Sequence[Any], _Query]],
) -> Iterator[tuple[Sequence[Any], list[Sequence[Any]]]]:
    """(work unit, its attempts) from rows of a work unit joined with each of its attempts,
    a work unit's rows one after another."""
    cut = len(UNIT_COLUMNS)
    unit: Sequence[Any] = ()
    attempts: list[Sequence[Any]] = []
    for rows, _ in pages:
        for r in rows:
            if not unit or r[0] != unit[0]:
                if unit:
                    yield unit, attempts
                unit, attempts = r[:cut], []
            if r[cut] is not None:  # (no attempt: the join's nulls)
                attempts.append(r[cut:])
    if unit:
        yield unit, attempts


def _attempts_of(
    query: _Query, units: Sequence[Sequence[Any]], table: bool
) -> dict[int, list[dict[str, Any]]]:
    """The attempts of the work units ``units`` (rows whose first cell is the id), by id, in
    their JSON form (``table``: only what a table shows)."""
    if not units:
        return {}
    ids = {f"w{i}": r[0] for i, r in enumerate(units)}
    found: dict[int, list[dict[str, Any]]] = {}
    for a in query(
        f"SELECT {', '.join(_select(ATTEMPT_COLUMNS, 'a'))} FROM attempts a WHERE work_unit_id "
        f"IN ({', '.join(':' + k for k in ids)}) ORDER BY work_unit_id, number",
        ids,
    ):
        found.setdefault(a[0], []).append(attempt_json(a, table=table))
    return found


def _unit_filter(uid: str, phase: str | None, index: int | None) -> tuple[str, dict[str, Any]]:
    """The conditions (after ``experiment_uid = :uid``) and parameters of a listing of one
    experiment's work units."""
    extra = ""
    params: dict[str, Any] = {"uid": uid}
    if phase:
        extra += " AND w.phase = :phase"
        params["phase"] = phase
    if index is not None:
        extra += " AND w.idx = :index"
        params["index"] = index
    return extra, params


def missing_why(url: str) -> str:
    """What a read says when there is no database at ``url`` yet."""
    from lxr.redaction import redact

    return f"no store at {redact(url)} yet: nothing has been applied (lxr apply creates it)"


def sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL (what the reader opens with :mod:`sqlite3`),
    else None: another database, an in-memory one, or options only SQLAlchemy reads."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("sqlite", "sqlite+pysqlite") or not rest.startswith("/"):
        return None
    path = rest[1:]
    if not path or path == ":memory:" or any(c in path for c in "?#%"):
        return None
    return path


_T = TypeVar("_T")


class _Sqlite:
    """One :mod:`sqlite3` connection in autocommit mode; :meth:`snapshot` is one read
    transaction (deferred: a reader never takes the write lock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        return self.db.execute(sql, params or {}).fetchall()

    #: what orders text as Python does (SQLite compares UTF-8 bytes: code-point order)
    text_order: str | None = ""

    def stream(
        self, sql: str, params: dict[str, Any], size: int
    ) -> Iterator[tuple[list[Any], _Query]]:
        """The rows of one query, ``size`` at a time, from one snapshot, each page with a
        function that queries the same snapshot; a connection of its own, so that streams of
        several experiments (merged) each hold theirs."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)

        def query(sql: str, params: dict[str, Any]) -> list[Any]:
            return db.execute(sql, params).fetchall()

        try:
            db.execute("BEGIN")
            cursor = db.execute(sql, params)
            while rows := cursor.fetchmany(size):
                yield rows, query
        finally:
            db.close()  # ends its read transaction

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


class _Core:
    """The same on another database (or the full store's engine), through SQLAlchemy Core's
    connection."""

    def __init__(self, engine: Any, *, owned: bool) -> None:
        from sqlalchemy import text

        self.engine = engine
        self._owned = owned
        self._text = text
        self._conn: Any = None
        #: what orders text as Python does (code points), None where it is not known
        self.text_order = {"sqlite": "", "postgresql": ' COLLATE "C"'}.get(engine.dialect.name)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        if self._conn is not None:
            return [tuple(r) for r in self._conn.execute(self._text(sql), params or {})]
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(self._text(sql), params or {})]

    def stream(
        self, sql: str, params: dict[str, Any], size: int
    ) -> Iterator[tuple[Sequence[Any], _Query]]:
        """The rows of one query, ``size`` at a time, from a server-side cursor, each page
        with a function that queries the same transaction."""
        with self.engine.connect() as conn:

            def query(sql: str, params: dict[str, Any]) -> list[Any]:
                return [tuple(r) for r in conn.execute(self._text(sql), params)]

            result = conn.execution_options(stream_results=True, max_row_buffer=size).execute(
                self._text(sql), params
            )
            for rows in result.partitions(size):
                yield rows, query

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.engine.connect() as conn:
            self._conn = conn
            try:
                yield
            finally:
                self._conn = None

    def close(self) -> None:
        if self._owned:
            self.engine.dispose()


class _Psycopg:
    """The same on PostgreSQL through :mod:`psycopg` itself: a read command then loads neither
    SQLAlchemy nor its result rows (~0.3-0.5 s of CPU at 100k work units). The SQL is the
    same, its ``:name`` parameters written as psycopg's ``%(name)s``."""

    text_order = ' COLLATE "C"'

    def __init__(self, conninfo: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.conninfo = conninfo
        self.db = psycopg.connect(conninfo, connect_timeout=10)
        self._in_snapshot = False

    @staticmethod
    @functools.cache
    def _sql(sql: str) -> str:
        return _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        try:
            return self.db.execute(self._sql(sql), params or {}).fetchall()
        finally:
            if not self._in_snapshot:
                self.db.rollback()  # ends the read's transaction: never idle in one

    def stream(
        self, sql: str, params: dict[str, Any], size: int
    ) -> Iterator[tuple[list[Any], _Query]]:
        """The rows of one query, ``size`` at a time, from a server-side cursor on a
        connection of its own, each page with a function that queries the same transaction."""
        db = self._psycopg.connect(self.conninfo, connect_timeout=10)

        def query(sql: str, params: dict[str, Any]) -> list[Any]:
            return db.execute(self._sql(sql), params).fetchall()

        def pages() -> Iterator[tuple[list[Any], _Query]]:
            try:
                # rows in binary: numbers need no text formatted by the server and parsed
                # here (100k work units with their attempts: 0.38-0.61 -> 0.23-0.26 s CPU
                # here), and come back as the same Python values
                with db.cursor(name="lxr_stream", binary=True) as cursor:
                    cursor.itersize = size
                    cursor.execute(self._sql(sql), params)
                    while rows := cursor.fetchmany(size):
                        yield rows, query
            finally:
                db.close()

        # the server works out the next page while this process writes out the last one
        # (a 100k-unit listing: ~1 s of the server's join, otherwise waited for page by page)
        yield from _read_ahead(pages())

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        self._in_snapshot = True
        try:
            yield
        finally:
            self._in_snapshot = False
            self.db.rollback()

    def close(self) -> None:
        self.db.close()


class _Failed:
    """An error of the thread that reads ahead, raised where its pages are taken."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


#: the end of what a thread that reads ahead read
_END = object()


def _read_ahead(pages: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """The items of ``pages``, read by a thread of its own up to ``depth`` items ahead of the
    caller (a database driver waits for the server without holding the GIL). Its errors are
    raised here; closing this iterator early stops the thread and closes ``pages``."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for page in pages:
                if not put(page):
                    return
            put(_END)
        except BaseException as e:  # handed to the reader, who raises it
            put(_Failed(e))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="lxr-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


#: a ``:name`` parameter of the SQL here (not a ``::type`` cast)
_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _psycopg_conninfo(url: str) -> str | None:
    """The libpq URI of a ``postgresql[+psycopg]://`` URL, None for any other driver."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgresql+psycopg"):
        return None
    return f"postgresql://{rest}"


def core_connection(engine: Any) -> _Core:
    """A reader's connection over an existing SQLAlchemy engine (the full store's)."""
    return _Core(engine, owned=False)


def _validated(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as its pydantic model dumps it (defaults, normal forms), for whole objects."""
    from lxr.api.resources import Cluster, Experiment

    model = Experiment if kind == "Experiment" else Cluster
    return model.model_validate(data).model_dump(mode="json", by_alias=True, exclude_none=True)


def _datetime(value: float) -> Any:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(value, tz=timezone.utc)


def _psycopg_reader(url: str) -> _Psycopg | None:
    """A psycopg connection for a PostgreSQL URL, None when it is not one or does not connect
    (SQLAlchemy's connection tries next, and the full store says why, redacted)."""
    conninfo = _psycopg_conninfo(url)
    if conninfo is None:
        return None
    try:
        return _Psycopg(conninfo)
    except Exception:
        return None


def _core_reader(url: str) -> _Core | None:
    from sqlalchemy import create_engine

    try:
        return _Core(create_engine(url), owned=True)
    except Exception:  # a URL it cannot read: the full store says why, redacted
        return None


class Reader:
    """Read-only access for ``get`` and ``describe``; see the module's docstring."""

    def __init__(self, conn: _Sqlite | _Core | _Psycopg | None, url: str, why: str = "") -> None:
        self._conn = conn
        self.url = url
        #: why nothing is there (no database yet), for messages; empty when there is one
        self.why = why
        #: whether a NotFound named :attr:`why` already
        self.raised = False

    @classmethod
    def open(cls, url: str) -> Reader | None:
        """A reader of the database at ``url``, or None when its schema is not this lxr's
        (open the full store to migrate it). A SQLite file that does not exist gives a
        reader of nothing."""
        path = sqlite_file(url)
        conn: _Sqlite | _Core | _Psycopg
        if path is not None:
            db = Path(path)
            if not db.exists():
                return cls.missing(url)
            make_private_database(db)
            conn = _Sqlite(path)
        elif url.partition(":")[0].startswith("sqlite"):
            return None  # in memory, or options for SQLAlchemy: the full store
        else:
            found_conn = _psycopg_reader(url) or _core_reader(url)
            if found_conn is None:
                return None
            conn = found_conn
        try:
            found = conn.rows("SELECT version_num FROM alembic_version")
        except Exception:  # no such table (a new file), or the driver's own words: the store says
            found = []
        if [tuple(r) for r in found] != [(HEAD_REVISION,)]:
            conn.close()
            return None
        return cls(conn, url)

    @classmethod
    def missing(cls, url: str) -> Reader:
        """A reader of nothing: there is no database at ``url`` yet."""
        return cls(None, url, missing_why(url))

    def close(self) -> None:
        """Release the connection."""
        if self._conn is not None:
            self._conn.close()

    # ------------------------------------------------------------------ helpers

    def _missing(self, what: str) -> NotFound:
        self.raised = True
        return NotFound(f"{what} not found ({self.why})")

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        assert self._conn is not None
        return self._conn.rows(sql, params)

    def _experiment_row(self, name: str) -> Any:
        if self._conn is None:
            raise self._missing(f"experiment {name!r}")
        found = self._rows(f"{_EXPERIMENTS_SQL} WHERE name = :name", {"name": name})
        if not found:
            raise NotFound(f"experiment {name!r} not found")
        return found[0]

    # ------------------------------------------------------------------ experiments

    def list_experiments(self, *, full: bool = False) -> list[dict[str, Any]]:
        """Every experiment by name, as JSON-form dicts (``full``: through the model)."""
        if self._conn is None:
            return []
        return [self._experiment(r, full) for r in self._rows(f"{_EXPERIMENTS_SQL} ORDER BY name")]

    def get_experiment(self, name: str, *, full: bool = False) -> dict[str, Any]:
        """Experiment ``name``; raises :class:`NotFound`."""
        return self._experiment(self._experiment_row(name), full)

    def experiment_uid(self, name: str) -> str:
        """The uid of experiment ``name``; raises :class:`NotFound`."""
        return str(self._experiment_row(name)[0])

    @staticmethod
    def _experiment(row: Any, full: bool) -> dict[str, Any]:
        if not full:
            return experiment_json(row)
        return _validated("Experiment", experiment_json(row, _datetime))

    # ------------------------------------------------------------------ work units

    @property
    def orders_in_sql(self) -> bool:
        """Whether :meth:`iter_work_units` and :meth:`iter_unit_rows` take ``order_by``: on
        SQLite, and on PostgreSQL with text in code-point order (``COLLATE "C"``, Python's)."""
        return self._conn is not None and self._conn.text_order is not None

    def _unit_query(
        self,
        select: Sequence[str],
        uid: str,
        phase: str | None,
        index: int | None,
        order_by: tuple[str, ...] | None,
        join: str = "",
    ) -> tuple[str, dict[str, Any]]:
        """The query of one experiment's work units (``w``), in index order or in the order
        of the field ``order_by`` (:data:`UNIT_ORDER`); ``join``: each with its attempts."""
        extra, params = _unit_filter(uid, phase, index)
        order = "w.idx"
        if order_by is not None:
            assert self._conn is not None and self._conn.text_order is not None
            term = UNIT_ORDER[order_by]
            text = term + self._conn.text_order if order_by in _TEXT_ORDER else term
            order = f"{term} IS NOT NULL, {text}, w.idx"
        if join:
            order += ", a.number"
        sql = (
            f"SELECT {', '.join(select)} FROM work_units w {join} "
            f"WHERE w.experiment_uid = :uid{extra} ORDER BY {order}"
        )
        return sql, params

    def iter_work_units(
        self,
        experiment: str,
        *,
        phase: str | None = None,
        index: int | None = None,
        page_size: int = PAGE_SIZE,
        order_by: tuple[str, ...] | None = None,
        table: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The work units of ``experiment`` in index order, as JSON-form dicts, streamed
        from one query (with their attempts) ``page_size`` rows at a time; raises
        :class:`NotFound` at once (before the first item is asked for). ``order_by`` (a key
        of :data:`UNIT_ORDER`, when :attr:`orders_in_sql`) orders them in SQL by that field
        instead. ``table``: attempts hold only what a table shows
        (:data:`~lxr.store.jsonform.TABLE_ATTEMPT_KEYS`)."""
        name, uid, records = self.iter_unit_records(
            experiment, phase=phase, index=index, page_size=page_size, order_by=order_by
        )
        return (
            unit_json(name, uid, unit, [attempt_json(a, table=table) for a in attempts])
            for unit, attempts in records
        )

    def iter_unit_records(
        self,
        experiment: str,
        *,
        phase: str | None = None,
        index: int | None = None,
        page_size: int = PAGE_SIZE,
        order_by: tuple[str, ...] | None = None,
    ) -> tuple[str, str, Iterator[tuple[Sequence[Any], list[Sequence[Any]]]]]:
        """The experiment's name and uid, and its work units as in :meth:`iter_work_units`
        but as rows: each work unit's (:data:`~lxr.store.jsonform.UNIT_COLUMNS`) with its
        attempts' (:data:`~lxr.store.jsonform.ATTEMPT_COLUMNS`). Raises :class:`NotFound`."""
        row = self._experiment_row(experiment)
        uid, name = row[0], row[1]
        sql, params = self._unit_query(_UNIT_SELECT, uid, phase, index, order_by, _JOIN_ATTEMPTS)
        assert self._conn is not None
        return name, uid, _records(self._conn.stream(sql, params, page_size))

    def iter_unit_rows(
        self,
        experiment: str,
        cells: Sequence[str],
        *,
        phase: str | None = None,
        index: int | None = None,
        order_by: tuple[str, ...] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Sequence[Sequence[Any]]]:
        """Pages of rows of the work units of ``experiment``, each row the ``cells`` named
        (keys of :data:`UNIT_CELLS`), in index order or (``order_by``, as for
        :meth:`iter_work_units`) in that field's order, with its value
        (:data:`UNIT_SORT_VALUE`) last in each row; one query streamed from one snapshot.
        Raises :class:`NotFound` at once."""
        row = self._experiment_row(experiment)
        select = [UNIT_CELLS[c] for c in cells]
        if order_by is not None:
            select.append(UNIT_SORT_VALUE[order_by])
        sql, params = self._unit_query(select, row[0], phase, index, order_by)
        params["exp"] = row[1]
        assert self._conn is not None
        return (rows for rows, _ in self._conn.stream(sql, params, page_size))

    def work_units_needing_attention(
        self, experiment: str, limit: int = 50
    ) -> tuple[list[dict[str, Any]], int]:
        """Up to ``limit`` work units that failed, back off, are unknown or were disrupted
        (JSON form), and how many there are in all (counted in SQL)."""
        row = self._experiment_row(experiment)
        uid, name = row[0], row[1]
        params = {"uid": uid, "limit": limit}
        with self._conn.snapshot():  # type: ignore[union-attr]
            ((total,),) = self._rows(f"SELECT count(*) FROM work_units WHERE {_ATTENTION}", params)
            rows = self._rows(
                f"SELECT {_cols(UNIT_COLUMNS)} FROM work_units WHERE {_ATTENTION} "
                "ORDER BY idx LIMIT :limit",
                params,
            )
            attempts = _attempts_of(self._rows, rows, False)
        return [unit_json(name, uid, r, attempts.get(r[0], [])) for r in rows], int(total)

    # ------------------------------------------------------------------ clusters

    def list_clusters(self, *, full: bool = False) -> list[dict[str, Any]]:
        """Every cluster by name, ``local`` included, with its conditions."""
        rows: dict[str, Any] = {"local": None}
        statuses: dict[str, Any] = {}
        if self._conn is not None:
            with self._conn.snapshot():
                rows.update((r[0], r) for r in self._rows(_CLUSTERS_SQL))
                statuses = dict(self._rows("SELECT cluster, conditions FROM cluster_status"))
        return [self._cluster(rows[k], statuses.get(k), full) for k in sorted(rows)]

    def get_cluster(self, name: str, *, full: bool = False) -> dict[str, Any]:
        """Cluster ``name`` (``local`` exists unless overridden); raises :class:`NotFound`."""
        if self._conn is None:
            if name == "local":
                return self._cluster(None, None, full)
            raise self._missing(f"cluster {name!r}")
        with self._conn.snapshot():
            found = self._rows(f"{_CLUSTERS_SQL} WHERE name = :name", {"name": name})
            if not found and name != "local":
                stored = self._rows("SELECT name FROM clusters WHERE name != 'local'")
                known = ", ".join(["local", *sorted(r[0] for r in stored)])
                raise NotFound(f"cluster {name!r} not found (known: {known})")
            status = self._rows(
                "SELECT conditions FROM cluster_status WHERE cluster = :name", {"name": name}
            )
        return self._cluster(found[0] if found else None, status[0][0] if status else None, full)

    @staticmethod
    def _cluster(row: Any, conditions: Any, full: bool) -> dict[str, Any]:
        if not full:
            return cluster_json(row, conditions)
        return _validated("Cluster", cluster_json(row, conditions, _datetime))

    # ------------------------------------------------------------------ events

    def list_events(
        self, experiment: str | None = None, *, after_id: int = 0, limit: int = 200
    ) -> list[EventInfo]:
        """Events, oldest first; with ``experiment``, only that experiment's (newest ``limit``)."""
        if self._conn is None:
            if experiment:
                raise self._missing(f"experiment {experiment!r}")
            return []
        where = "id > :after"
        params: dict[str, Any] = {"after": after_id, "limit": limit}
        if experiment:
            where += " AND experiment_uid = :uid"
            params["uid"] = self.experiment_uid(experiment)
        return self._events(where, params)

    def cluster_events(self, name: str, limit: int = 25) -> list[EventInfo]:
        """The newest ``limit`` events about cluster ``name``, oldest first."""
        if self._conn is None:
            return []
        return self._events("kind = 'Cluster' AND name = :name", {"name": name, "limit": limit})

    def _events(self, where: str, params: dict[str, Any]) -> list[EventInfo]:
        rows = self._rows(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} ORDER BY id DESC LIMIT :limit",
            params,
        )
        return [EventInfo(*r) for r in reversed(rows)]

    def experiments_on(self, cluster: str) -> list[str]:
        """Names of the experiments that use ``cluster``, sorted."""
        if self._conn is None:
            return []
        found = self._rows("SELECT name FROM experiments WHERE cluster = :c", {"c": cluster})
        return sorted(r[0] for r in found)
