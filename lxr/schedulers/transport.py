"""The transport seam: every command lxr runs on a cluster, and every file it writes there.

:class:`LocalTransport` runs on this machine (the local cluster, or a login node lxr runs on);
:class:`~lxr.schedulers.ssh.SSHTransport` runs the same over one pooled SSH connection.
Commands are argv lists, never shell lines.
"""

from __future__ import annotations

import abc
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from lxr.schedulers.ratelimit import TokenBucket

__all__ = [
    "CONNECT_REASONS",
    "CommandObserver",
    "CommandResult",
    "ConnectError",
    "LocalTransport",
    "Transport",
    "TransportError",
    "write_atomic",
]

#: called after each command with (command name, seconds, succeeded)
CommandObserver = Callable[[str, float, bool], None]


class TransportError(Exception):
    """The command could not be run at all (connection lost, timeout)."""


#: why a cluster cannot be reached: the ``reason`` of :class:`ConnectError` (a closed set,
#: also the ``reason`` label of ``lxr_cluster_connect_errors_total``)
CONNECT_REASONS: tuple[str, ...] = (
    "ClientConfig",
    "ConnectionRefused",
    "ConnectionLost",
    "HostKeyMismatch",
    "HostKeyUnknown",
    "HostNotFound",
    "NetworkError",
    "PermissionDenied",
    "SSHError",
    "Timeout",
)


class ConnectError(TransportError):
    """The cluster's login node cannot be reached: ``reason`` is one of
    :data:`CONNECT_REASONS`, the message names the cause (``connection refused to
    127.0.0.1:1``, ``host key mismatch for ...``, ``permission denied (publickey) ...``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it exited."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0

    def describe(self) -> str:
        """The command line and its error output, for messages."""
        err = self.stderr.strip() or self.stdout.strip() or "(no output)"
        return f"`{shlex.join(self.argv)}` exited {self.returncode}: {err[-2000:]}"


class Transport(abc.ABC):
    """Runs commands and moves files on one cluster."""

    def __init__(
        self, *, bucket: TokenBucket | None = None, observer: CommandObserver | None = None
    ) -> None:
        self.bucket = bucket
        self.observer = observer
        self.calls = 0  # scheduler commands run (file operations are not counted)

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - applied inside with fail_after
        rate_limited: bool = True,
        name: str | None = None,
    ) -> CommandResult:
        """Run ``argv``; raise :class:`TransportError` if it cannot be run or times out.
        ``name`` is the command's name for the observer (default: ``argv[0]``'s basename)."""
        if rate_limited and self.bucket is not None:
            await self.bucket.acquire()
        self.calls += 1
        started = time.monotonic()
        ok = False
        try:
            with anyio.fail_after(timeout):
                result = await self._run(tuple(argv), input)
            ok = result.ok
            return result
        except TimeoutError as exc:
            raise TransportError(f"`{shlex.join(argv)}` timed out after {timeout:.0f}s") from exc
        finally:
            if self.observer is not None:
                self.observer(name or os.path.basename(argv[0]), time.monotonic() - started, ok)

    @abc.abstractmethod
    async def _run(self, argv: tuple[str, ...], input: bytes | None) -> CommandResult: ...

    @abc.abstractmethod
    async def write_files(self, files: Mapping[str, bytes], mode: int = 0o644) -> None:
        """Write files atomically, creating parent directories (mode 0700) as needed."""

    async def run_with_files(
        self,
        files: Mapping[str, bytes],
        argv: Sequence[str],
        *,
        mode: int = 0o644,
        timeout: float = 60.0,  # noqa: ASYNC109 - passed on to run
    ) -> CommandResult:
        """Write ``files`` as :meth:`write_files` does, then run ``argv`` (which may refer to
        them): what a submission is. Failing to write raises (:class:`TransportError` or
        ``OSError``), so a non-zero result is always ``argv``'s own. Counted, rate-limited and
        observed as ``argv``. Here in two steps; over SSH in one round trip."""
        await self.write_files(files, mode)
        return await self.run(argv, timeout=timeout)

    @abc.abstractmethod
    async def read_file(self, path: str) -> bytes:
        """A file's content; raises FileNotFoundError."""

    @abc.abstractmethod
    def follow(self, path: str) -> AsyncIterator[bytes]:
        """A file's content, then what is appended to it (like ``tail -f``), until cancelled."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class LocalTransport(Transport):
    """Commands as subprocesses of this machine."""

    async def _run(self, argv: tuple[str, ...], input: bytes | None) -> CommandResult:
        started = time.monotonic()
        try:
            proc = await anyio.run_process(
                list(argv), input=input, check=False, stdin=None if input else subprocess.DEVNULL
            )
        except FileNotFoundError as exc:
            return CommandResult(argv, 127, "", str(exc), time.monotonic() - started)
        return CommandResult(
            argv,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
            time.monotonic() - started,
        )

    async def write_files(self, files: Mapping[str, bytes], mode: int = 0o644) -> None:
        for path, data in files.items():
            write_atomic(_local(path), data, mode)

    async def read_file(self, path: str) -> bytes:
        return await anyio.Path(_local(path)).read_bytes()

    async def follow(self, path: str) -> AsyncIterator[bytes]:
        target = anyio.Path(_local(path))
        offset = 0
        while True:
            if await target.exists():
                async with await anyio.open_file(target, "rb") as fh:
                    await fh.seek(offset)
                    chunk = await fh.read()
                if chunk:
                    offset += len(chunk)
                    yield chunk
                    continue
            await anyio.sleep(0.5)


def _local(path: str) -> Path:
    return Path(path).expanduser()


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename:
            raise
        # a failed write() names no file: say which one (a full disk must name its path)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
