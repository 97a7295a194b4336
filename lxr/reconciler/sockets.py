"""Where controllers listen for wake-ups: one Unix socket per controller process."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from lxr.store import state_dir

__all__ = ["controller_socket_path", "remove_dead_sockets"]


def controller_socket_path(database_url: str, instance: str | None = None) -> Path:
    """Where a controller for ``database_url`` listens for wake-ups: one socket per controller
    (``instance``: its pid and a token), so a standby never replaces the leader's. Wakers find
    the leader's path in the lease. Short names: a Unix socket path has ~100 bytes."""
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:8]
    return state_dir() / "run" / f"{digest}.{instance or 'c'}.sock"


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
