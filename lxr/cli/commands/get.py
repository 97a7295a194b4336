"""``lxr get KIND [NAME...]``: list resources as a table, or dump them for tools.

Kinds take any of kubectl's forms: ``experiments``/``experiment``/``exp``, ``workunits``/
``wu``, ``clusters``, ``events``, and ``kind/name``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any

import typer

from lxr.cli.completion import cluster_names, experiment_names, work_unit_names
from lxr.cli.console import EXIT_FAILED, EXIT_USAGE, die, note
from lxr.cli.kinds import KindGroup, names_for
from lxr.cli.options import (
    LabelOpt,
    NoHeadersOpt,
    OutputOpt,
    SortByOpt,
    WatchOpt,
    open_store,
    parse_output,
    selector_of,
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


def _show(
    kind: str,
    fetch: Callable[[], Iterable[Any]],
    output: str,
    *,
    single: bool,
    what: str,
    watch: bool = False,
    no_headers: bool = False,
    sort_by: str | None = None,
) -> None:
    """The body of every ``get``: print once, or (``-w``) again whenever it changes."""
    from lxr.cli.printing import print_items

    spec = parse_output(output)
    if sort_by:
        from lxr.cli.jsonpath import JsonPathError, parse_path

        try:
            parse_path(sort_by.strip().removeprefix("{").removesuffix("}"))
        except JsonPathError as exc:
            die(f"--sort-by: {exc}", EXIT_USAGE)
    if not watch:
        n = print_items(kind, fetch(), spec, single=single, no_headers=no_headers, sort_by=sort_by)
        if n == 0 and spec.format in ("table", "wide", "custom-columns"):
            note(f"No {what} found.")
        return
    _watch(
        lambda buf: print_items(
            kind, fetch(), spec, single=single, no_headers=no_headers, sort_by=sort_by
        )
    )


def _watch(render: Callable[[io.StringIO], int]) -> None:
    """Print what ``render`` writes, again each time it changes (a live view on a terminal)."""
    import contextlib
    import sys

    def text() -> str:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            render(buf)
        return buf.getvalue()

    try:
        if not sys.stdout.isatty():
            last = ""
            while True:
                now = text()
                if now != last:
                    sys.stdout.write(now)
                    sys.stdout.flush()
                    last = now
                time.sleep(1.0)
        from rich.live import Live
        from rich.text import Text

        from lxr.cli.console import rich_console

        with Live(console=rich_console(), refresh_per_second=2, transient=False) as live:
            while True:
                live.update(Text(text().rstrip("\n")))
                time.sleep(1.0)
    except KeyboardInterrupt:
        pass


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
    from lxr.store import NotFound

    wanted = names_for("Experiment", names)
    sel = selector_of(selector)
    parse_output(output)
    store = open_store(read_only=True)

    def fetch() -> list[Any]:
        try:
            if wanted:
                exps = [store.get_experiment(n) for n in wanted]
            else:
                exps = store.list_experiments()
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)
        return [e for e in exps if sel.matches(e.metadata.labels)]

    _show(
        "Experiment",
        fetch,
        output,
        single=len(wanted) == 1,
        what="experiments",
        watch=watch,
        no_headers=no_headers,
        sort_by=sort_by,
    )


def parse_phase(phase: str | None) -> str | None:
    """``--phase`` in any case as the phase's name; exit 2 naming the phases otherwise."""
    if phase is None:
        return None
    from lxr.api.resources import WorkUnitPhase

    known = {p.value.lower(): p.value for p in WorkUnitPhase}
    if phase.lower() not in known:
        die(f"--phase {phase!r}: expected one of {', '.join(known.values())}", EXIT_USAGE)
    return known[phase.lower()]


# labels a work unit has of its own; the others are its experiment's
_UNIT_KEYS = ("index", "name")


def iter_work_units(
    store: Any, names: list[str], selector: Any, phase: str | None
) -> Iterator[dict[str, Any]]:
    """The JSON form of the work units asked for, experiment by experiment, in pages.

    A NAME is an experiment (all its work units) or one work unit (``EXPERIMENT-INDEX``).
    ``-l`` keys ``index`` and ``name`` are the work unit's; ``experiment`` and the rest are
    matched against its experiment (its labels and ``experiment=NAME``).
    """
    from lxr.store import NotFound

    unit_sel, exp_sel = selector.split(_UNIT_KEYS)
    targets: list[tuple[str, int | None]] = []
    if names:
        for name in names:
            try:
                store.experiment_uid(name)
                targets.append((name, None))
                continue
            except NotFound:
                pass
            exp, _, idx = name.rpartition("-")
            try:
                if exp and idx.isdigit():
                    store.experiment_uid(exp)
                    targets.append((exp, int(idx)))
                    continue
            except NotFound:
                pass
            why = f" ({store.why})" if hasattr(store, "why") else ""
            die(f"no experiment or work unit named {name!r}{why}", EXIT_FAILED)
    else:
        for exp in store.list_experiments():
            labels = {**exp.metadata.labels, "experiment": exp.metadata.name}
            if exp_sel.matches(labels):
                targets.append((exp.metadata.name, None))
        exp_sel = type(exp_sel)()
    for exp_name, index in targets:
        try:
            page = store.iter_work_units(exp_name, phase=phase, index=index)
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)
        for unit in page:
            if unit_sel and not unit_sel.matches(unit["metadata"]["labels"]):
                continue
            if exp_sel and not exp_sel.matches(unit["metadata"]["labels"]):
                continue
            yield unit


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
    wanted = names_for("WorkUnit", names)
    sel = selector_of(selector)
    phase = parse_phase(phase)
    parse_output(output)
    store = open_store(read_only=True)
    _show(
        "WorkUnit",
        lambda: iter_work_units(store, wanted, sel, phase),
        output,
        single=False,
        what="work units",
        watch=watch,
        no_headers=no_headers,
        sort_by=sort_by,
    )


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
    wanted = names_for("Cluster", names)
    sel = selector_of(selector)
    parse_output(output)
    store = open_store(read_only=True)

    def fetch() -> list[Any]:
        from lxr.store import NotFound

        try:
            clusters = [store.get_cluster(n) for n in wanted] or store.list_clusters()
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)
        return [c for c in clusters if sel.matches(c.metadata.labels)]

    _show(
        "Cluster",
        fetch,
        output,
        single=len(wanted) == 1,
        what="clusters",
        no_headers=no_headers,
        sort_by=sort_by,
    )


@get_app.command("events")
def get_events(
    experiment: Annotated[str | None, typer.Argument(help="Only this experiment's events.")] = None,
    watch: WatchOpt = False,
    limit: Annotated[int, typer.Option("--limit", help="How many recent events.")] = 50,
    output: OutputOpt = "table",
    no_headers: NoHeadersOpt = False,
) -> None:
    """Recent events: submissions, preemptions, retries, failures, cancellations."""
    from lxr.cli.output import event_dict
    from lxr.cli.printing import print_items
    from lxr.store import NotFound

    spec = parse_output(output)
    if experiment:
        experiment = names_for("Experiment", [experiment])[0]
    store = open_store(read_only=True)
    try:
        events = store.list_events(experiment, limit=limit)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)
    if not events and spec.tabular and not watch:
        note("No events found.")
    print_items("Event", [event_dict(e) for e in events], spec, no_headers=no_headers)
    last = events[-1].id if events else 0
    try:
        while watch:
            time.sleep(1.0)
            new = store.list_events(experiment, after_id=last, limit=1000)
            if new:
                print_items("Event", [event_dict(e) for e in new], spec, no_headers=True)
                last = new[-1].id
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add the ``get`` group to ``app``."""
    app.add_typer(get_app, name="get")
