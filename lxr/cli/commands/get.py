"""``lxr get KIND``: list resources as a table, or dump them as JSON/YAML/names."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from lxr.cli.console import EXIT_FAILED, console, die, err
from lxr.cli.options import (
    LabelOpt,
    Output,
    OutputOpt,
    WatchOpt,
    open_store,
    parse_selector,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = [
    "get_app",
    "get_clusters",
    "get_events",
    "get_experiments",
    "get_workunits",
    "print_objects",
    "register",
]

get_app = typer.Typer(help="List resources (kubectl style).", no_args_is_help=True)


def print_objects(objs, output: Output, single: bool, table_fn: Callable) -> None:  # noqa: ANN001
    """``objs`` in the ``output`` format; ``table_fn(objs, wide)`` builds the table."""
    from lxr.cli.output import dump, print_table

    if output in (Output.json, Output.yaml):
        console.print(
            dump(objs, output.value, single), highlight=False, soft_wrap=True, markup=False
        )
    elif output is Output.name:
        for obj in objs:
            name = obj.metadata["name"] if isinstance(obj.metadata, dict) else obj.metadata.name
            console.print(f"{obj.kind.lower()}/{name}", highlight=False)
    else:
        print_table(console, table_fn(objs, output is Output.wide))


def _get(
    fetch: Callable[[], list],
    output: Output,
    watch: bool,
    table_fn: Callable,
    *,
    single: bool,
    what: str,
) -> None:
    """The body of every ``get``: a table (kept up to date with --watch) or a dump."""
    tabular = output in (Output.table, Output.wide)
    if watch and tabular:
        _watch_loop(lambda: table_fn(fetch(), output is Output.wide), True)
        return
    objs = fetch()
    if not objs and tabular:
        err.print(f"No {what} found.")
        return
    print_objects(objs, output, single=single, table_fn=table_fn)


def _watch_loop(render: Callable[[], RenderableType], watch: bool) -> None:
    if not watch:
        render()
        return
    from rich.live import Live

    try:
        if not console.is_terminal:  # piped: print the table again each time it changes
            last = ""
            while True:
                with console.capture() as captured:
                    console.print(render())
                text = captured.get()
                if text != last:
                    console.out(text, end="", highlight=False)
                    console.file.flush()
                    last = text
                time.sleep(1.0)
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while True:
                live.update(render())
                time.sleep(1.0)
    except KeyboardInterrupt:
        pass


@get_app.command("experiments")
def get_experiments(
    name: Annotated[str | None, typer.Argument(help="One experiment; all when omitted.")] = None,
    selector: LabelOpt = None,
    output: OutputOpt = Output.table,
    watch: WatchOpt = False,
) -> None:
    """List experiments with their phase and work-unit counts.

    Example:  lxr get experiments -l team=vision -o wide
    """
    from lxr.cli.output import experiments_table
    from lxr.store import NotFound

    store = open_store()
    labels = parse_selector(selector)

    def fetch():  # noqa: ANN202
        try:
            return [store.get_experiment(name)] if name else store.list_experiments(labels)
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)

    _get(fetch, output, watch, experiments_table, single=name is not None, what="experiments")


@get_app.command("workunits")
def get_workunits(
    experiment: Annotated[
        str | None, typer.Argument(help="The experiment whose work units to list.")
    ] = None,
    selector: LabelOpt = None,
    phase: Annotated[
        str | None, typer.Option("--phase", help="Only work units in this phase.")
    ] = None,
    output: OutputOpt = Output.table,
    watch: WatchOpt = False,
) -> None:
    """List work units with their phase, attempts, job ids and exit codes.

    Work units carry the labels experiment=NAME and index=N.
    Example:  lxr get workunits -l experiment=quickstart -o json
    """
    from lxr.cli.output import work_units_table
    from lxr.store import NotFound

    store = open_store()
    labels = parse_selector(selector)
    # `index` is a work unit's own label, not one of its experiment's
    index = labels.pop("index", None)

    def fetch():  # noqa: ANN202
        try:
            units = store.list_work_units(experiment, selector=labels, phase=phase)
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)
        return [u for u in units if index is None or u.metadata["labels"]["index"] == index]

    _get(fetch, output, watch, work_units_table, single=False, what="work units")


@get_app.command("clusters")
def get_clusters(output: OutputOpt = Output.table) -> None:
    """List clusters (``local`` always exists)."""
    from lxr.cli.output import clusters_table

    print_objects(
        open_store().list_clusters(), output, single=False, table_fn=lambda o, _w: clusters_table(o)
    )


@get_app.command("events")
def get_events(
    experiment: Annotated[str | None, typer.Argument(help="Only this experiment's events.")] = None,
    watch: WatchOpt = False,
    limit: Annotated[int, typer.Option("--limit", help="How many recent events.")] = 50,
) -> None:
    """Recent events: submissions, preemptions, retries, failures, cancellations."""
    from lxr.cli.output import events_table, print_table
    from lxr.store import NotFound

    store = open_store()
    try:
        events = store.list_events(experiment, limit=limit)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)
    print_table(console, events_table(events))
    last = events[-1].id if events else 0
    try:
        while watch:
            time.sleep(1.0)
            new = store.list_events(experiment, after_id=last, limit=1000)
            if new:
                print_table(console, events_table(new))
                last = new[-1].id
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add the ``get`` group to ``app``."""
    app.add_typer(get_app, name="get")
