"""``lxr gc``: remove staged blobs and job directories no experiment needs any more."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, die, error, out

__all__ = ["gc", "parse_age", "register"]

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_age(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``45s`` or a bare number of days, in seconds."""
    m = _AGE.match(text.strip())
    if not m:
        raise typer.BadParameter(f"{text!r}: expected e.g. 7d, 12h, 30m, 0")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def gc(
    cluster: Annotated[
        list[str] | None,
        typer.Option("--cluster", "-c", help="Only this cluster (repeatable). Default: all."),
    ] = None,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Grace period: only what no experiment used for this long (7d, 12h, 30m, 0).",
        ),
    ] = "7d",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Only list what would be removed (the default)."),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Remove what is listed, after the grace period.")
    ] = False,
    now: Annotated[
        bool,
        typer.Option("--now", help="Remove now: like --yes with --older-than 0."),
    ] = False,
) -> None:
    """Remove what no experiment in the store needs any more: staged blobs (code, file sets,
    images) that no experiment references, on each cluster, job directories of deleted
    experiments, and recorded artifacts of the store itself. Like `helm uninstall --dry-run`
    or `kubectl delete --dry-run=client`, this only lists by default ("would remove"); --yes
    removes, --now removes without waiting out the grace period.

    Only this store's experiments count as references: a staging directory shared with another
    lxr store would lose that store's blobs.

    \b
    Examples:  lxr gc                      # list what is unused for 7 days, remove nothing
               lxr gc --older-than 1d --yes
               lxr gc --cluster dev-slurm --now
    """
    import time

    import anyio

    from lxr.cli.options import open_store
    from lxr.store import NotFound

    if dry_run and (yes or now):
        die("--dry-run lists only: drop it to remove with --yes or --now")
    act = yes or now
    grace = 0.0 if now else parse_age(older_than)
    store = open_store()
    clusters = store.list_clusters()
    if cluster:
        known = {c.metadata.name for c in clusters}
        for name in cluster:
            if name not in known:
                die(str(NotFound(f"cluster {name!r} not found")), EXIT_FAILED)
        clusters = [c for c in clusters if c.metadata.name in cluster]
    exps = store.list_experiments()
    stamp = time.time()
    failed = False
    total = [0, 0, 0]  # blobs, bytes, job directories
    verb = "removed" if act else "would be removed (dry run)"
    for c in clusters:
        name = c.metadata.name
        referenced = {
            a.staged_name for e in exps if e.spec.cluster == name for a in e.spec.needed_artifacts
        }
        try:
            found = anyio.run(_collect_and_remove, store, name, c.spec, referenced, grace, act)
        except Exception as exc:  # one cluster's failure does not stop the others
            error(f"cluster/{name}: {exc}")
            failed = True
            continue
        for g in found:
            what = "job directory" if g.kind == "jobs" else f"{g.kind}, {g.size} bytes"
            out(f"cluster/{name} {g.path} ({what}, unused for {_age(g.idle_seconds)}) {verb}")
            if g.kind == "jobs":
                total[2] += 1
            else:
                total[0] += 1
                total[1] += g.size
    if not cluster:
        from lxr.garbage import plan_store

        named = {a.digest for e in exps for a in e.spec.needed_artifacts}
        stored = plan_store(store.recorded_artifacts(), named, stamp, grace)
        for g in stored:
            idle = _age(g.idle_seconds)
            out(f"store artifact/{g.path} ({g.size} bytes, unused for {idle}) {verb}")
        if act:
            store.delete_artifacts(g.path for g in stored)
    summary = f"{total[0]} blob(s), {total[1]} bytes, and {total[2]} job director(y/ies)"
    if act:
        out(f"{summary} removed")
    else:
        out(f"{summary} would be removed; run with --yes to remove them (--now: ignore the age)")
    if failed:
        raise typer.Exit(EXIT_FAILED)


async def _collect_and_remove(store, cluster, spec, referenced, grace, act):
    import time

    from lxr.garbage import list_staging, plan_cluster, remove_staged
    from lxr.schedulers.registry import default_staging_dir, make_transport

    transport = make_transport(spec)
    local = spec.ssh is None
    staging = default_staging_dir(cluster, spec)
    try:
        entries = await list_staging(transport, staging, local)
        staged = store.staged_artifacts(cluster)
        used = {n: a.used_at for n, a in staged.items()}
        garbage = plan_cluster(
            cluster, entries, referenced, used, store.submission_tags(cluster), time.time(), grace
        )
        if act and garbage:
            await remove_staged(transport, staging, local, [g.path for g in garbage])
            store.forget_staged(cluster, [g.path.removeprefix("blobs/") for g in garbage])
        return garbage
    finally:
        await transport.close()


def register(app: typer.Typer) -> None:
    """Add ``gc`` to ``app``."""
    app.command()(gc)
