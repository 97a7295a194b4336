"""``lxr describe KIND NAME``: experiments, work units and clusters in detail."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.completion import cluster_names, experiment_names, work_unit_names
from lxr.cli.console import EXIT_FAILED, die
from lxr.cli.kind_group import KindGroup
from lxr.cli.options import open_store

__all__ = ["describe_app", "register"]

describe_app = typer.Typer(
    cls=KindGroup,
    help="Show one resource in detail: experiment (exp), workunit (wu) or cluster; "
    "KIND/NAME works too.",
    no_args_is_help=True,
)


@describe_app.command("experiment")
def describe_experiment_cmd(
    name: Annotated[
        str, typer.Argument(help="The experiment's name.", autocompletion=experiment_names)
    ],
) -> None:
    """Conditions, counts, work units needing attention, recent events."""
    from lxr.cli.listing import describe_experiment_named

    describe_experiment_named(name)


@describe_app.command("workunit")
def describe_workunit_cmd(
    name: Annotated[
        str,
        typer.Argument(help="The work unit: EXPERIMENT-INDEX.", autocompletion=work_unit_names),
    ],
) -> None:
    """A work unit's args, phase and every attempt (job id, state, exit code, reason)."""
    from lxr.cli.describe import describe_workunit
    from lxr.store import NotFound

    exp, _, idx = name.rpartition("-")
    if not exp or not idx.isdigit():
        die(f"work unit {name!r}: expected EXPERIMENT-INDEX, e.g. quickstart-3")
    try:
        describe_workunit(open_store(read_only=True), exp, int(idx))
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)


@describe_app.command("cluster")
def describe_cluster_cmd(
    name: Annotated[str, typer.Argument(help="The cluster's name.", autocompletion=cluster_names)],
) -> None:
    """A cluster's scheduler, login node, staging directory, limits and experiments."""
    from lxr.cli.describe import describe_cluster
    from lxr.store import NotFound

    try:
        describe_cluster(open_store(read_only=True), name)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add the ``describe`` group to ``app``."""
    app.add_typer(describe_app, name="describe")
