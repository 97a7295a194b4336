"""Where controllers listen for wake-ups: one Unix socket per controller process."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from lxr.store import state_dir

__all__ = ["SUN_PATH_MAX", "controller_socket_path", "remove_dead_sockets"]

#: the longest path a Unix socket can bind on Linux (``sun_path`` is 108 bytes with its NUL)
SUN_PATH_MAX = 107


def controller_socket_path(database_url: str, instance: str | None = None) -> Path:
    """Where a controller for ``database_url`` listens for wake-ups: one socket per controller
    (``instance``: its pid and a token), so a standby never replaces the leader's. Wakers find
    the leader's path in the lease. Short names: a Unix socket path has ~100 bytes."""
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:8]
    name = f"{digest}.{instance or 'c'}.sock"
    path = state_dir() / "run" / name
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return path
    # a deep state directory (bind would fail with "AF_UNIX path too long")
    return _short_run_dir() / name


def _short_run_dir() -> Path:
    """A directory short enough for socket paths: ``$XDG_RUNTIME_DIR/lxr``, else
    ``/tmp/lxr-<uid>``; made 0700, and refused when another user owns it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        base = Path(runtime) / "lxr"
    else:
        base = Path(tempfile.gettempdir()) / f"lxr-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    if base.stat().st_uid != os.getuid():
        raise PermissionError(f"{base} belongs to another user: set XDG_RUNTIME_DIR")
    return base


def remove_dead_sockets(path: Path) -> None:
    """Remove the sockets of controllers of this store whose process is gone (kill -9)."""
    digest = path.name.split(".")[0]
    for other in path.parent.glob(f"{digest}.*.sock"):
        pid = other.name.split(".")[1]
        if not pid.isdigit() or other == path:
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                other.unlink()
        except PermissionError:
            pass
