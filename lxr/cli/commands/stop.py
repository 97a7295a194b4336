"""``lxr stop experiment NAME --wu N``: stop some work units, the others go on."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.completion import experiment_names
from lxr.cli.console import EXIT_FAILED, die, out
from lxr.cli.options import experiment_ref, open_store
from lxr.cli.waiting import wake_controller

__all__ = ["register", "stop"]


def stop(
    kind: Annotated[str, typer.Argument(help="experiment (exp); experiment/NAME works too.")],
    name: Annotated[
        str | None,
        typer.Argument(help="The experiment's name.", autocompletion=experiment_names),
    ] = None,
    *,
    wu: Annotated[
        list[int], typer.Option("--wu", help="Index of a work unit to stop (repeatable).")
    ],
) -> None:
    """Stop some work units of an experiment while the others go on: a queued or running task is
    cancelled, a waiting one ends Stopped; a stopped work unit is never resubmitted.

    \b
    Example:  lxr stop experiment sweep --wu 3 --wu 7
    """
    from lxr.store import NotFound

    name = experiment_ref(kind, name, "stop")
    store = open_store(read_only=True)
    try:
        asked = store.stop_work_units(name, wu)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)
    if not asked:
        out(f"experiment/{name}: nothing to stop (finished or stopping)")
        return
    shown = ", ".join(str(i) for i in asked)
    out(f"experiment/{name} work units {shown}: stop requested")
    wake_controller(store)


def register(app: typer.Typer) -> None:
    """Add ``stop`` to ``app``."""
    app.command()(stop)
