"""Where lxr keeps its state on this machine: plain paths, no database code, so that any layer
(drivers, packaging, the store) may ask without importing the store."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "default_database_url",
    "make_private_database",
    "make_private_dir",
    "make_private_file",
    "state_dir",
]


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


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) mode 0700, or tighten it to 0700 when it exists with
    looser permissions: job files and the database hold environment values."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def make_private_file(path: Path, *, create: bool = True) -> None:
    """Create ``path`` empty with mode 0600 (when ``create``), or tighten it to 0600 when it
    exists with looser permissions."""
    if create:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if mode & 0o077:
        path.chmod(0o600)


def make_private_database(db: Path) -> None:
    """A SQLite database and its WAL files mode 0600 (SQLite gives -wal and -shm the
    database's mode), even when they exist with looser modes; lxr's own state directory 0700
    likewise. A directory elsewhere (``LXR_DATABASE_URL=sqlite:////some/dir/x.db``) is created
    0700 but not re-chmodded: it may be shared."""
    if db.parent.absolute() == state_dir().absolute():
        make_private_dir(db.parent)
    else:
        db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private_file(db)
    for suffix in ("-wal", "-shm", "-journal"):
        make_private_file(db.with_name(db.name + suffix), create=False)
