"""How the reconcile loop calls the store: off the event loop, retried on transient errors.

The one rule for blocking I/O in the controller: every store call of the loop goes through
:class:`StoreCalls`, which runs it in a worker thread (``anyio.to_thread``), so a slow query or
a SQLite lock waiting out its busy timeout never stalls another cluster's worker, the lease
renewal or the wake-up listener. Driver I/O is asynchronous already (SSH, subprocesses); small
local file reads of the local driver stay inline, as they never block for long.

A *transient* error is one that goes away by itself: SQLite's "database is locked" after the
busy timeout, a PostgreSQL restart or a dropped connection. Those are retried with exponential
backoff, for up to ``patience`` seconds per call; anything else is raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

__all__ = ["StoreCalls", "is_transient"]

log = logging.getLogger("lxr.controller")

T = TypeVar("T")

# words that mark an operational error as passing (SQLite locks, connections going away)
_TRANSIENT_WORDS = (
    "database is locked",
    "database table is locked",
    "server closed the connection",
    "connection refused",
    "connection reset",
    "connection timed out",
    "could not connect",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection is closed",
    "consuming input failed",
    "ssl connection has been closed",
    "no connection to the server",
    "broken pipe",
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a store error that retrying can cure (a lock, a lost connection)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        text = str(exc).lower()
        return any(word in text for word in _TRANSIENT_WORDS)
    try:  # a psycopg error raised outside SQLAlchemy (NOTIFY, LISTEN)
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        return False
    return isinstance(exc, psycopg.OperationalError)


class StoreCalls:
    """Runs store calls in a worker thread, retrying transient errors with backoff.

    ``patience``: seconds a call keeps retrying before its error is raised (the caller's cycle
    then fails and is retried later). ``first_delay`` doubles up to ``max_delay``.
    """

    def __init__(
        self, *, patience: float = 60.0, first_delay: float = 0.2, max_delay: float = 5.0
    ) -> None:
        self.patience = patience
        self.first_delay = first_delay
        self.max_delay = max_delay
        #: when the current outage began (monotonic), None while the store answers
        self.outage_since: float | None = None
        self.retries = 0

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a thread; transient errors retried for ``patience`` s."""
        started = time.monotonic()
        delay = self.first_delay
        while True:
            try:
                result = await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
            except Exception as exc:
                if not is_transient(exc):
                    raise
                now = time.monotonic()
                if self.outage_since is None:
                    self.outage_since = now
                    log.warning("store unavailable, retrying: %s", _first_line(exc))
                self.retries += 1
                if now - started + delay > self.patience:
                    raise
                await anyio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            if self.outage_since is not None:
                log.warning(
                    "store available again after %.1fs", time.monotonic() - self.outage_since
                )
                self.outage_since = None
            return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
