"""``lxr describe experiment NAME``."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, console, die
from lxr.cli.options import only_experiments, open_store

__all__ = ["describe", "register"]


def describe(
    kind: Annotated[str, typer.Argument(help="experiment")],
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
) -> None:
    """Show an experiment in detail: conditions, counts, failed work units, recent events."""
    from lxr.cli.describe import describe_experiment
    from lxr.store import NotFound

    only_experiments(kind, "describe")
    try:
        describe_experiment(console, open_store(), name)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add ``describe`` to ``app``."""
    app.command()(describe)
