"""``lxr get KIND [NAME...]``: list resources as a table, or dump them for tools.

Kinds take any of kubectl's forms: ``experiments``/``experiment``/``exp``, ``workunits``/
``wu``, ``clusters``, ``events``, and ``kind/name``. This module declares the options for
typer; the bodies are in :mod:`lxr.cli.listing` (which the fast path calls without typer).
"""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli import listing
from lxr.cli.completion import cluster_names, experiment_names, work_unit_names
from lxr.cli.kind_group import KindGroup
from lxr.cli.listing import iter_work_units, parse_phase
from lxr.cli.options import (
    LabelOpt,
    NoHeadersOpt,
    OutputOpt,
    SortByOpt,
    WatchOpt,
)

__all__ = [
    "get_app",
    "get_clusters",
    "get_events",
    "get_experiments",
    "get_workunits",
    "iter_work_units",
    "parse_phase",
    "register",
]

get_app = typer.Typer(
    cls=KindGroup,
    help="List resources (kubectl style): experiments (exp), workunits (wu), clusters, "
    "events; KIND/NAME works too.",
    no_args_is_help=True,
)

_NamesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Names; all when omitted.", autocompletion=experiment_names),
]


@get_app.command("experiments")
def get_experiments(
    names: _NamesArg = None,
    selector: LabelOpt = None,
    output: OutputOpt = "table",
    watch: WatchOpt = False,
    sort_by: SortByOpt = None,
    no_headers: NoHeadersOpt = False,
) -> None:
    """List experiments with their phase and work-unit counts.

    \b
    Example:  lxr get experiments -l team=vision -o wide
    """
    listing.get_experiments(names, selector, output, watch, sort_by, no_headers)


@get_app.command("workunits")
def get_workunits(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Experiments (all their work units) or work units (EXPERIMENT-INDEX); "
            "all when omitted.",
            autocompletion=work_unit_names,
        ),
    ] = None,
    selector: LabelOpt = None,
    phase: Annotated[
        str | None,
        typer.Option("--phase", help="Only work units in this phase (any case), e.g. Failed."),
    ] = None,
    output: OutputOpt = "table",
    watch: WatchOpt = False,
    sort_by: SortByOpt = None,
    no_headers: NoHeadersOpt = False,
) -> None:
    """List work units with their phase, attempts, job ids and exit codes.

    Work units carry the labels experiment=NAME and index=N.

    \b
    Example:  lxr get workunits -l experiment=quickstart -o json
    """
    listing.get_workunits(names, selector, phase, output, watch, sort_by, no_headers)


@get_app.command("clusters")
def get_clusters(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Names; all when omitted.", autocompletion=cluster_names),
    ] = None,
    selector: LabelOpt = None,
    output: OutputOpt = "table",
    sort_by: SortByOpt = None,
    no_headers: NoHeadersOpt = False,
) -> None:
    """List clusters (local always exists)."""
    listing.get_clusters(names, selector, output, sort_by, no_headers)


@get_app.command("events")
def get_events(
    experiment: Annotated[str | None, typer.Argument(help="Only this experiment's events.")] = None,
    watch: WatchOpt = False,
    limit: Annotated[int, typer.Option("--limit", help="How many recent events.")] = 50,
    output: OutputOpt = "table",
    no_headers: NoHeadersOpt = False,
) -> None:
    """Recent events: submissions, preemptions, retries, failures, cancellations."""
    listing.get_events(experiment, watch, limit, output, no_headers)


def register(app: typer.Typer) -> None:
    """Add the ``get`` group to ``app``."""
    app.add_typer(get_app, name="get")
