"""``lxr apply -f FILE``: create or update resources from YAML/JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lxr.api.limits import DEFAULT_MAX_WORK_UNITS
from lxr.cli.console import EXIT_USAGE, die, error, exit_with, out, warn
from lxr.cli.options import open_store
from lxr.cli.waiting import (
    start_background_controller,
    wait_converged,
    wake_controller,
)

__all__ = ["apply", "load_or_exit", "needs_build", "register", "write_loaded"]


def apply(
    filename: Annotated[
        Path,
        typer.Option(
            "--filename", "-f", help="A YAML/JSON file, a directory of them, or - for stdin."
        ),
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
    max_work_units: Annotated[
        int,
        typer.Option(
            "--max-work-units",
            min=1,
            help="Refuse an experiment of more work units than this (its sweep is counted, "
            "not expanded).",
        ),
    ] = DEFAULT_MAX_WORK_UNITS,
    no_daemon: Annotated[
        bool,
        typer.Option(
            "--no-daemon",
            help="Without --wait: start no background controller when none runs (also "
            "LXR_NO_DAEMON=1).",
        ),
    ] = False,
) -> None:
    """Create or update resources from FILE. Exit 0 when (with --wait) all succeeded, 1 when
    any failed or the wait timed out, 2 when the input is invalid (nothing is written then).

    \b
    Example:  lxr apply -f examples/quickstart.yaml --wait
    """
    loaded = load_or_exit(filename, max_work_units)
    # the store (SQLAlchemy, ~1 s to import on a busy machine) only once the input is valid
    store = open_store()
    names = write_loaded(store, loaded, dry_run)
    if dry_run:
        return
    controller = wake_controller(store)
    if not wait:
        if names and controller is None:
            start_background_controller(store, no_daemon)
        return
    raise typer.Exit(wait_converged(store, names, timeout))


def write_loaded(store, loaded: list, dry_run: bool) -> list[str]:
    """Write ``loaded`` (what :func:`load_or_exit` read) as desired state in one transaction,
    printing a line per resource, and return the names of the experiments written: what every
    ``lxr apply`` does, in this process or in a running controller on its behalf. Packages
    are built here, paths resolved now (desired state is self-contained). Exit 2 (nothing
    written) when something is refused."""
    from lxr.api.paths import resolve_loaded
    from lxr.store import Conflict, Invalid

    # code to ship: built here (from a temporary copy), recorded by digest in the store
    loaded = _package(store, loaded, dry_run)
    # desired state never depends on the reconciler's cwd: workingDir is fixed now
    loaded, path_warnings = resolve_loaded(loaded, lambda name: _cluster_spec(store, name))
    for warning in path_warnings:
        warn(warning)
    # clusters first: experiments refer to them
    loaded.sort(key=lambda item: item.obj.kind != "Cluster")
    results = []
    try:
        if not dry_run:
            # name a missing cluster before opening the write transaction
            for item in loaded:
                if item.obj.kind == "Experiment":
                    _check_experiment(store, item, [i.obj for i in loaded])
        # one transaction: a file whose last document is refused writes nothing
        results = store.apply_all([item.obj for item in loaded], dry_run=dry_run)
    except (Invalid, Conflict) as exc:
        die(str(exc))
    for item in loaded:
        if item.ignored:
            verb = "is" if len(item.ignored) == 1 else "are"
            warn(f"{item.source}: {', '.join(item.ignored)} {verb} written by lxr; ignored")
    for res in results:
        suffix = f" ({res.detail})" if res.detail else ""
        suffix += " (dry run)" if dry_run else ""
        out(f"{res.kind.lower()}/{res.name} {res.action}{suffix}")
    return [r.name for r in results if r.kind == "Experiment"]


def needs_build(loaded: list) -> bool:
    """True when an experiment of ``loaded`` names a package (in its executable or a
    component's), which apply builds here."""
    return any(exe.package for i in loaded if i.obj.kind == "Experiment"
               for exe in _executables(i.obj.spec))  # fmt: skip


def _executables(spec) -> list:
    """The executables of an experiment's spec: its own, or each component's."""
    if getattr(spec, "executable", None) is not None:
        return [spec.executable]
    return [c.executable for c in (getattr(spec, "components", None) or {}).values()]


def _package(store, loaded: list, dry_run: bool) -> list:
    """Every experiment whose executable (or a component's) names a package, with the package
    built and its artifact recorded (only built, with --dry-run); exit 2 when a build fails."""
    if not needs_build(loaded):
        return loaded
    import dataclasses

    from lxr.api.paths import with_blobs_root
    from lxr.packaging import BuildError
    from lxr.packaging.executable import package_executable
    from lxr.schedulers.registry import local_blobs_root

    def put(blob) -> None:
        if not dry_run:
            store.put_artifact(blob.source, blob.digest)

    def build(item, exe, field: str):
        try:
            return package_executable(exe, item.base_dir, put)
        except (BuildError, OSError) as exc:
            die(f"{item.source}: experiment {item.obj.metadata.name}: {field}.package: {exc}")

    out = []
    for item in loaded:
        obj = item.obj
        if obj.kind != "Experiment" or not any(e.package for e in _executables(obj.spec)):
            out.append(item)
            continue
        if obj.spec.executable is not None:
            update = {"executable": build(item, obj.spec.executable, "spec.executable")}
        else:
            update = {
                "components": {
                    name: c.model_copy(
                        update={
                            "executable": build(
                                item, c.executable, f"spec.components.{name}.executable"
                            )
                        }
                    )
                    for name, c in obj.spec.components.items()
                }
            }
        spec = obj.spec.model_copy(update=update)
        exp = obj.model_copy(update={"spec": spec})
        cluster = _cluster_spec(store, spec.cluster) or next(
            (i.obj.spec for i in loaded
             if i.obj.kind == "Cluster" and i.obj.metadata.name == spec.cluster), None
        )  # fmt: skip
        root = None if cluster is None else local_blobs_root(spec.cluster, cluster)
        if root is not None:  # a cluster of this machine: the blob directory is known now
            exp = with_blobs_root(exp, root)
        out.append(dataclasses.replace(item, obj=exp))
    return out


def _cluster_spec(store, name: str):
    """A cluster's spec, None when there is no such cluster."""
    from lxr.store import NotFound

    try:
        return store.get_cluster(name).spec
    except NotFound:
        return None


def load_or_exit(
    filename: Path,
    max_work_units: int = DEFAULT_MAX_WORK_UNITS,
    *,
    text: str | None = None,
    base_dir: str | None = None,
) -> list:
    """The resources in ``filename`` (``-`` reads stdin); exit 2 listing every problem.
    ``text``: the file's text, already read (``<stdin>``'s too), its relative paths
    relative to ``base_dir``, as another process read it for a controller to apply."""
    import sys

    from lxr.api.loader import LoadError, load_objects, load_text

    try:
        if text is not None:
            return load_text(text, str(filename), max_work_units=max_work_units, base_dir=base_dir)
        if str(filename) == "-":
            return load_text(sys.stdin.read(), "<stdin>", max_work_units=max_work_units)
        return load_objects(filename, max_work_units=max_work_units)
    except LoadError as exc:
        for problem in exc.problems:
            error(problem)
        raise exit_with(EXIT_USAGE) from None


def _check_experiment(store, item, batch) -> None:
    """Fail early, before any write, when an experiment names a cluster that will not exist."""
    from lxr.store import Invalid, NotFound

    exp = item.obj
    cluster = exp.spec.cluster
    if cluster == "local" or any(o.kind == "Cluster" and o.metadata.name == cluster for o in batch):
        return
    try:
        store.get_cluster(cluster)
    except NotFound as exc:
        raise Invalid(
            f"{item.source}: experiment {exp.metadata.name}: spec.cluster: {exc}"
        ) from None


def register(app: typer.Typer) -> None:
    """Add ``apply`` to ``app``."""
    app.command()(apply)
