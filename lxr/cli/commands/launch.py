"""``lxr launch SCRIPT``: run an XManager launch script."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, die, out
from lxr.cli.options import open_store
from lxr.cli.waiting import reconcile_until_submitted, wait_converged, wake_controller

__all__ = ["launch", "register"]


def launch(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="An XManager launch script (Python).")],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait until the launched experiments converge, showing progress."
        ),
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="With --wait: give up after S seconds.")
    ] = None,
) -> None:
    """Run an XManager launch script: it writes experiments into the store, then (unless a
    controller is running) lxr reconciles here until every work unit is submitted, or with
    --wait until they converge. Flags after `--` go to the script.

    \b
    Example:  lxr launch examples/xm/launch_local.py --wait -- --seeds=2
    Needs the xm extra: pip install 'lxr[xm]'.
    """
    if not script.is_file():
        die(f"no launch script at {script}")
    try:
        from lxr.xm_cluster.launch import run_script
    except ImportError as exc:
        die(f"lxr launch needs the xm extra (pip install 'lxr[xm]'): {exc}", EXIT_FAILED)
    code, names = run_script(script, list(ctx.args))
    if code != 0:
        raise typer.Exit(code)
    store = open_store()
    for name in names:
        out(f"experiment/{name} created")
    if wait:
        raise typer.Exit(wait_converged(store, names, timeout))
    if names and wake_controller(store) is None:
        raise typer.Exit(reconcile_until_submitted(store, names, timeout))


def register(app: typer.Typer) -> None:
    """Add ``launch`` to ``app``."""
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(launch)
