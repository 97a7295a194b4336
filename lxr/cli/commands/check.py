"""``lxr check cluster NAME``: the preflight of a cluster, one line per check."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, EXIT_OK, die, out
from lxr.cli.options import open_store

__all__ = ["check", "register"]


def check(
    kind: Annotated[str, typer.Argument(help="cluster")],
    name: Annotated[str, typer.Argument(help="The cluster's name.")],
) -> None:
    """Check that lxr can work with a cluster: the SSH connection (naming the cause when it
    fails), the scheduler's commands, its configuration (MaxArraySize / max_aj_tasks), the
    staging directory (written and read back) and accounting (sacct / qacct). Prints what
    works; exit 0 when nothing failed (warnings allowed), 1 otherwise.

    Example:  lxr check cluster dev-slurm
    """
    import anyio

    from lxr.schedulers.preflight import Check, preflight
    from lxr.store import NotFound

    if kind not in ("cluster", "clusters"):
        die(f"cannot check {kind!r}: only clusters")
    try:
        spec = open_store(read_only=True).get_cluster(name).spec
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)

    def show(c: Check) -> None:
        out(f"{c.status:<4} {c.name:<18} {c.detail}")

    checks = anyio.run(preflight, name, spec, show)
    failed = sum(c.failed for c in checks)
    worked = sum(c.status == "ok" for c in checks)
    out(f"cluster/{name}: {worked} ok, {failed} failed")
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add ``check`` to ``app``."""
    app.command()(check)
