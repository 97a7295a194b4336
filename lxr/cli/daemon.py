"""The controller that is always there: ``lxr apply`` starts one in the background when none
runs, for this user and this store, so a user can apply and walk away.

The daemon is ``lxr controller run --daemon`` in a session of its own (``start_new_session``:
the applying shell's exit or hang-up does not reach it), stdin from ``/dev/null``, stdout and
stderr to its own log file. It exits after an idle period with nothing in flight.

Its pid file, ``$XDG_STATE_HOME/lxr/controller/<store digest>.pid``, is also its lock: the
daemon holds an exclusive ``flock`` on it for its whole life, so two applies racing to start
one start at most one that stays (the second daemon finds the lock taken and exits at once),
and a pid file left by a ``kill -9`` is never mistaken for a live daemon (the kernel dropped
the lock with the process). The lease fences the controllers anyway: even two daemons would
never both act.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lxr.paths import make_private_dir, state_dir

__all__ = [
    "DEFAULT_IDLE_SECONDS",
    "LOCK_FD_ENV",
    "NO_DAEMON_ENV",
    "DaemonFiles",
    "daemon_files",
    "daemon_pid",
    "daemon_wanted",
    "hold_daemon_lock",
    "process_alive",
    "start_daemon",
    "started_note",
    "stop_daemon",
]

#: a daemon exits after this long with nothing in flight (``LXR_DAEMON_IDLE`` overrides it)
DEFAULT_IDLE_SECONDS = 300.0
#: ``LXR_NO_DAEMON=1``: ``lxr apply`` never starts a controller (as ``--no-daemon``)
NO_DAEMON_ENV = "LXR_NO_DAEMON"
#: the descriptor of the locked pid file that :func:`start_daemon` hands to the daemon
LOCK_FD_ENV = "LXR_DAEMON_LOCK_FD"
#: a log file over this size is moved to ``.log.1`` when the next daemon starts
_LOG_ROTATE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class DaemonFiles:
    """Where the daemon of one store keeps its pid file (its lock) and its log."""

    pid: Path
    log: Path


def daemon_files(database_url: str) -> DaemonFiles:
    """The daemon's files for ``database_url`` (named by a digest: no password in a name)."""
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:12]
    base = state_dir() / "controller"
    return DaemonFiles(base / f"{digest}.pid", base / f"{digest}.log")


def daemon_wanted(no_daemon: bool) -> bool:
    """Whether ``lxr apply`` may start the background controller: not with ``--no-daemon``
    (``no_daemon``) or :data:`NO_DAEMON_ENV` set (to anything but ``0``)."""
    return not no_daemon and os.environ.get(NO_DAEMON_ENV, "") in ("", "0")


def started_note(pid: int, files: DaemonFiles) -> str:
    """What ``lxr apply`` says when it started the background controller ``pid``."""
    return (
        f"started a controller in the background (pid {pid}, log {files.log}); it exits when "
        "idle, `lxr controller stop` stops it"
    )


def daemon_pid(files: DaemonFiles) -> int | None:
    """The pid of the live daemon (the process holding the lock), None when none runs. A
    daemon that holds the lock but has not written its pid yet reads as ``0``."""
    try:
        fd = os.open(files.pid, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a daemon lives
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)  # free: whatever pid it names is gone
        return None
    finally:
        os.close(fd)


def hold_daemon_lock(files: DaemonFiles, wait: float = 30.0) -> int | None:
    """In the daemon: take the lock (or the one :func:`start_daemon` handed over) and write
    this pid; returns the descriptor to keep open for the process's life, or None when
    another daemon still holds it after ``wait`` seconds. (It waits: the holder may be a
    daemon that is exiting, idle, just as new work arrived; the one that stays must not be
    neither.)"""
    handed = os.environ.pop(LOCK_FD_ENV, "")
    if handed.isdigit():
        fd = int(handed)
        os.set_inheritable(fd, False)  # tasks the daemon starts must not hold its lock
        _write_pid(fd, os.getpid())
        return fd
    make_private_dir(files.pid.parent)
    fd = os.open(files.pid, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.1)
    _write_pid(fd, os.getpid())
    os.set_inheritable(fd, False)  # tasks the daemon starts must not hold its lock
    return fd


def start_daemon(database_url: str) -> tuple[int, bool]:
    """Start the daemon for ``database_url`` unless one runs: ``(pid, started)``.

    The lock is taken here, before the child exists, and handed to it (the same open file,
    :data:`LOCK_FD_ENV`): a second apply a moment later finds it held, however long the
    child takes to start. The child gets the URL in its environment, never on its command
    line (it may hold a password)."""
    files = daemon_files(database_url)
    make_private_dir(files.pid.parent)
    fd = os.open(files.pid, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return daemon_pid(files) or 0, False
        with contextlib.suppress(OSError):
            if files.log.stat().st_size > _LOG_ROTATE_BYTES:
                files.log.replace(files.log.with_name(files.log.name + ".1"))
        env = {**os.environ, "LXR_DATABASE_URL": database_url, LOCK_FD_ENV: str(fd)}
        log = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "lxr.cli", "controller", "run", "--daemon"],
                env=env,
                cwd="/",  # holds no user directory; desired state never depends on the cwd
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(fd,),
                start_new_session=True,  # its own session: the shell's exit or SIGHUP spares it
            )
        finally:
            os.close(log)
        _write_pid(fd, child.pid)
    finally:
        os.close(fd)  # the child holds the lock from here on
    # never waited for: when this process exits, init reaps it
    child.returncode = 0
    return child.pid, True


def _write_pid(fd: int, pid: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n".encode(), 0)


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop_daemon(files: DaemonFiles, timeout: float = 20.0) -> int | None:
    """SIGTERM the daemon (it gives its lease up) and wait until its lock is free; SIGKILL
    after ``timeout``. Returns its pid, None when none ran."""
    pid = daemon_pid(files)
    if not pid:
        return pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while daemon_pid(files) is not None or process_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            break
        time.sleep(0.05)
    return pid
