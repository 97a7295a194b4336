"""``lxr rerun experiment NAME --failed | --wu N``: finished work units run again."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.completion import experiment_names
from lxr.cli.console import EXIT_FAILED, EXIT_USAGE, die, note, out
from lxr.cli.options import experiment_ref, open_store
from lxr.cli.waiting import no_controller_message, wait_converged, wake_controller

__all__ = ["register", "rerun"]


def rerun(
    kind: Annotated[str, typer.Argument(help="experiment (exp); experiment/NAME works too.")],
    name: Annotated[
        str | None,
        typer.Argument(help="The experiment's name.", autocompletion=experiment_names),
    ] = None,
    *,
    failed: Annotated[
        bool, typer.Option("--failed", help="Rerun every work unit that ended Failed.")
    ] = False,
    wu: Annotated[
        list[int] | None,
        typer.Option("--wu", help="Index of a finished work unit to rerun (repeatable)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Reconcile until the experiment converges again.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds.")
    ] = None,
) -> None:
    """Run finished work units again, each with a fresh budget (backoffLimitPerIndex,
    disruptionLimitPerIndex, backoff and scaled resources start over). Earlier attempts are
    kept: the next one is attempt N+1, and describe workunit shows them all. A work unit
    still in progress is refused; a FailJob or maxFailedIndexes verdict is lifted. Work units
    downstream that stopped because these failed (DependencyFailed) wait for them again.

    \b
    Examples:
      lxr rerun experiment sweep --failed          # every Failed work unit
      lxr rerun experiment sweep --wu 3 --wu 7     # these two (Succeeded, Failed or Stopped)
      lxr rerun exp/sweep --failed --wait          # and wait until it converges again
    """
    from lxr.store import Invalid, NotFound

    name = experiment_ref(kind, name, "rerun")
    if not failed and not wu:
        die("say which work units to rerun: --failed, --wu N, or both", EXIT_USAGE)
    store = open_store(read_only=True)
    try:
        outcome = store.rerun_work_units(name, wu or (), failed=failed)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)
    except Invalid as exc:
        die(str(exc), EXIT_USAGE)
    if not outcome.indexes:
        out(f"experiment/{name}: nothing to rerun (no work unit Failed)")
        return
    out(f"experiment/{name} work units {_indexes(outcome.indexes)}: rerun")
    for dependent, indexes in outcome.dependents.items():
        out(
            f"experiment/{dependent} work units {_indexes(indexes)}: "
            "waiting again (they had stopped, DependencyFailed)"
        )
    if wait:
        wake_controller(store)
        raise typer.Exit(wait_converged(store, [name], timeout))
    if wake_controller(store) is None:
        note(no_controller_message(store), dim=True)


def _indexes(indexes: list[int]) -> str:
    shown = ", ".join(str(i) for i in indexes[:50])
    return shown + (f" ... ({len(indexes)} in all)" if len(indexes) > 50 else "")


def register(app: typer.Typer) -> None:
    """Add ``rerun`` to ``app``."""
    app.command()(rerun)
