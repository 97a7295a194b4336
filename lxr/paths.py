"""Where lxr keeps its state on this machine: plain paths, no database code, so that any layer
(drivers, packaging, the store) may ask without importing the store."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_database_url", "state_dir"]


def state_dir() -> Path:
    """``$XDG_STATE_HOME/lxr`` (``~/.local/state/lxr``): the database and local job files."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "lxr"


def default_database_url() -> str:
    """``LXR_DATABASE_URL``, else SQLite in :func:`state_dir`."""
    url = os.environ.get("LXR_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{state_dir() / 'lxr.db'}"
