"""lxm3's configuration file (``~/.config/lxm3/config.toml``) as lxr Clusters.

lxm3 lists its clusters as ``[[clusters]]`` tables::

    [[clusters]]
    name = "myriad"
    server = "myriad.rc.ucl.ac.uk"
    user = "alice"
    ssh_private_key = "~/.ssh/id_ed25519"
    [clusters.storage]
    staging = "/scratch/scratch/alice/lxm3-staging"

Each becomes a ``Cluster`` named like it, reached over SSH (``server``, ``user``,
``ssh_private_key``; ``proxycommand = "ssh -W %h:%p HOST"`` as ``proxyJump``), with its
``storage.staging`` as ``stagingDir``. lxm3 does not record the scheduler (its executor class
says it): a cluster's ``scheduler = "slurm" | "sge"`` key, else the caller's choice.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from lxr.api.resources import Cluster

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

__all__ = ["clusters_from_lxm3", "default_lxm3_config_path"]

_JUMP = re.compile(r"^ssh\s+(?:-q\s+)?-W\s+%h:%p\s+(\S+)$")
_SCHEDULERS = {"slurm": "slurm", "sge": "sge", "gridengine": "sge", "grid_engine": "sge"}


def default_lxm3_config_path() -> Path:
    """Where lxm3 reads its configuration: ``$LXM_CONFIG``, else its user config file."""
    explicit = os.environ.get("LXM_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "lxm3" / "config.toml"


def _cluster(entry: dict[str, Any], scheduler: str | None, where: str) -> Cluster:
    name = entry.get("name")
    if not name:
        raise ValueError(f"{where}: a [[clusters]] entry has no name")
    chosen = entry.get("scheduler") or scheduler
    if chosen is None:
        raise ValueError(
            f"{where}: cluster {name!r} does not say its scheduler (lxm3 takes it from the "
            'executor): pass --scheduler slurm|sge, or add scheduler = "slurm" to its entry'
        )
    if str(chosen).lower() not in _SCHEDULERS:
        raise ValueError(f"{where}: cluster {name!r}: unknown scheduler {chosen!r} (slurm or sge)")
    if entry.get("password") is not None:
        raise ValueError(
            f"{where}: cluster {name!r} logs in with a password; lxr uses SSH keys only: "
            "set ssh_private_key (or an agent) and remove password"
        )
    spec: dict[str, Any] = {"scheduler": _SCHEDULERS[str(chosen).lower()]}
    server = entry.get("server")
    if server:
        ssh: dict[str, Any] = {"host": server}
        if entry.get("user"):
            ssh["user"] = entry["user"]
        if entry.get("port"):
            ssh["port"] = int(entry["port"])
        if entry.get("ssh_private_key"):
            ssh["identityFile"] = os.path.expanduser(entry["ssh_private_key"])
        proxy = entry.get("proxycommand")
        if proxy:
            jump = _JUMP.match(proxy.strip())
            if jump is None:
                raise ValueError(
                    f"{where}: cluster {name!r}: proxycommand {proxy!r} is not of the form "
                    "'ssh -W %h:%p HOST'; lxr supports a jump host (proxyJump) only"
                )
            ssh["proxyJump"] = jump.group(1)
        spec["ssh"] = ssh
    staging = (entry.get("storage") or {}).get("staging")
    if staging:
        spec["stagingDir"] = staging
    return Cluster.model_validate(
        {"metadata": {"name": name, "labels": {"lxr.dev/imported-from": "lxm3"}}, "spec": spec}
    )


def clusters_from_lxm3(path: Path, scheduler: str | None = None) -> list[Cluster]:
    """The Clusters of lxm3's configuration file at ``path``, in its order."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get("clusters") or []
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: no [[clusters]] entries")
    return [_cluster(e, scheduler, str(path)) for e in entries]
