"""The store's engine: one SQLAlchemy engine per store, SQLite tuned for several processes
(WAL, ``BEGIN IMMEDIATE``), the schema brought to the newest Alembic revision, and sessions
that nest inside :meth:`StoreEngine.transaction`."""

from __future__ import annotations

import contextvars
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from lxr.paths import default_database_url, make_private_database
from lxr.store.errors import LeaseLost
from lxr.store.revision import HEAD_REVISION
from lxr.store.tables import LeaseRow

__all__ = ["HEAD_REVISION", "MIGRATIONS", "StoreEngine"]

_S = TypeVar("_S", bound="StoreEngine")

#: the Alembic script directory
MIGRATIONS = Path(__file__).parent / "migrations"


class StoreEngine:
    """Connections and transactions; the base of :class:`~lxr.store.Store`."""

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = url or default_database_url()
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                make_private_database(Path(parsed.database))
            kwargs["connect_args"] = {"timeout": 30}
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._outer: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
            f"lxr-store-tx-{id(self)}", default=None
        )
        # (lease name, holder, epoch) that every transaction of this view checks first
        self._fence: tuple[str, str, int] | None = None
        if migrate:
            self.migrate()

    def schema_revision(self) -> str | None:
        """The schema revision the database records (one plain query), None before the first
        migration."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):  # no such table: an empty database
            return None

    def migrate(self) -> None:
        """Bring the schema to the newest revision (no-op when it is there). Alembic, slow to
        import, is imported only when there is something to migrate."""
        if self.schema_revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error. Inside
        :meth:`transaction` (same thread or task), the enclosing transaction is used."""
        outer = self._outer.get()
        if outer is not None:
            yield outer
            return
        with self._sessions.begin() as session:
            if self._fence is not None:
                self._check_fence(session)
            yield session

    def fenced(self: _S, holder: str, epoch: int, name: str = "controller") -> _S:
        """A view of this store (same engine) whose every transaction first checks that the
        lease ``name`` still has ``holder`` and ``epoch``, raising
        :class:`~lxr.store.errors.LeaseLost` if not: the controller's writes are fenced.

        The check is in the transaction it guards: on SQLite that transaction holds the write
        lock from its start (``BEGIN IMMEDIATE``); on PostgreSQL it holds a share lock on the
        lease row (``FOR SHARE``), which a takeover's ``FOR UPDATE`` waits for. So no write of
        a stale leader lands after another controller took the lease."""
        view = copy.copy(self)
        view._fence = (name, holder, int(epoch))
        return view

    def _check_fence(self, s: Session) -> None:
        assert self._fence is not None
        name, holder, epoch = self._fence
        q = select(LeaseRow.holder, LeaseRow.epoch).where(LeaseRow.name == name)
        if not self.is_sqlite:
            q = q.with_for_update(read=True)
        row = s.execute(q).one_or_none()
        if row is None or (row.holder, row.epoch) != (holder, epoch):
            now = "nobody" if row is None else f"{row.holder} (epoch {row.epoch})"
            raise LeaseLost(f"lease {name!r} epoch {epoch} of {holder} is held by {now} now")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make every write inside (e.g. several ``apply`` calls) one transaction: a launch
        script that fails midway leaves nothing behind."""
        with self._sessions.begin() as session:
            token = self._outer.set(session)
            try:
                yield
            finally:
                self._outer.reset(token)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    def notify(self, channel: str) -> None:
        """``NOTIFY channel`` on PostgreSQL, so controllers on other hosts wake up (no-op on
        SQLite, where the Unix socket of :mod:`lxr.reconciler.wakeup` does the job)."""
        if self.is_sqlite:
            return
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})

    def postgres_conninfo(self) -> str | None:
        """The database URL as libpq takes it (for LISTEN), or None when not PostgreSQL."""
        url = make_url(self.url)
        if url.get_backend_name() != "postgresql":
            return None
        return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # take the write lock up front: a deferred transaction that upgrades to a writer can
        # fail with "database is locked" without waiting for busy_timeout
        conn.exec_driver_sql("BEGIN IMMEDIATE")
