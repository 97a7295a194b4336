"""``lxr delete``: experiments by name, ``-l``, ``--all`` or ``-f FILE``; their tasks are
cancelled, then they are removed. Other kinds register a deleter in ``DELETERS``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from lxr.cli.completion import experiment_names
from lxr.cli.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE, die, error, out, warn
from lxr.cli.kind_group import KindGroup
from lxr.cli.kinds import names_for
from lxr.cli.options import LabelOpt, open_store, selector_of
from lxr.cli.waiting import WAIT_STOPPED, wait_converged, wake_controller

__all__ = ["DELETERS", "delete_app", "delete_experiments", "register"]

delete_app = typer.Typer(
    cls=KindGroup,
    help="Delete resources: experiment (exp) NAME..., -l SELECTOR or --all; or "
    "-f FILE for what a file describes. An experiment's tasks are cancelled first.",
    no_args_is_help=False,
    invoke_without_command=True,
)

# kind -> deleter(store, names, ignore_not_found, wait, timeout) -> exit code
DELETERS: dict[str, Callable[[Any, list[str], bool, bool, float | None], int]] = {}

_WaitOpt = Annotated[
    bool,
    typer.Option("--wait/--no-wait", help="Wait until the tasks are cancelled and it is gone."),
]
_TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="Give up waiting after S seconds.")
]
_ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Delete an experiment even when unfinished experiments depend on it (their "
        "waiting work units stop with reason DependencyFailed).",
    ),
]
_IgnoreOpt = Annotated[
    bool, typer.Option("--ignore-not-found", help="A name that does not exist is not an error.")
]


def delete_experiments(
    store: Any,
    names: list[str],
    ignore_not_found: bool,
    wait: bool,
    timeout: float | None,
    wait_for_cancel: bool = False,
    force: bool = False,
) -> int:
    """Mark experiments for deletion, wake the controller and (``wait``) wait until gone.
    Those on a cluster the controller cannot reach are removed here, with a warning (their
    tasks may still run), unless ``wait_for_cancel``. One that unfinished experiments depend
    on (others than those deleted with it) is refused, unless ``force``."""
    from lxr.cli.clusters import forget_unreachable, on_unreachable_clusters
    from lxr.store import NotFound

    asked, missing, clusters = [], [], {}
    refused: dict[str, list[str]] | None = {} if force else None
    for name in names:
        try:
            cluster = store.get_experiment(name).spec.cluster
            if refused is None:  # read once the store is known to exist
                refused = store.dependents(names)
            if name in refused:
                error(
                    f"experiment {name}: {', '.join(refused[name])} depend(s) on it and "
                    "have not finished; delete them too, or use --force (their waiting work "
                    "units then stop with reason DependencyFailed)"
                )
                missing.append(name)
                continue
            clusters[name] = cluster
            store.delete_experiment(name)
        except NotFound as exc:
            if not ignore_not_found:
                error(str(exc))
                missing.append(name)
            continue
        out(f"experiment/{name} deletion requested")
        asked.append(name)
    if asked:
        wake_controller(store)
    code = EXIT_FAILED if missing else EXIT_OK
    if wait and asked:

        def stuck() -> bool:  # every one left waits for a cluster that cannot be reached
            return not wait_for_cancel and on_unreachable_clusters(store, clusters)

        waited = wait_converged(store, asked, timeout, gone=True, stop_when=stuck)
        if waited == WAIT_STOPPED:
            waited = forget_unreachable(store, clusters)
        if waited == EXIT_OK:
            for name in asked:
                out(f"experiment/{name} deleted")
        code = code or waited
    return code


DELETERS["Experiment"] = delete_experiments


@delete_app.callback()
def _delete(
    ctx: typer.Context,
    filename: Annotated[
        Path | None,
        typer.Option("--filename", "-f", help="Delete what this file (or directory) describes."),
    ] = None,
    ignore_not_found: _IgnoreOpt = False,
    wait: _WaitOpt = True,
    timeout: _TimeoutOpt = 300,
    force: _ForceOpt = False,
) -> None:
    if ctx.invoked_subcommand is not None:
        if filename is not None:
            die("-f FILE or KIND NAME: give one of them")
        # flags given before the kind hold for it too
        ctx.obj = {
            "ignore_not_found": ignore_not_found,
            "wait": wait,
            "timeout": timeout,
            "force": force,
        }
        return
    if filename is None:
        die("what to delete? lxr delete experiment NAME, -l SELECTOR, --all, or -f FILE")
    from lxr.cli.commands.apply import load_or_exit

    loaded = load_or_exit(filename)
    by_kind: dict[str, list[str]] = {}
    # experiments first: a cluster cannot go while experiments use it
    for item in sorted(loaded, key=lambda i: i.obj.kind != "Experiment"):
        by_kind.setdefault(item.obj.kind, []).append(item.obj.metadata.name)
    store = open_store(read_only=True)
    code = EXIT_OK
    for kind, names in by_kind.items():
        deleter = DELETERS.get(kind)
        if kind == "Experiment":
            deleter = functools.partial(delete_experiments, force=force)
        if deleter is None:
            warn(f"{filename}: cannot delete a {kind} ({', '.join(names)}) with lxr delete")
            code = EXIT_FAILED
            continue
        code = deleter(store, names, ignore_not_found, wait, timeout) or code
    raise typer.Exit(code)


@delete_app.command("experiment")
def delete_experiment_cmd(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Experiment names.", autocompletion=experiment_names),
    ] = None,
    selector: LabelOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Every experiment.")] = False,
    ignore_not_found: _IgnoreOpt = False,
    wait: _WaitOpt = True,
    timeout: _TimeoutOpt = 300,
    wait_for_cancel: Annotated[
        bool,
        typer.Option(
            "--wait-for-cancel",
            help="When an experiment's cluster cannot be reached, keep waiting until its tasks "
            "are cancelled there (by default it is then removed here at once, with a warning "
            "that its jobs may still run).",
        ),
    ] = False,
    force: _ForceOpt = False,
) -> None:
    """Delete experiments: their running and queued tasks are cancelled, then they are
    removed. One on a cluster the controller cannot reach is removed here at once, with a
    warning naming the jobs that may still run there, unless --wait-for-cancel.

    Deleting an experiment that unfinished experiments depend on is refused, unless they are
    deleted with it or --force is given."""
    group = (ctx.obj or {}) if ctx is not None else {}
    ignore_not_found = ignore_not_found or group.get("ignore_not_found", False)
    force = force or group.get("force", False)
    wait = wait and group.get("wait", True)
    timeout = timeout if group.get("timeout", 300) == 300 else group["timeout"]
    wanted = names_for("Experiment", names)
    sel = selector_of(selector)
    if sum(map(bool, (wanted, sel, all_))) != 1:
        die("give experiment names, -l SELECTOR or --all (one of them)", EXIT_USAGE)
    store = open_store(read_only=True)
    if not wanted:
        exps = store.list_experiments()
        wanted = [e.metadata.name for e in exps if sel.matches(e.metadata.labels)]
        if not wanted:
            out("No experiments found.")
            raise typer.Exit(EXIT_OK)
    raise typer.Exit(
        delete_experiments(
            store, wanted, ignore_not_found, wait, timeout, wait_for_cancel, force=force
        )
    )


def register(app: typer.Typer) -> None:
    """Add the ``delete`` group to ``app``."""
    app.add_typer(delete_app, name="delete")
