"""``lxr wait experiment NAME --for=condition=TYPE``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from lxr.cli.completion import experiment_names
from lxr.cli.console import EXIT_FAILED, EXIT_OK, die, out
from lxr.cli.options import experiment_ref, open_store
from lxr.cli.waiting import WAIT_STOPPED, wait_converged

__all__ = ["CONDITIONS", "register", "wait_cmd"]

# an experiment's condition types (lxr/reconciler/status.py)
CONDITIONS = ("Submitted", "Finished", "Succeeded", "Failed")


def wait_cmd(
    kind: Annotated[str, typer.Argument(help="experiment (exp); experiment/NAME works too.")],
    name: Annotated[
        str | None,
        typer.Argument(help="The experiment's name.", autocompletion=experiment_names),
    ] = None,
    for_: Annotated[
        str,
        typer.Option(
            "--for",
            help="condition=TYPE (Succeeded, Finished, Failed, Submitted), or delete.",
        ),
    ] = "condition=Succeeded",
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Give up after S seconds.")
    ] = None,
) -> None:
    """Wait until a condition of the experiment is True. Exit 0 when it is, 1 when it can no
    longer become True (e.g. Succeeded on a failed experiment) or on timeout.

    \b
    Example:  lxr wait experiment quickstart --for=condition=Succeeded --timeout 600
    """
    from lxr.store import NotFound

    name = experiment_ref(kind, name, "wait for")
    if for_ == "delete":
        store = open_store(read_only=True)
        try:
            store.experiment_uid(name)
        except NotFound:
            out(f"experiment/{name} deleted")
            raise typer.Exit(EXIT_OK) from None
        raise typer.Exit(wait_converged(store, [name], timeout, gone=True))
    what, _, cond = for_.partition("=")
    if what != "condition" or not cond:
        die(f"--for={for_}: expected condition=TYPE or delete")
    known = {c.lower(): c for c in CONDITIONS}
    if cond.lower() not in known:
        die(f"--for={for_}: no condition {cond!r}; expected one of {', '.join(CONDITIONS)}")
    cond = known[cond.lower()]
    store = open_store(read_only=True)
    deadline = None if timeout is None else time.monotonic() + timeout

    def condition_of(exp):
        st = exp.status
        current = next((c for c in (st.conditions if st else []) if c.type == cond), None)
        current_gen = st is not None and st.observed_generation == exp.metadata.generation
        return st, current, current_gen

    def met() -> bool:
        try:
            _, current, current_gen = condition_of(store.get_experiment(name))
        except NotFound:
            return True  # said by the loop below
        return current is not None and current_gen and current.status.value == "True"

    while True:
        try:
            exp = store.get_experiment(name)
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)
        st, current, current_gen = condition_of(exp)
        if current is not None and current_gen and current.status.value == "True":
            out(f"experiment/{name} condition met: {cond}")
            raise typer.Exit(EXIT_OK)
        finished = next((c for c in (st.conditions if st else []) if c.type == "Finished"), None)
        if current_gen and finished is not None and finished.status.value == "True":
            msg = f" ({current.reason}: {current.message})" if current else ""
            die(f"experiment/{name} finished without {cond}=True{msg}", EXIT_FAILED)
        if deadline is not None and time.monotonic() > deadline:
            die(f"timed out waiting for {cond} on experiment/{name}", EXIT_FAILED)
        if store.lease() is None:
            # nobody reconciles: do it here until the condition is met or the experiment
            # settles (a condition such as Submitted comes long before convergence)
            left = None if deadline is None else deadline - time.monotonic()
            code = wait_converged(store, [name], left, stop_when=met)
            if code == EXIT_FAILED and deadline is not None and time.monotonic() > deadline:
                raise typer.Exit(EXIT_FAILED)  # wait_converged said it timed out, and why
            if code not in (EXIT_OK, EXIT_FAILED, WAIT_STOPPED):
                raise typer.Exit(code)
            continue
        time.sleep(0.5)


def register(app: typer.Typer) -> None:
    """Add ``wait`` to ``app``."""
    app.command("wait")(wait_cmd)
