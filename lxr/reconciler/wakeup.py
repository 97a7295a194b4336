"""Waking a running controller at once when desired state changes (no slow DB polling).

Two channels, both best-effort (the controller's resync period is the fallback):

- a Unix datagram socket, whose path the controller records with its lease: reaches a
  controller on this host, whatever the database;
- with PostgreSQL, ``NOTIFY lxr_wakeup``: reaches a controller on any host sharing the database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from lxr.reconciler.sockets import free_socket_path

if TYPE_CHECKING:
    from lxr.store import Store

__all__ = ["CHANNEL", "SocketService", "WakeupListener", "notify", "wake_controller"]

#: the PostgreSQL NOTIFY channel
CHANNEL = "lxr_wakeup"

log = logging.getLogger("lxr.wakeup")


def notify(address: str | None) -> bool:
    """Wake the controller listening at the Unix socket ``address``; False if none listens."""
    if not address:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"wake", address)
        except OSError:
            return False
    return True


def wake_controller(store: Store) -> str | None:
    """Wake whichever controller holds the lease, by every channel that can reach it.
    Returns its holder id, or None when no controller is running."""
    lease = store.lease()
    if lease is None:
        return None
    notify(lease[1])
    store.notify(CHANNEL)
    return lease[0]


class SocketService:
    """A controller's Unix socket at ``path`` (mode 0600) and the tasks serving it, for the
    length of an ``async with`` block; the socket file is removed at its end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tg: TaskGroup | None = None

    async def _serve_in(self) -> TaskGroup:
        """The task group for the serving tasks, once the socket is bound at ``path``."""
        os.chmod(self.path, 0o600)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self._tg

    async def __aexit__(self, *exc: object) -> None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class WakeupListener(SocketService):
    """The controller's end: ``await wait(timeout)`` returns True when woken.

    Listens on the Unix socket ``path`` and, when ``postgres_url`` is given, on the
    PostgreSQL channel :data:`CHANNEL` over a connection of its own.
    """

    def __init__(self, path: Path, postgres_url: str | None = None) -> None:
        super().__init__(path)
        self.postgres_url = postgres_url
        self._woken = anyio.Event()
        self._external = False  # a wake-up came from outside (not a poke)

    async def __aenter__(self) -> WakeupListener:
        sock = await anyio.create_unix_datagram_socket(local_path=free_socket_path(self.path))
        tg = await self._serve_in()
        tg.start_soon(self._from_socket, sock)
        if self.postgres_url:
            await tg.start(self._from_postgres, self.postgres_url)
        return self

    async def _from_socket(self, sock) -> None:
        async with sock:
            while True:
                await sock.receive()
                self._external = True
                self._woken.set()

    async def _from_postgres(self, url: str, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        import psycopg

        started = False
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 1.0
                    if not started:
                        started = True
                        task_status.started()
                    async for _ in conn.notifies():
                        self._external = True
                        self._woken.set()
            except psycopg.Error as exc:
                # never fatal: the resync period still drives the controller
                log.warning("LISTEN %s failed (retrying in %.0fs): %s", CHANNEL, delay, exc)
                if not started:
                    started = True
                    task_status.started()
                await anyio.sleep(delay)
                delay = min(delay * 2, 60.0)

    def wake(self) -> None:
        """A wake-up from inside this process that counts as one from outside: this
        controller itself changed desired state (a request it served)."""
        self._external = True
        self._woken.set()

    def poke(self) -> None:
        """End the current :meth:`wait` early from inside this process (it returns False,
        unless a wake-up from outside came too)."""
        self._woken.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 - a deadline, not a cancel
        """Sleep up to ``timeout`` seconds; True if a wake-up arrived (a burst counts once)."""
        with anyio.move_on_after(max(0.0, timeout)):
            await self._woken.wait()
        woke = self._external
        if self._woken.is_set():
            self._woken = anyio.Event()
            self._external = False
        return woke
