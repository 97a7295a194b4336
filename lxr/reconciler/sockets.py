"""Where controllers listen: one Unix socket per controller process for wake-ups, and one
beside it for requests (:func:`request_socket_path`).

Plain paths and the standard library only: ``lxr apply`` looks its controller up here before
it imports anything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from lxr.paths import state_dir

__all__ = [
    "SUN_PATH_MAX",
    "controller_socket_path",
    "free_socket_path",
    "remove_dead_sockets",
    "request_socket_path",
    "request_sockets",
    "socket_pid",
]

#: the longest path a Unix socket can bind on Linux (``sun_path`` is 108 bytes with its NUL)
SUN_PATH_MAX = 107
#: what the request socket's name has more than the wake-up socket's
_REQUEST_SUFFIX = ".api"


def controller_socket_path(database_url: str, instance: str | None = None) -> Path:
    """Where a controller for ``database_url`` listens for wake-ups: one socket per controller
    (``instance``: its pid and a token), so a standby never replaces the leader's. Wakers find
    the leader's path in the lease. Short names: a Unix socket path has ~100 bytes."""
    name = f"{_digest(database_url)}.{instance or 'c'}.sock"
    path = state_dir() / "run" / name
    # room for the request socket's longer name too
    if len(os.fsencode(path)) + len(_REQUEST_SUFFIX) <= SUN_PATH_MAX:
        return path
    # a deep state directory (bind would fail with "AF_UNIX path too long")
    base = _short_base()
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    if base.stat().st_uid != os.getuid():
        raise PermissionError(f"{base} belongs to another user: set XDG_RUNTIME_DIR")
    return base / name


def free_socket_path(path: Path) -> str:
    """``path`` ready to bind a socket to: its directory made (0700), and whatever an earlier
    process of the same pid left there removed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return str(path)


def request_socket_path(wake_path: Path) -> Path:
    """The request socket of the controller whose wake-up socket is ``wake_path``."""
    return wake_path.with_name(wake_path.name[: -len(".sock")] + _REQUEST_SUFFIX + ".sock")


def request_sockets(database_url: str) -> list[Path]:
    """The request sockets of this host's controllers of ``database_url``, newest first
    (a dead controller's may be among them: connecting to it is refused)."""
    pattern = f"{_digest(database_url)}.*{_REQUEST_SUFFIX}.sock"
    found: list[tuple[float, Path]] = []
    run = state_dir() / "run"
    # a controller uses the short directory only when its name would not fit here
    # (the longest: a 7-digit pid and a 4-digit token, as the controller names it)
    longest = len(os.fsencode(run)) + len("/12345678.1234567.abcd.api.sock")
    for base in [run] if longest <= SUN_PATH_MAX else [run, _short_base()]:
        for path in base.glob(pattern):
            with contextlib.suppress(OSError):
                found.append((path.stat().st_mtime, path))
    return [path for _, path in sorted(found, reverse=True)]


def _digest(database_url: str) -> str:
    return hashlib.sha256(database_url.encode()).hexdigest()[:8]


def _short_base() -> Path:
    """A directory short enough for socket paths: ``$XDG_RUNTIME_DIR/lxr``, else
    ``/tmp/lxr-<uid>`` (made 0700 by :func:`controller_socket_path`, refused when another
    user owns it)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "lxr"
    import tempfile  # only for a deep state directory

    return Path(tempfile.gettempdir()) / f"lxr-{os.getuid()}"


def socket_pid(path: Path) -> int | None:
    """The pid of the controller a socket of :func:`controller_socket_path` (or its request
    socket) belongs to: ``{digest}.{pid}.{token}[.api].sock``; None for another name."""
    parts = path.name.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None


def remove_dead_sockets(path: Path) -> None:
    """Remove the sockets of controllers of this store whose process is gone (kill -9)."""
    digest = path.name.split(".")[0]
    for other in path.parent.glob(f"{digest}.*.sock"):
        pid = socket_pid(other)
        if pid is None or other == path:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                other.unlink()
        except PermissionError:
            pass
