"""Commands and files over one pooled SSH connection per cluster (asyncssh).

One connection serves every command and SFTP transfer of a cluster. At most
``max_channels`` (8) run at once, below OpenSSH's default ``MaxSessions 10``. A dropped
connection is re-opened on next use, with exponential backoff between failed attempts. Host
keys are always checked against known_hosts.

A submission is one round trip: :meth:`SSHTransport.run_with_files` sends the job files as a
tar archive on the stdin of one command that unpacks them and then execs ``sbatch``/``qsub``
(SFTP would take a few round trips more: open the subsystem, mkdir, open/write/close/rename).
"""

from __future__ import annotations

import asyncio
import io
import os
import shlex
import socket
import tarfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from pathlib import PurePosixPath

import anyio
import asyncssh

from lxr.api.resources import SSHConfig
from lxr.schedulers.ratelimit import TokenBucket
from lxr.schedulers.transport import (
    CommandObserver,
    CommandResult,
    ConnectError,
    Transport,
    TransportError,
)

__all__ = ["FILES_FAILED", "SSHTransport", "connect_failure", "files_command"]

#: exit status of :func:`files_command`'s script when the files could not be written (the
#: command did not run); with :data:`_FILES_MARK` on stderr, so a command's own 125 is not it
FILES_FAILED = 125
_FILES_MARK = "lxr: writing the files failed"

#: how long closing waits for the connection's tasks to end
_CLOSE_WAIT_SECONDS = 5.0


def _expand(path: str | None) -> str | None:
    return None if path is None else os.path.expanduser(path)


def files_command(files: Mapping[str, bytes], mode: int = 0o644) -> tuple[str, bytes] | None:
    """A ``sh -c`` script and the tar archive to feed it on stdin: it writes ``files`` (mode
    ``mode``, missing directories 0700), then execs its arguments (``"$@"``, stdin from
    /dev/null). If writing fails the arguments do not run and the script exits
    :data:`FILES_FAILED`. ``None`` when the paths cannot go in one archive (absolute and
    relative mixed, a ``..`` or no file name): write those with SFTP.

    Relative paths are relative to the login directory (the home), like SFTP's. Only tar flags
    that GNU tar and busybox share (``-x -m -f - -C``). Each file is complete before the
    command runs, but is not renamed into place: a reader racing the unpacking could see it
    partly written (nothing reads job files before the scheduler starts the job)."""
    paths = [PurePosixPath(p) for p in files]
    rooted = {p.is_absolute() for p in paths}
    if len(rooted) != 1 or any(".." in p.parts or p.name in ("", ".") for p in paths):
        return None
    absolute = rooted.pop()
    archive = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in zip(paths, files.values(), strict=True):
            info = tarfile.TarInfo(str(path).lstrip("/"))  # unpacked under -C / when absolute
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))
    dirs = " ".join(shlex.quote(d) for d in sorted({str(p.parent) for p in paths}))
    # in a subshell: the umasks must not reach the command (sbatch hands its umask to the job)
    unpack = (
        f"umask 077 && mkdir -p -- {dirs} && umask {0o777 & ~mode:03o}"
        f" && tar -x -m -f -{' -C /' if absolute else ''}"
    )
    script = (
        f"( {unpack} ) || {{ echo {shlex.quote(_FILES_MARK)} >&2; exit {FILES_FAILED}; }}\n"
        'exec "$@" </dev/null'
    )
    return script, archive.getvalue()


def connect_failure(
    exc: BaseException, config: SSHConfig, timeout: float = 20.0
) -> tuple[str, str]:
    """``(reason, message)`` of a failed connection to ``config``'s host: the reason one of
    :data:`~lxr.schedulers.transport.CONNECT_REASONS`, the message naming the cause."""
    where = f"{config.host}:{config.port}"
    who = f"{config.user + '@' if config.user else ''}{where}"
    known = _expand(config.known_hosts) or os.path.expanduser("~/.ssh/known_hosts")
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError) and exc.filename:
        # asyncssh reads the identity and known_hosts files before it connects
        return "ClientConfig", f"cannot read {exc.filename}: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return "ConnectionRefused", f"connection refused to {where}"
    if isinstance(exc, socket.gaierror):
        return "HostNotFound", f"host name {config.host!r} not found: {exc.strerror or exc}"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):  # distinct before 3.11
        return "Timeout", f"connection to {where} timed out after {timeout:.0f}s"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        try:
            trusted = asyncssh.read_known_hosts(known).match(config.host, "", config.port)[0]
        except (OSError, ValueError):
            trusted = []
        if trusted:
            return "HostKeyMismatch", (
                f"host key mismatch for {where}: the key it offers is not the one in {known} "
                "(the host was reinstalled, or someone is in the middle)"
            )
        return "HostKeyUnknown", (
            f"host key of {where} is not in {known}: add it (ssh-keyscan -p {config.port} "
            f"{config.host} >> {known}, after checking it)"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        key = _expand(config.identity_file) or "the default keys"
        return "PermissionDenied", f"permission denied (publickey) for {who} with {key}"
    if isinstance(exc, asyncssh.ConnectionLost | ConnectionResetError | BrokenPipeError):
        return "ConnectionLost", f"connection to {where} lost: {exc}"
    if isinstance(exc, asyncssh.Error):
        return "SSHError", f"SSH error from {who}: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return "NetworkError", f"cannot connect to {where}: {exc.strerror or exc}"
    return "NetworkError", f"cannot connect to {where}: {exc}"


class SSHTransport(Transport):
    """A cluster's login node, over SSH."""

    def __init__(
        self,
        config: SSHConfig,
        *,
        bucket: TokenBucket | None = None,
        observer: CommandObserver | None = None,
        max_channels: int = 8,
        connect_timeout: float = 20.0,
    ) -> None:
        super().__init__(bucket=bucket, observer=observer)
        self.config = config
        self.connect_timeout = connect_timeout
        self._conn: asyncssh.SSHClientConnection | None = None
        self._tunnel: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = anyio.Lock()
        self._channels = anyio.Semaphore(max_channels)
        self._failures = 0
        self._retry_at = 0.0
        self.connects = 0  # connections opened (tests check pooling)

    def _options(self) -> dict[str, object]:
        cfg = self.config
        known = _expand(cfg.known_hosts) or os.path.expanduser("~/.ssh/known_hosts")
        opts: dict[str, object] = {
            "port": cfg.port,
            "known_hosts": known,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": 30,
        }
        if cfg.user:
            opts["username"] = cfg.user
        if cfg.identity_file:
            opts["client_keys"] = [_expand(cfg.identity_file)]
        return opts

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The pooled connection, opened (or re-opened) on demand."""
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await anyio.sleep(wait)
            try:
                opts = self._options()
                if self.config.proxy_jump:
                    jump = self.config.proxy_jump
                    user, _, hostport = jump.rpartition("@")
                    host, _, port = hostport.partition(":")
                    self._tunnel = await asyncssh.connect(
                        host,
                        port=int(port or 22),
                        username=user or None,
                        known_hosts=opts["known_hosts"],
                        client_keys=opts.get("client_keys"),
                    )
                    opts["tunnel"] = self._tunnel
                self._conn = await asyncssh.connect(self.config.host, **opts)
            except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
                self._failures += 1
                self._retry_at = time.monotonic() + min(60.0, 2 ** (self._failures - 1))
                reason, message = connect_failure(exc, self.config, self.connect_timeout)
                raise ConnectError(reason, message) from exc
            self._failures = 0
            self._sftp = None
            self.connects += 1
            return self._conn

    async def _run(self, argv: tuple[str, ...], input: bytes | None) -> CommandResult:
        started = time.monotonic()
        conn = await self.connection()
        async with self._channels:
            try:
                proc = await conn.run(shlex.join(argv), input=input, encoding=None, check=False)
            except (OSError, asyncssh.Error) as exc:
                await self._drop()
                raise TransportError(f"`{shlex.join(argv)}` over SSH failed: {exc}") from exc
        stderr = _text(proc.stderr)
        if proc.exit_status is None and not proc.exit_signal:
            # the channel closed with no exit status: the session (or its sshd) went away while
            # the command ran, and whether it did its work is unknown. Not an exit code of the
            # command's own (it used to read "exited 255:" with nothing after the colon).
            await self._drop()
            raise TransportError(
                f"`{shlex.join(argv)}` over SSH: the session closed before the command reported "
                "how it exited (connection or sshd lost); it may or may not have run"
            )
        if proc.exit_signal:
            stderr += f"{chr(10) if stderr else ''}(killed by signal {proc.exit_signal[0]})"
        code = proc.exit_status if proc.exit_status is not None else 255
        return CommandResult(argv, code, _text(proc.stdout), stderr, time.monotonic() - started)

    async def run_with_files(
        self,
        files: Mapping[str, bytes],
        argv: Sequence[str],
        *,
        mode: int = 0o644,
        timeout: float = 60.0,  # noqa: ASYNC109 - passed on to run
    ) -> CommandResult:
        """One exec: the files go as a tar archive on its stdin (:func:`files_command`)."""
        if not files:
            return await self.run(argv, timeout=timeout)
        packed = files_command(files, mode)
        if packed is None:
            return await super().run_with_files(files, argv, mode=mode, timeout=timeout)
        script, archive = packed
        name = os.path.basename(argv[0])
        res = await self.run(
            ["sh", "-c", script, "sh", *argv], input=archive, timeout=timeout, name=name
        )
        if res.returncode == FILES_FAILED and _FILES_MARK in res.stderr:
            err = res.stderr.replace(_FILES_MARK, "").strip()
            raise TransportError(f"writing {len(files)} file(s) over SSH failed: {err[-2000:]}")
        return replace(res, argv=tuple(argv))

    async def sftp(self) -> asyncssh.SFTPClient:
        """The SFTP session on the pooled connection."""
        conn = await self.connection()
        if self._sftp is None:
            self._sftp = await conn.start_sftp_client()
        return self._sftp

    async def write_files(self, files: Mapping[str, bytes], mode: int = 0o644) -> None:
        try:
            sftp = await self.sftp()
            # parents first (shallowest first, one at a time: a job dir before its logs/),
            # then every file at once: SFTP requests pipeline on the one channel, so a job's
            # files cost a few round trips instead of a few per file
            for parent in sorted({str(PurePosixPath(p).parent) for p in files}, key=len):
                await self._mkdir(sftp, parent)

            errors: list[Exception] = []

            async def put(path: str, data: bytes) -> None:
                pure = PurePosixPath(path)
                tmp = f"{pure.parent}/.{pure.name}.{os.getpid()}.tmp"
                try:
                    attrs = asyncssh.SFTPAttrs(permissions=mode)
                    async with sftp.open(tmp, "wb", attrs=attrs) as fh:
                        await fh.write(data)
                    await sftp.posix_rename(tmp, path)
                except (OSError, asyncssh.Error) as exc:  # raised below, not as a group
                    errors.append(exc)

            async with self._channels, anyio.create_task_group() as tg:
                for path, data in files.items():
                    tg.start_soon(put, path, data)
            if errors:
                raise errors[0]
        except (OSError, asyncssh.Error) as exc:
            await self._drop()
            raise TransportError(f"writing files over SFTP failed: {exc}") from exc

    @staticmethod
    async def _mkdir(sftp: asyncssh.SFTPClient, path: str) -> None:
        """``mkdir -p -m 700``, in one round trip when only the last component is missing (a
        new job dir): ``makedirs`` alone tries every component from ``/``."""
        attrs = asyncssh.SFTPAttrs(permissions=0o700)
        try:
            await sftp.mkdir(path, attrs)
        except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists, asyncssh.SFTPNoSuchFile):
            await sftp.makedirs(path, attrs=attrs, exist_ok=True)

    async def read_file(self, path: str) -> bytes:
        try:
            sftp = await self.sftp()
            async with sftp.open(path, "rb") as fh:
                return await fh.read()
        except asyncssh.SFTPNoSuchFile as exc:
            raise FileNotFoundError(path) from exc
        except (OSError, asyncssh.Error) as exc:
            await self._drop()
            raise TransportError(f"reading {path} over SFTP failed: {exc}") from exc

    async def follow(self, path: str) -> AsyncIterator[bytes]:
        conn = await self.connection()
        async with conn.create_process(
            shlex.join(["tail", "-c", "+1", "-F", path]), encoding=None
        ) as proc:
            while True:
                chunk = await proc.stdout.read(65536)
                if not chunk:
                    return
                yield chunk

    async def _drop(self) -> None:
        conn, self._conn, sftp, self._sftp = self._conn, None, self._sftp, None
        # wait (briefly) for asyncssh's own tasks to end: a loop closed under them prints
        # "Task was destroyed but it is pending!" at exit
        with anyio.move_on_after(_CLOSE_WAIT_SECONDS):
            if sftp is not None:
                sftp.exit()
                await sftp.wait_closed()
            if conn is not None:
                conn.close()
                await conn.wait_closed()

    async def close(self) -> None:
        await self._drop()
        tunnel, self._tunnel = self._tunnel, None
        if tunnel is not None:
            tunnel.close()
            with anyio.move_on_after(_CLOSE_WAIT_SECONDS):
                await tunnel.wait_closed()


def _text(data: bytes | str | None) -> str:
    """A command's output as text (bytes with ``encoding=None``; asyncssh types it either way)."""
    if isinstance(data, str):
        return data
    return (data or b"").decode(errors="replace")
