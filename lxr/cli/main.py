"""The ``lxr`` command line: kubectl habits for experiments on HPC clusters."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from lxr import __version__

__all__ = ["app", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# piped output is read by tools and people with wide screens: don't wrap tables at 80 columns
console = Console(width=None if sys.stdout.isatty() else 250)
# messages are never wrapped: people and tools grep them
err = Console(stderr=True, soft_wrap=True)

app = typer.Typer(
    name="lxr",
    help=(
        "lxr reconciles ML experiments on HPC clusters.\n\n"
        "You describe experiments (sweeps of work units) in YAML or an XManager launch script; "
        "lxr stores that desired state and a controller submits job arrays, watches the "
        "scheduler, retries preempted and failed tasks, and cancels what you delete.\n\n"
        "Start here:  lxr apply -f examples/quickstart.yaml --wait"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
get_app = typer.Typer(help="List resources (kubectl style).", no_args_is_help=True)
controller_app = typer.Typer(help="Run the reconcile loop.", no_args_is_help=True)
app.add_typer(get_app, name="get")
app.add_typer(controller_app, name="controller")


class Output(str, Enum):
    """Output formats."""

    table = "table"
    wide = "wide"
    yaml = "yaml"
    json = "json"
    name = "name"


def _die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _store():  # noqa: ANN202 - imported lazily so `lxr --help` stays fast
    from lxr.api.store import Store

    try:
        return Store()
    except Exception as exc:  # noqa: BLE001
        from lxr.api.store import default_database_url

        _die(f"cannot open the database {default_database_url()}: {exc}", EXIT_FAILED)


def _selector(labels: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in labels or []:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key:
                _die(f"-l {part!r}: expected key=value")
            out[key.strip()] = value.strip()
    return out


def _only_experiments(kind: str, verb: str, what: str = "only experiments") -> None:
    """Commands that act on experiments take ``experiment`` (or ``exp``) as their first word."""
    if kind not in ("experiment", "experiments", "exp"):
        _die(f"cannot {verb} {kind!r}: {what}")


def _version(value: bool) -> None:
    if value:
        console.print(f"lxr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the controller does.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# ---------------------------------------------------------------------------- apply


@app.command()
def apply(
    filename: Annotated[
        Path, typer.Option("--filename", "-f", help="A YAML/JSON file, or a directory of them.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show what would change; write nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Wait until the experiments converge, showing progress. Runs the reconciler "
            "in this process when no controller is running.",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="With --wait: give up after this many seconds."),
    ] = None,
) -> None:
    """Create or update resources from FILE. Exit 0 when (with --wait) all succeeded, 1 when
    any failed or the wait timed out, 2 when the input is invalid (nothing is written then).

    Example:  lxr apply -f examples/quickstart.yaml --wait
    """
    from lxr.api.loader import LoadError, load_objects
    from lxr.api.store import Conflict, Invalid

    try:
        loaded = load_objects(filename)
    except LoadError as exc:
        for problem in exc.problems:
            err.print(f"[red]error:[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    store = _store()
    # clusters first: experiments refer to them
    loaded.sort(key=lambda item: item.obj.kind != "Cluster")
    results = []
    try:
        if dry_run:
            batch = [i.obj.metadata.name for i in loaded if i.obj.kind == "Cluster"]
            results = [store.apply(i.obj, dry_run=True, pending_clusters=batch) for i in loaded]
        else:
            # validate every object against the store before writing any
            for item in loaded:
                if item.obj.kind == "Experiment":
                    _check_experiment(store, item.obj, [i.obj for i in loaded])
            results = [store.apply(item.obj) for item in loaded]
    except (Invalid, Conflict) as exc:
        _die(str(exc))
    for item in loaded:
        for field in item.ignored:
            err.print(f"[yellow]warning:[/] {item.source}: {field} is written by lxr; ignored")
    for res in results:
        suffix = " (dry run)" if dry_run else ""
        console.print(f"{res.kind.lower()}/{res.name} {res.action}{suffix}", highlight=False)
    if dry_run:
        return
    names = [r.name for r in results if r.kind == "Experiment"]
    controller = _wake_controller(store)
    if not wait:
        if names and controller is None:
            err.print(
                "[dim]no controller is running: start one with `lxr controller run`, "
                "or apply with --wait to run it here[/]"
            )
        return
    raise typer.Exit(_wait_converged(store, names, timeout))


def _check_experiment(store, exp, batch) -> None:  # noqa: ANN001
    """Fail early, before any write, when an experiment names a cluster that will not exist."""
    from lxr.api.store import Invalid, NotFound

    cluster = exp.spec.cluster
    if cluster == "local" or any(o.kind == "Cluster" and o.metadata.name == cluster for o in batch):
        return
    try:
        store.get_cluster(cluster)
    except NotFound as exc:
        raise Invalid(f"experiment {exp.metadata.name}: spec.cluster: {exc}") from None


def _wake_controller(store) -> str | None:  # noqa: ANN001
    """Notify a running controller; returns its holder id, or None when none runs."""
    from lxr.reconciler.wakeup import wake_controller

    return wake_controller(store)


def _wait_converged(store, names: list[str], timeout: float | None, gone: bool = False) -> int:  # noqa: ANN001
    """Reconcile (here, or by watching a running controller) until ``names`` converge."""
    from lxr.cli.progress import Progress

    if not names:
        return EXIT_OK
    progress = Progress(console, store, names, gone=gone)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if store.lease() is None:
            ok = _run_in_process(store, progress, deadline)
        else:
            ok = _watch(progress, deadline)
    except KeyboardInterrupt:
        progress.stop()
        err.print("interrupted; tasks keep running and are picked up by the next controller")
        return 130
    progress.stop()
    if not ok:
        err.print(f"[red]timed out[/] after {timeout:.0f}s; work continues under a controller")
        return EXIT_FAILED
    return progress.final_report()


def _watch(progress, deadline: float | None) -> bool:  # noqa: ANN001
    while not progress.refresh():
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _run_in_process(store, progress, deadline: float | None) -> bool:  # noqa: ANN001
    import anyio

    from lxr.reconciler.controller import Controller

    controller = Controller(store)
    result = {"done": False}

    def until() -> bool:
        result["done"] = progress.refresh()
        return result["done"]

    async def main() -> None:
        with anyio.move_on_after(
            None if deadline is None else max(0.0, deadline - time.monotonic())
        ):
            await controller.run(until=until)

    anyio.run(main)
    return result["done"]


# ---------------------------------------------------------------------------- launch


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def launch(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="An XManager launch script (Python).")],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait until the launched experiments converge, showing progress."
        ),
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="With --wait: give up after S seconds.")
    ] = None,
) -> None:
    """Run an XManager launch script: it writes experiments into the store, then (unless a
    controller is running) lxr reconciles here until every work unit is submitted, or with
    --wait until they converge. Flags after `--` go to the script.

    Example:  lxr launch examples/xm/launch_local.py --wait -- --seeds=2
    Needs the xm extra: pip install 'lxr[xm]'.
    """
    if not script.is_file():
        _die(f"no launch script at {script}")
    try:
        from lxr.xm_cluster.launch import run_script
    except ImportError as exc:
        _die(f"lxr launch needs the xm extra (pip install 'lxr[xm]'): {exc}", EXIT_FAILED)
    code, names = run_script(script, list(ctx.args))
    if code != 0:
        raise typer.Exit(code)
    store = _store()
    for name in names:
        console.print(f"experiment/{name} created", highlight=False)
    if wait:
        raise typer.Exit(_wait_converged(store, names, timeout))
    if names and _wake_controller(store) is None:
        raise typer.Exit(_reconcile_until_submitted(store, names, timeout))


def _reconcile_until_submitted(store, names: list[str], timeout: float | None) -> int:  # noqa: ANN001
    """Run the reconciler here until every work unit of ``names`` reached the scheduler."""
    import anyio

    from lxr.reconciler.controller import Controller

    def submitted() -> bool:
        for name in names:
            st = store.get_experiment(name).status
            conds = {c.type: c.status.value for c in (st.conditions if st else [])}
            if conds.get("Submitted") != "True" and conds.get("Finished") != "True":
                return False
        return True

    async def main() -> None:
        with anyio.move_on_after(timeout):
            await Controller(store).run(until=submitted)

    anyio.run(main)
    if not submitted():
        err.print("[red]timed out[/] before every work unit was submitted")
        return EXIT_FAILED
    err.print(
        "[dim]submitted; no controller is running: start one with `lxr controller run` to "
        "follow the work units (retries, preemption), or launch with --wait[/]"
    )
    return EXIT_OK


# ---------------------------------------------------------------------------- get


def _print_objects(objs, output: Output, single: bool, table_fn: Callable) -> None:  # noqa: ANN001
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
    _print_objects(objs, output, single=single, table_fn=table_fn)


_OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table, wide, yaml, json or name.")
]
_LabelOpt = Annotated[
    list[str] | None,
    typer.Option("--selector", "-l", help="Filter by label: key=value (repeatable)."),
]
_WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Keep printing as things change.")]


def _watch_loop(render: Callable[[], object], watch: bool) -> None:
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
    selector: _LabelOpt = None,
    output: _OutputOpt = Output.table,
    watch: _WatchOpt = False,
) -> None:
    """List experiments with their phase and work-unit counts.

    Example:  lxr get experiments -l team=vision -o wide
    """
    from lxr.api.store import NotFound
    from lxr.cli.output import experiments_table

    store = _store()
    labels = _selector(selector)

    def fetch():  # noqa: ANN202
        try:
            return [store.get_experiment(name)] if name else store.list_experiments(labels)
        except NotFound as exc:
            _die(str(exc), EXIT_FAILED)

    _get(fetch, output, watch, experiments_table, single=name is not None, what="experiments")


@get_app.command("workunits")
def get_workunits(
    experiment: Annotated[
        str | None, typer.Argument(help="The experiment whose work units to list.")
    ] = None,
    selector: _LabelOpt = None,
    phase: Annotated[
        str | None, typer.Option("--phase", help="Only work units in this phase.")
    ] = None,
    output: _OutputOpt = Output.table,
    watch: _WatchOpt = False,
) -> None:
    """List work units with their phase, attempts, job ids and exit codes.

    Work units carry the labels experiment=NAME and index=N.
    Example:  lxr get workunits -l experiment=quickstart -o json
    """
    from lxr.api.store import NotFound
    from lxr.cli.output import work_units_table

    store = _store()
    labels = _selector(selector)
    # `index` is a work unit's own label, not one of its experiment's
    index = labels.pop("index", None)

    def fetch():  # noqa: ANN202
        try:
            units = store.list_work_units(experiment, selector=labels, phase=phase)
        except NotFound as exc:
            _die(str(exc), EXIT_FAILED)
        return [u for u in units if index is None or u.metadata["labels"]["index"] == index]

    _get(fetch, output, watch, work_units_table, single=False, what="work units")


@get_app.command("clusters")
def get_clusters(output: _OutputOpt = Output.table) -> None:
    """List clusters (``local`` always exists)."""
    from lxr.cli.output import clusters_table

    _print_objects(
        _store().list_clusters(), output, single=False, table_fn=lambda o, _w: clusters_table(o)
    )


@get_app.command("events")
def get_events(
    experiment: Annotated[str | None, typer.Argument(help="Only this experiment's events.")] = None,
    watch: _WatchOpt = False,
    limit: Annotated[int, typer.Option("--limit", help="How many recent events.")] = 50,
) -> None:
    """Recent events: submissions, preemptions, retries, failures, cancellations."""
    from lxr.api.store import NotFound
    from lxr.cli.output import events_table, print_table

    store = _store()
    try:
        events = store.list_events(experiment, limit=limit)
    except NotFound as exc:
        _die(str(exc), EXIT_FAILED)
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


# ------------------------------------------------------------------------ describe, delete, wait


@app.command()
def describe(
    kind: Annotated[str, typer.Argument(help="experiment")],
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
) -> None:
    """Show an experiment in detail: conditions, counts, failed work units, recent events."""
    from lxr.api.store import NotFound
    from lxr.cli.describe import describe_experiment

    _only_experiments(kind, "describe")
    try:
        describe_experiment(console, _store(), name)
    except NotFound as exc:
        _die(str(exc), EXIT_FAILED)


@app.command()
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
    from lxr.api.store import NotFound

    _only_experiments(kind, "delete")
    store = _store()
    try:
        store.delete_experiment(name)
    except NotFound as exc:
        _die(str(exc), EXIT_FAILED)
    console.print(f"experiment/{name} deletion requested", highlight=False)
    _wake_controller(store)
    if wait:
        code = _wait_converged(store, [name], timeout, gone=True)
        if code == EXIT_OK:
            console.print(f"experiment/{name} deleted", highlight=False)
        raise typer.Exit(code)


@app.command()
def stop(
    kind: Annotated[str, typer.Argument(help="experiment")],
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    wu: Annotated[
        list[int], typer.Option("--wu", help="Index of a work unit to stop (repeatable).")
    ],
) -> None:
    """Stop some work units of an experiment while the others go on: a queued or running task is
    cancelled, a waiting one ends Stopped; a stopped work unit is never resubmitted.

    Example:  lxr stop experiment sweep --wu 3 --wu 7
    """
    from lxr.api.store import NotFound

    _only_experiments(kind, "stop", "only work units of an experiment (--wu)")
    store = _store()
    try:
        asked = store.stop_work_units(name, wu)
    except NotFound as exc:
        _die(str(exc), EXIT_FAILED)
    if not asked:
        console.print(f"experiment/{name}: nothing to stop (finished or stopping)", highlight=False)
        return
    shown = ", ".join(str(i) for i in asked)
    console.print(f"experiment/{name} work units {shown}: stop requested", highlight=False)
    _wake_controller(store)


@app.command("wait")
def wait_cmd(
    kind: Annotated[str, typer.Argument(help="experiment")],
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    for_: Annotated[
        str, typer.Option("--for", help="condition=TYPE (Succeeded, Finished, Failed, Submitted).")
    ] = "condition=Succeeded",
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Give up after S seconds.")
    ] = None,
) -> None:
    """Wait until a condition of the experiment is True. Exit 0 when it is, 1 when it can no
    longer become True (e.g. Succeeded on a failed experiment) or on timeout.

    Example:  lxr wait experiment quickstart --for=condition=Succeeded --timeout 600
    """
    from lxr.api.store import NotFound

    _only_experiments(kind, "wait for")
    what, _, cond = for_.partition("=")
    if what != "condition" or not cond:
        _die(f"--for={for_}: expected condition=TYPE")
    store = _store()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            exp = store.get_experiment(name)
        except NotFound as exc:
            _die(str(exc), EXIT_FAILED)
        st = exp.status
        current = next((c for c in (st.conditions if st else []) if c.type == cond), None)
        current_gen = st is not None and st.observed_generation == exp.metadata.generation
        if current is not None and current_gen and current.status.value == "True":
            console.print(f"experiment/{name} condition met: {cond}", highlight=False)
            raise typer.Exit(EXIT_OK)
        finished = next((c for c in (st.conditions if st else []) if c.type == "Finished"), None)
        if current_gen and finished is not None and finished.status.value == "True":
            msg = f" ({current.reason}: {current.message})" if current else ""
            _die(f"experiment/{name} finished without {cond}=True{msg}", EXIT_FAILED)
        if deadline is not None and time.monotonic() > deadline:
            _die(f"timed out waiting for {cond} on experiment/{name}", EXIT_FAILED)
        if store.lease() is None:
            # nobody reconciles: do it here until the condition settles
            code = _wait_converged(
                store, [name], None if deadline is None else deadline - time.monotonic()
            )
            if code not in (EXIT_OK, EXIT_FAILED):
                raise typer.Exit(code)
            continue
        time.sleep(0.5)


# ---------------------------------------------------------------------------- logs


@app.command()
def logs(
    kind: Annotated[str, typer.Argument(help="experiment")],
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    wu: Annotated[int, typer.Option("--wu", help="The work unit's index.")],
    attempt: Annotated[
        int | None, typer.Option("--attempt", help="Attempt number (default: latest).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output.")
    ] = False,
    stderr: Annotated[
        bool, typer.Option("--stderr", help="Show standard error instead of output.")
    ] = False,
) -> None:
    """Print a task's output, from wherever the cluster keeps it (over SSH if remote).

    Example:  lxr logs experiment quickstart --wu 3 -f
    """
    import anyio

    from lxr.api.store import NotFound
    from lxr.schedulers.registry import make_driver

    _only_experiments(kind, "show logs of")
    store = _store()
    try:
        cluster, tag, array_index, _job = store.find_attempt(name, wu, attempt)
        spec = store.get_cluster(cluster).spec
    except NotFound as exc:
        _die(str(exc), EXIT_FAILED)
    driver = make_driver(cluster, spec)
    paths = driver.log_paths(tag, array_index)
    path = paths.stderr if stderr else paths.stdout

    async def show() -> None:
        try:
            if follow:
                async for chunk in driver.transport.follow(path):
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
            else:
                sys.stdout.buffer.write(await driver.transport.read_file(path))
                sys.stdout.buffer.flush()
        finally:
            await driver.close()

    try:
        anyio.run(show)
    except FileNotFoundError:
        _die(f"no output yet at {path} (the task may not have started)", EXIT_FAILED)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001
        _die(f"cannot read {path} on cluster {cluster}: {exc}", EXIT_FAILED)


# ---------------------------------------------------------------------------- controller / schema


@controller_app.command("run")
def controller_run(
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between cycles for Slurm/SGE clusters.")
    ] = 2.0,
    metrics_addr: Annotated[
        str | None,
        typer.Option(
            "--metrics-addr", help="Serve Prometheus metrics at HOST:PORT, e.g. 127.0.0.1:9464."
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and exit.")] = False,
) -> None:
    """Run the reconcile loop until interrupted. One controller leads at a time (a lease in
    the database); `lxr apply` wakes it at once."""
    import anyio

    from lxr.reconciler.controller import Controller

    metrics = None
    server = None
    if metrics_addr:
        from lxr.metrics import Metrics, parse_metrics_addr, serve

        metrics = Metrics()
        host, port = parse_metrics_addr(metrics_addr)
        try:
            server = serve(metrics, host, port)
        except OSError as exc:
            _die(f"--metrics-addr {metrics_addr}: {exc}", EXIT_FAILED)
        err.print(f"serving metrics on http://{host}:{port}/metrics")
    store = _store()
    controller = Controller(store, interval=interval, metrics=metrics)
    logging.getLogger("lxr").setLevel(
        min(logging.getLogger("lxr").getEffectiveLevel(), logging.INFO)
    )
    err.print(f"controller {controller.holder} on {store.url}")

    async def main() -> None:
        import signal

        # SIGTERM (systemctl stop, docker stop) stops like Ctrl-C: cancelling the loop lets
        # Controller.run close the drivers and release the lease; the default action would
        # kill the process on the spot.
        async with anyio.create_task_group() as tg:

            async def stop_on_sigterm() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                    async for _ in signals:
                        err.print("SIGTERM: stopping")
                        tg.cancel_scope.cancel()

            tg.start_soon(stop_on_sigterm)
            if once:
                await controller.run(until=lambda: True)
            else:
                await controller.run()
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        err.print("controller stopped")
    finally:
        if server is not None:
            server.shutdown()


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="Experiment or Cluster.")] = "Experiment",
) -> None:
    """Print the JSON Schema of a resource (the same as crds/)."""
    import json

    from lxr.api.crds import crd_schema

    try:
        console.print(
            json.dumps(crd_schema(kind), indent=2), highlight=False, markup=False, soft_wrap=True
        )
    except KeyError:
        _die(f"unknown kind {kind!r}: Experiment or Cluster")


def main() -> None:
    """Entry point of the ``lxr`` command."""
    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    app()
