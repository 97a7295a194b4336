"""``lxr launch SCRIPT``: run an XManager launch script."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, die, out
from lxr.cli.options import open_store
from lxr.cli.waiting import (
    reconcile_until_submitted,
    start_background_controller,
    wait_converged,
    wake_controller,
)

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
    no_daemon: Annotated[
        bool,
        typer.Option(
            "--no-daemon",
            help="Without --wait: start no background controller when none runs (also "
            "LXR_NO_DAEMON=1); this process then reconciles until every work unit is submitted.",
        ),
    ] = False,
) -> None:
    """Run an XManager launch script: it writes experiments into the store, with the code it
    packaged recorded by digest, and returns at once; the controller (started in the background
    when none runs) stages the code to the cluster and submits. With --wait, this follows until
    they converge, running the reconciler here when no controller runs. Flags after `--` go to
    the script.

    \b
    Example:  lxr launch examples/xm/launch_local.py --wait -- --seeds=2
    Needs the xm extra: pip install 'lxr[xm]'.
    """
    import os

    from lxr.cli.daemon import NO_DAEMON_ENV

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
        code = wait_converged(store, names, timeout)
        from lxr.staging import summary_line
        from lxr.xm_cluster.staged import report_of

        exps = [store.get_experiment(n) for n in names]
        reports = [report_of(c, [e for e in exps if e.spec.cluster == c])
                   for c in sorted({e.spec.cluster for e in exps})]  # fmt: skip
        out(summary_line(reports))
        raise typer.Exit(code)
    if names and wake_controller(store) is None:
        if no_daemon or os.environ.get(NO_DAEMON_ENV, "") not in ("", "0"):
            # no controller, and none to start: reconcile here until every unit is submitted
            raise typer.Exit(reconcile_until_submitted(store, names, timeout))
        start_background_controller(store, no_daemon)


def register(app: typer.Typer) -> None:
    """Add ``launch`` to ``app``."""
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(launch)
