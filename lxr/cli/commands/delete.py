"""``lxr delete experiment NAME``: cancel its tasks, then remove it."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, EXIT_OK, console, die
from lxr.cli.options import only_experiments, open_store
from lxr.cli.waiting import wait_converged, wake_controller

__all__ = ["delete", "register"]


def delete(
    kind: Annotated[str, typer.Argument(help="experiment")],
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait until its tasks are cancelled and it is gone."),
    ] = True,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Give up waiting after S seconds.")
    ] = 300,
) -> None:
    """Delete an experiment: its running and queued tasks are cancelled, then it is removed."""
    from lxr.store import NotFound

    only_experiments(kind, "delete")
    store = open_store()
    try:
        store.delete_experiment(name)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)
    console.print(f"experiment/{name} deletion requested", highlight=False)
    wake_controller(store)
    if wait:
        code = wait_converged(store, [name], timeout, gone=True)
        if code == EXIT_OK:
            console.print(f"experiment/{name} deleted", highlight=False)
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``delete`` to ``app``."""
    app.command()(delete)
