"""The controller's request socket: work another process of this host hands to a running
controller, which has everything imported and its store open (``lxr apply``: see
:mod:`lxr.cli.applyclient`), so that process need not import the models, the ORM and the
scheduler plugins first.

One request per connection: the client sends a JSON object and shuts its side down; the
controller runs :data:`Handler` in a worker thread and answers one JSON object, then closes.
The socket is a Unix stream socket beside the wake-up socket
(:func:`~lxr.reconciler.sockets.request_socket_path`), mode 0600 in a 0700 directory, and
only peers of this user are served (``SO_PEERCRED``). What the answer holds is the handler's
business; ``{"fallback": reason}`` tells the client to do the work itself, as it would with no
controller at all (this module answers so when the handler fails).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from lxr.reconciler.sockets import free_socket_path
from lxr.reconciler.wakeup import SocketService

__all__ = ["MAX_REQUEST_BYTES", "Handler", "RequestServer"]

#: a request larger than this is refused (an apply's file is at most 4 MiB, JSON-escaped)
MAX_REQUEST_BYTES = 64 * 1024 * 1024
#: how long a client may take to send its request
_RECEIVE_SECONDS = 30.0
#: how long the answer may take to go out once the request was served
_SEND_SECONDS = 5.0

#: serves one request: its JSON object in, the answer's out
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

log = logging.getLogger("lxr.handoff")


class RequestServer(SocketService):
    """``async with RequestServer(path, handler):`` serves ``path`` until the block ends."""

    def __init__(self, path: Path, handler: Handler) -> None:
        super().__init__(path)
        self.handler = handler

    async def __aenter__(self) -> RequestServer:
        listener = await anyio.create_unix_listener(free_socket_path(self.path))
        (await self._serve_in()).start_soon(self._listen, listener)
        return self

    async def _listen(self, listener: SocketListener) -> None:
        async with listener:  # serve() alone leaves the listening socket open
            await listener.serve(self._serve)

    async def _serve(self, stream: SocketStream) -> None:
        async with stream:
            try:
                if not _same_user(stream):
                    return
                request = await _receive(stream)
                if request is None:
                    return
                try:
                    answer = await self.handler(request)
                except Exception as exc:  # the client does the work itself, in its own words
                    log.warning("request %s failed: %s", request.get("command"), exc)
                    log.debug("request error", exc_info=True)
                    answer = {"fallback": f"the controller failed: {exc}"}
                # applied: the answer goes out even if the controller is stopping now (else
                # the command would apply the file again itself)
                with anyio.CancelScope(shield=True), anyio.move_on_after(_SEND_SECONDS):
                    await stream.send(json.dumps(answer).encode())
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                log.debug("request connection lost: %s", exc)


def _same_user(stream: SocketStream) -> bool:
    """True when the peer runs as this process's user (Linux: ``SO_PEERCRED``)."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:  # elsewhere the 0700 directory is the guard
        return True
    raw = stream.extra(SocketAttribute.raw_socket)
    _pid, uid, _gid = struct.unpack("3i", raw.getsockopt(socket.SOL_SOCKET, peercred, 12))
    return uid == os.getuid()


async def _receive(stream: SocketStream) -> dict[str, Any] | None:
    """The request: everything up to the client's end of stream, as a JSON object."""
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(_RECEIVE_SECONDS):
        while True:
            try:
                chunk = await stream.receive()
            except anyio.EndOfStream:
                break
            size += len(chunk)
            if size > MAX_REQUEST_BYTES:
                log.warning("request over %d bytes refused", MAX_REQUEST_BYTES)
                return None
            chunks.append(chunk)
        try:
            request = json.loads(b"".join(chunks))
        except ValueError as exc:
            log.warning("unreadable request refused: %s", exc)
            return None
        return request if isinstance(request, dict) else None
    log.warning("request not received within %.0fs", _RECEIVE_SECONDS)
    return None
