"""The bodies of ``lxr get`` (and ``describe experiment``): what they read and how they print,
without typer. ``lxr.cli.commands.get`` declares their options for typer (and ``--help``);
:mod:`lxr.cli.fastpath` calls the same functions straight from ``argv``, so a read never pays
for the command-line library, SQLAlchemy's ORM or pydantic unless it needs whole objects.

They read through a :class:`~lxr.store.reads.Reader`: rows in their JSON form, in pages for
work units, so the first row of 100k is printed at once.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

from lxr.cli.console import EXIT_FAILED, EXIT_USAGE, die, note
from lxr.cli.formats import OutputSpec, parse_output, selector_of
from lxr.cli.kinds import names_for
from lxr.cli.stores import open_reader

__all__ = [
    "describe_experiment_named",
    "get_clusters",
    "get_events",
    "get_experiments",
    "get_workunits",
    "iter_work_units",
    "parse_phase",
]

# the formats that print only what the table (or the name) shows: no need for whole objects
_LIGHT = ("table", "wide", "name")


def _needs_models(spec: OutputSpec, sort_by: str | None) -> bool:
    """Whether the output shows whole objects (normalized by their models), not just a
    table's columns."""
    return spec.format not in _LIGHT or bool(sort_by)


def _show(
    kind: str,
    fetch: Callable[[], Iterable[Any]],
    spec: OutputSpec,
    *,
    single: bool,
    what: str,
    watch: bool = False,
    no_headers: bool = False,
    sort_by: str | None = None,
    presorted: bool = False,
) -> None:
    """The body of every ``get``: print once, or (``-w``) again whenever it changes.
    ``presorted``: ``fetch`` gives the items in ``sort_by`` order already (from SQL)."""
    from lxr.cli.printing import print_items

    if sort_by:
        _check_sort_by(sort_by)
        if presorted:
            sort_by = None
    _render(
        lambda: print_items(
            kind, fetch(), spec, single=single, no_headers=no_headers, sort_by=sort_by
        ),
        spec,
        what,
        watch,
    )


def _without_gc(render: Callable[[], int]) -> Callable[[], int]:
    """``render`` with the cycle collector paused: a listing of 100k work units makes
    millions of short-lived objects and no cycles, which reference counting frees as it goes
    (the collector's passes over them cost ~5-10% of the listing)."""

    def run() -> int:
        import gc

        was = gc.isenabled()
        gc.disable()
        try:
            return render()
        finally:
            if was:
                gc.enable()

    return run


def _check_sort_by(sort_by: str) -> None:
    """Exit 2 naming what is wrong with a ``--sort-by`` path."""
    from lxr.cli.jsonpath import JsonPathError, parse_path

    try:
        parse_path(sort_by.strip().removeprefix("{").removesuffix("}"))
    except JsonPathError as exc:
        die(f"--sort-by: {exc}", EXIT_USAGE)


def _render(render: Callable[[], int], spec: OutputSpec, what: str, watch: bool) -> None:
    """Print what ``render`` prints (it returns how many items) once, or (``-w``) again
    whenever it changes."""
    render = _without_gc(render)
    if not watch:
        if render() == 0 and spec.format in ("table", "wide", "custom-columns"):
            note(f"No {what} found.")
        return
    _watch(lambda buf: render())


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


def _get_objects(
    kind: str,
    what: str,
    fetch_one: Callable[[Any, str, bool], dict[str, Any]],
    fetch_all: Callable[[Any, bool], list[dict[str, Any]]],
    names: list[str] | None,
    selector: list[str] | None,
    output: str,
    sort_by: str | None,
    no_headers: bool,
    watch: bool = False,
) -> None:
    """``lxr get`` of experiments or clusters: the ones named, or all, matching ``-l``."""
    from lxr.store.errors import NotFound

    wanted = names_for(kind, names)
    sel = selector_of(selector)
    spec = parse_output(output)
    full = _needs_models(spec, sort_by)
    store = open_reader()

    def fetch() -> list[Any]:
        try:
            objs = [fetch_one(store, n, full) for n in wanted] or fetch_all(store, full)
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)
        return [o for o in objs if sel.matches(o["metadata"]["labels"])]

    _show(
        kind,
        fetch,
        spec,
        single=len(wanted) == 1,
        what=what,
        watch=watch,
        no_headers=no_headers,
        sort_by=sort_by,
    )


def get_experiments(
    names: list[str] | None,
    selector: list[str] | None,
    output: str,
    watch: bool,
    sort_by: str | None,
    no_headers: bool,
) -> None:
    """``lxr get experiments``."""
    _get_objects(
        "Experiment",
        "experiments",
        lambda store, name, full: store.get_experiment(name, full=full),
        lambda store, full: store.list_experiments(full=full),
        names,
        selector,
        output,
        sort_by,
        no_headers,
        watch,
    )


def parse_phase(phase: str | None) -> str | None:
    """``--phase`` in any case as the phase's name; exit 2 naming the phases otherwise."""
    if phase is None:
        return None
    from lxr.api.phases import WorkUnitPhase

    known = {p.value.lower(): p.value for p in WorkUnitPhase}
    if phase.lower() not in known:
        die(f"--phase {phase!r}: expected one of {', '.join(known.values())}", EXIT_USAGE)
    return known[phase.lower()]


# labels a work unit has of its own; the others are its experiment's
_UNIT_KEYS = ("index", "name")


def _labels(exp: Any) -> Mapping[str, str]:
    """An experiment's labels, from its JSON form (a reader's) or its model (the store's)."""
    return exp["metadata"]["labels"] if isinstance(exp, dict) else exp.metadata.labels


def _name(exp: Any) -> str:
    return exp["metadata"]["name"] if isinstance(exp, dict) else exp.metadata.name


def sql_path(store: Any, sort_by: str | None) -> tuple[str, ...] | None:
    """The work-unit field (a key of :data:`~lxr.store.reads.UNIT_ORDER`) that ``--sort-by``
    names, when the store orders it in SQL (then the listing still streams), else None (the
    printer sorts them all in memory)."""
    if not sort_by or not getattr(store, "orders_in_sql", False):
        return None
    from lxr.cli.jsonpath import JsonPathError, parse_path
    from lxr.store.reads import UNIT_ORDER

    try:
        steps = parse_path(sort_by.strip().removeprefix("{").removesuffix("}"))
    except JsonPathError:
        return None  # the printer says what is wrong with it
    if not all(kind == "field" for kind, _ in steps):
        return None
    path = tuple(name for _, name in steps)
    return path if path in UNIT_ORDER else None


def sql_order(store: Any, sort_by: str | None) -> str | None:
    """The SQL term that orders work units as ``--sort-by`` asks (:func:`sql_path`), or None."""
    from lxr.store.reads import UNIT_ORDER

    path = sql_path(store, sort_by)
    return None if path is None else UNIT_ORDER[path]


def _targets(
    store: Any, names: list[str] | None, selector: Any
) -> tuple[list[tuple[str, int | None]], Any]:
    """What a listing of work units reads: (experiment, index or None for all) pairs, and
    the part of ``selector`` each work unit must still match (see :func:`iter_work_units`)."""
    from lxr.cli.selectors import Selector
    from lxr.store.errors import NotFound

    unit_sel, exp_sel = selector.split(_UNIT_KEYS)
    targets: list[tuple[str, int | None]] = []
    if not names:
        for exp in store.list_experiments():
            labels = {**_labels(exp), "experiment": _name(exp)}
            if exp_sel.matches(labels):
                targets.append((_name(exp), None))
        return targets, unit_sel
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
        why = f" ({store.why})" if getattr(store, "why", "") else ""
        die(f"no experiment or work unit named {name!r}{why}", EXIT_FAILED)
    return targets, Selector((*unit_sel.requirements, *exp_sel.requirements))


def iter_work_units(
    store: Any,
    names: list[str],
    selector: Any,
    phase: str | None,
    *,
    sort_by: str | None = None,
    table: bool = False,
) -> Iterator[dict[str, Any]]:
    """The JSON form of the work units asked for, experiment by experiment, in pages.

    A NAME is an experiment (all its work units) or one work unit (``EXPERIMENT-INDEX``).
    ``-l`` keys ``index`` and ``name`` are the work unit's; ``experiment`` and the rest are
    matched against its experiment (its labels and ``experiment=NAME``). ``store`` is a
    reader or the full store. With ``sort_by`` (:func:`sql_order` must know it), each
    experiment's work units come ordered from SQL and are merged, so they still stream.
    ``table`` (a reader only): the attempts hold only what a table shows.
    """
    from lxr.store.errors import NotFound

    targets, unit_sel = _targets(store, names, selector)
    order = sql_path(store, sort_by)
    extra: dict[str, Any] = {"table": True} if table else {}
    if order is not None:
        extra["order_by"] = order

    def units(exp_name: str, index: int | None) -> Iterator[dict[str, Any]]:
        try:
            page = store.iter_work_units(exp_name, phase=phase, index=index, **extra)
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)
        for unit in page:
            if unit_sel and not unit_sel.matches(unit["metadata"]["labels"]):
                continue
            yield unit

    if order is None:
        for exp_name, index in targets:
            yield from units(exp_name, index)
        return
    import heapq

    from lxr.cli.printing import sort_key

    # each stream is in --sort-by order already; merging keeps ties in stream order, as a
    # stable sort of them one after the other would
    yield from heapq.merge(*(units(e, i) for e, i in targets), key=sort_key(sort_by or ""))


def _unit_rows(
    store: Any,
    names: list[str] | None,
    selector: Any,
    phase: str | None,
    cells: Sequence[str],
    path: tuple[str, ...] | None,
) -> Iterator[Sequence[Sequence[Any]]]:
    """Pages of rows of the SQL ``cells`` (:data:`~lxr.store.reads.UNIT_CELLS`) of the work
    units asked for (as :func:`iter_work_units`, with no ``-l`` on the work units' own
    labels); ordered by the field at ``path`` in SQL, and merged across experiments by its
    value (each row's last cell), ties in stream order."""
    from lxr.store.errors import NotFound

    targets, _ = _targets(store, names, selector)

    def pages(exp_name: str, index: int | None) -> Iterator[Sequence[Sequence[Any]]]:
        try:
            return store.iter_unit_rows(exp_name, cells, phase=phase, index=index, order_by=path)
        except NotFound as exc:
            die(str(exc), EXIT_FAILED)

    if path is None or len(targets) < 2:
        for exp_name, index in targets:
            yield from pages(exp_name, index)
        return
    import heapq
    from itertools import chain, islice

    from lxr.cli.printing import value_key
    from lxr.store.reads import PAGE_SIZE

    merged = heapq.merge(
        *(chain.from_iterable(pages(e, i)) for e, i in targets), key=lambda r: value_key(r[-1])
    )
    while page := list(islice(merged, PAGE_SIZE)):
        yield page


def _print_unit_records(
    store: Any,
    names: list[str] | None,
    selector: Any,
    phase: str | None,
    sort_by: str | None,
    path: tuple[str, ...] | None,
    fmt: str,
) -> int:
    """``-o json`` or ``-o yaml`` of the work units asked for, written from their rows (no
    JSON form built), experiment after experiment; several experiments in ``--sort-by``
    order are merged as JSON forms (:func:`iter_work_units`). Returns how many."""
    import sys

    from lxr.cli.output import write_list
    from lxr.store.errors import NotFound
    from lxr.store.jsonform import API_VERSION

    targets, _ = _targets(store, names, selector)
    if path is not None and len(targets) > 1:
        units = iter_work_units(store, names or [], selector, phase, sort_by=sort_by)
        return write_list(units, fmt, sys.stdout)

    def records() -> Iterator[Any]:
        for exp_name, index in targets:
            try:
                name, uid, rows = store.iter_unit_records(
                    exp_name, phase=phase, index=index, order_by=path
                )
            except NotFound as exc:
                die(str(exc), EXIT_FAILED)
            for unit, attempts in rows:
                yield name, uid, unit, attempts

    if fmt == "json":
        from lxr.cli import jsontext

        sys.stdout.write(f'{{\n  "apiVersion": "{API_VERSION}",\n  "kind": "List",\n  "items": [')
        n = jsontext.write_unit_records(records(), sys.stdout)
        sys.stdout.write("\n  ]\n}\n" if n else "]\n}\n")
        return n
    from lxr.cli.yamltext import write_unit_records, write_yaml

    write_yaml({"apiVersion": API_VERSION, "kind": "List"}, sys.stdout)
    it = records()
    for first in it:
        sys.stdout.write("items:\n")
        return write_unit_records(chain([first], it), sys.stdout)
    sys.stdout.write("items: []\n")
    return 0


def _rows_do(names: list[str] | None, selector: Any) -> bool:
    """Whether rows from SQL can show the work units ``selector`` leaves: no requirement on
    a work unit's own labels (those are matched on whole objects)."""
    unit_sel, exp_sel = selector.split(_UNIT_KEYS)
    return not unit_sel and not (names and exp_sel)


def get_workunits(
    names: list[str] | None,
    selector: list[str] | None,
    phase: str | None,
    output: str,
    watch: bool,
    sort_by: str | None,
    no_headers: bool,
) -> None:
    """``lxr get workunits``."""
    wanted = names_for("WorkUnit", names)
    sel = selector_of(selector)
    phase = parse_phase(phase)
    spec = parse_output(output)
    store = open_reader()
    path = sql_path(store, sort_by)
    if spec.format in _LIGHT and (path is not None or not sort_by) and _rows_do(wanted, sel):
        # a table or names: cells from SQL, no objects built
        from lxr.cli.printing import print_unit_rows
        from lxr.store.reads import UNIT_NAME_CELLS, UNIT_TABLE_CELLS, UNIT_WIDE_CELLS

        fmt = spec.format
        cells = {"name": UNIT_NAME_CELLS, "wide": UNIT_WIDE_CELLS}.get(fmt, UNIT_TABLE_CELLS)
        _render(
            lambda: print_unit_rows(
                _unit_rows(store, wanted, sel, phase, cells, path), fmt, no_headers=no_headers
            ),
            spec,
            "work units",
            watch,
        )
        return
    if (
        spec.format in ("json", "yaml")
        and (path is not None or not sort_by)
        and _rows_do(wanted, sel)
    ):
        fmt = spec.format
        _render(
            lambda: _print_unit_records(store, wanted, sel, phase, sort_by, path, fmt),
            spec,
            "work units",
            watch,
        )
        return
    presorted = path is not None
    table = not _needs_models(spec, sort_by)
    _show(
        "WorkUnit",
        lambda: iter_work_units(store, wanted, sel, phase, sort_by=sort_by, table=table),
        spec,
        single=False,
        what="work units",
        watch=watch,
        no_headers=no_headers,
        sort_by=sort_by,
        presorted=presorted,
    )


def get_clusters(
    names: list[str] | None,
    selector: list[str] | None,
    output: str,
    sort_by: str | None,
    no_headers: bool,
) -> None:
    """``lxr get clusters``."""
    _get_objects(
        "Cluster",
        "clusters",
        lambda store, name, full: store.get_cluster(name, full=full),
        lambda store, full: store.list_clusters(full=full),
        names,
        selector,
        output,
        sort_by,
        no_headers,
    )


def get_events(
    experiment: str | None, watch: bool, limit: int, output: str, no_headers: bool
) -> None:
    """``lxr get events``."""
    from lxr.cli.output import event_dict
    from lxr.cli.printing import print_items
    from lxr.store.errors import NotFound

    spec = parse_output(output)
    if experiment:
        experiment = names_for("Experiment", [experiment])[0]
    store = open_reader()
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


def describe_experiment_named(name: str) -> None:
    """``lxr describe experiment NAME``."""
    from lxr.cli.describe import describe_experiment
    from lxr.store.errors import NotFound

    try:
        describe_experiment(open_reader(), name)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)
