"""The user's lxr settings: the default cluster of launch scripts whose executors name none.

The file is ``$LXR_CONFIG``, else ``$XDG_CONFIG_HOME/lxr/config.yaml``
(``~/.config/lxr/config.yaml``), written by ``lxr config set-cluster NAME``::

    cluster: dev-slurm

The environment variable ``LXR_CLUSTER`` wins over the file (like lxm3's ``LXM_CLUSTER``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CLUSTER_ENV",
    "config_path",
    "default_cluster",
    "load_user_config",
    "save_user_config",
]

#: the environment variable naming the default cluster
CLUSTER_ENV = "LXR_CLUSTER"


def config_path() -> Path:
    """Where the user's settings live."""
    explicit = os.environ.get("LXR_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "lxr" / "config.yaml"


def load_user_config() -> dict[str, Any]:
    """The settings as a mapping (empty when there is no file)."""
    path = config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping such as 'cluster: NAME'")
    return data


def save_user_config(data: dict[str, Any]) -> Path:
    """Write the settings (atomically); returns the file's path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=True))
    os.replace(tmp, path)
    return path


def default_cluster() -> str | None:
    """``$LXR_CLUSTER``, else the ``cluster`` of the settings file, else ``None``."""
    name = os.environ.get(CLUSTER_ENV, "").strip()
    if name:
        return name
    value = load_user_config().get("cluster")
    return str(value) if value else None
