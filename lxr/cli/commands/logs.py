"""``lxr logs experiment NAME --wu N``: a task's output."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, die
from lxr.cli.options import only_experiments, open_store

__all__ = ["logs", "register"]


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

    from lxr.schedulers.registry import make_driver
    from lxr.store import NotFound

    only_experiments(kind, "show logs of")
    store = open_store()
    try:
        cluster, tag, array_index, _job = store.find_attempt(name, wu, attempt)
        spec = store.get_cluster(cluster).spec
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)
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
        die(f"no output yet at {path} (the task may not have started)", EXIT_FAILED)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001
        die(f"cannot read {path} on cluster {cluster}: {exc}", EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add ``logs`` to ``app``."""
    app.command()(logs)
