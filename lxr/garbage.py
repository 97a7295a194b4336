"""``lxr gc``: what no experiment of the store needs any more, per cluster, and its removal.

On each cluster's staging directory:

- **blobs** (``blobs/<digest>[.zip|.sif|...]``, unpacked trees ``blobs/<digest>/`` and
  interrupted uploads ``blobs/.<name>.part``) that no stored experiment's
  ``spec.executable.artifacts`` names, unused for the grace period: the later of their time on
  the cluster and the last time the controller staged them for an experiment;
- **job directories** (``jobs/<tag>/``) whose submission the store no longer has (its
  experiment was deleted), older than the grace period; scheduler links to them go too.

And in the store: recorded artifacts no experiment names, older than the grace period.

A plan (:func:`plan_cluster`) is computed from one listing per cluster and the store: a pure
function, which ``--dry-run`` (the default) prints; removal is one command per cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lxr.schedulers.transport import Transport
from lxr.staging import StagingError, shell_dir

__all__ = [
    "Garbage",
    "list_staging",
    "plan_cluster",
    "plan_store",
    "remove_staged",
]

#: one listing of the staging directory: "<mtime> <size> <kind> <relative path>" per entry
_LIST_SCRIPT = """d=$1
cd "$d" 2>/dev/null || exit 0
for sub in blobs jobs; do
  [ -d "$sub" ] || continue
  find "$sub" -mindepth 1 -maxdepth 1 -printf '%T@ %s %y %p\\n'
done
exit 0
"""

#: removal: make read-only trees writable, remove, drop links that now point nowhere
_REMOVE_SCRIPT = """d=$1; shift
cd "$d" || exit 1
for p in "$@"; do
  case "$p" in blobs/*|jobs/*) ;; *) continue ;; esac
  [ -d "$p" ] && chmod -R u+w "$p"
  rm -rf -- "$p" || exit 1
done
for links in byid sge-byid; do
  [ -d "$links" ] && find "$links" -mindepth 1 -maxdepth 1 -xtype l -delete
done
exit 0
"""


@dataclass(frozen=True)
class Entry:
    """One entry of a staging directory's listing."""

    path: str  # relative: blobs/<name> or jobs/<tag>
    mtime: float
    size: int
    is_dir: bool


@dataclass(frozen=True)
class Garbage:
    """One thing ``lxr gc`` removes."""

    cluster: str  # "" for the store's own blob store
    kind: str  # blob | partial | jobs | stored
    path: str
    size: int
    idle_seconds: float


def parse_listing(text: str) -> list[Entry]:
    """The listing script's output as entries."""
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) != 4:
            continue
        mtime, size, kind, path = parts
        out.append(Entry(path.removeprefix("./"), float(mtime), int(size), kind == "d"))
    return out


async def list_staging(transport: Transport, staging_dir: str, local: bool) -> list[Entry]:
    """The blobs and job directories of a cluster's staging directory (one command)."""
    res = await transport.run(
        ["sh", "-c", _LIST_SCRIPT, "sh", shell_dir(staging_dir, local=local)], rate_limited=False
    )
    if not res.ok:
        raise StagingError(f"listing {staging_dir}: {res.describe()}")
    return parse_listing(res.stdout)


def plan_cluster(
    cluster: str,
    entries: Iterable[Entry],
    referenced: set[str],
    used_at: Mapping[str, float],
    tags: set[str],
    now: float,
    grace_seconds: float,
) -> list[Garbage]:
    """What to remove from one cluster: ``referenced`` staged names, ``used_at`` (staged name ->
    when the controller last staged it for an experiment), ``tags`` of stored submissions."""
    out = []
    for e in entries:
        top, _, name = e.path.partition("/")
        if top == "blobs":
            partial = name.startswith(".") and name.endswith(".part")
            staged = name[1:-5] if partial else name
            if name.startswith(".") and not partial:
                continue  # an unpack in progress, or not lxr's
            if staged in referenced:
                continue
            idle = now - max(e.mtime, used_at.get(staged, 0.0))
            if idle >= grace_seconds:
                out.append(Garbage(cluster, "partial" if partial else "blob", e.path, e.size, idle))
        elif top == "jobs" and e.is_dir and name not in tags:
            idle = now - e.mtime
            if idle >= grace_seconds:
                out.append(Garbage(cluster, "jobs", e.path, e.size, idle))
    return sorted(out, key=lambda g: g.path)


def plan_store(
    stored: Mapping[str, tuple[int, float]], referenced: set[str], now: float, grace: float
) -> list[Garbage]:
    """Artifacts of the store's blob store (digest -> (bytes, recorded at)) no experiment
    names, recorded longer ago than the grace period."""
    return [
        Garbage("", "stored", digest, size, now - created)
        for digest, (size, created) in sorted(stored.items())
        if digest not in referenced and now - created >= grace
    ]


async def remove_staged(
    transport: Transport, staging_dir: str, local: bool, paths: list[str]
) -> None:
    """Remove ``paths`` (relative to the staging directory) in one command."""
    if not paths:
        return
    res = await transport.run(
        ["sh", "-c", _REMOVE_SCRIPT, "sh", shell_dir(staging_dir, local=local), *paths],
        rate_limited=False,
    )
    if not res.ok:
        raise StagingError(f"removing from {staging_dir}: {res.describe()}")
