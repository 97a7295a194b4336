"""Where built artifacts are kept on this machine."""

from __future__ import annotations

from pathlib import Path

from lxr.paths import state_dir

__all__ = ["artifact_cache"]


def artifact_cache() -> Path:
    """``$XDG_STATE_HOME/lxr/artifacts`` (0700): built artifacts, named by their digest."""
    path = state_dir() / "artifacts"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
