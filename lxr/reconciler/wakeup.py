"""Waking a running controller at once when desired state changes (no slow DB polling).

The controller binds a Unix datagram socket and records its path with its lease; ``lxr apply``
(or a launch script) sends one datagram to it after committing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import anyio
from anyio.abc import UNIXDatagramSocket

__all__ = ["WakeupListener", "notify"]


def notify(address: str | None) -> bool:
    """Wake the controller listening at ``address``; False if none listens there."""
    if not address:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"wake", address)
        except OSError:
            return False
    return True


class WakeupListener:
    """The controller's end: ``await wait(timeout)`` returns True when woken."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: UNIXDatagramSocket | None = None

    async def __aenter__(self) -> WakeupListener:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sock = await anyio.create_unix_datagram_socket(local_path=str(self.path))
        os.chmod(self.path, 0o600)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sock is not None:
            await self._sock.aclose()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 - a deadline, not a cancel
        """Sleep up to ``timeout`` seconds; True if a wake-up arrived (all pending are drained)."""
        assert self._sock is not None
        woke = False
        with anyio.move_on_after(max(0.0, timeout)):
            await self._sock.receive()
            woke = True
        if woke:  # coalesce a burst of wake-ups into one cycle
            with anyio.move_on_after(0):
                while True:
                    await self._sock.receive()
        return woke
