"""``lxr config``: the user's settings; the default cluster of launch scripts."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, die, note, out

__all__ = ["config_app", "register"]

config_app = typer.Typer(
    help="Your settings: the default cluster of launch scripts whose executors name none.",
    no_args_is_help=True,
)


@config_app.command("set-cluster")
def set_cluster(
    name: Annotated[str, typer.Argument(help="A Cluster (see `lxr get clusters`).")],
) -> None:
    """Make NAME the default cluster (LXR_CLUSTER still wins over it).

    \b
    Example:  lxr config set-cluster dev-slurm
    """
    from lxr.api.user_config import load_user_config, save_user_config
    from lxr.cli.options import open_store
    from lxr.store import NotFound

    try:
        open_store().get_cluster(name)
    except NotFound:
        die(f"no cluster {name!r}: apply it first (`lxr get clusters` lists them)", EXIT_FAILED)
    data = load_user_config()
    data["cluster"] = name
    path = save_user_config(data)
    out(f"default cluster: {name} ({path})")


@config_app.command("get-cluster")
def get_cluster() -> None:
    """Print the default cluster and where it comes from."""
    import os

    from lxr.api.user_config import CLUSTER_ENV, config_path, load_user_config

    if os.environ.get(CLUSTER_ENV, "").strip():
        out(f"{os.environ[CLUSTER_ENV].strip()} (from ${CLUSTER_ENV})")
        return
    name = load_user_config().get("cluster")
    if not name:
        note(f"no default cluster: set {CLUSTER_ENV} or run `lxr config set-cluster NAME`")
        raise typer.Exit(EXIT_FAILED)
    out(f"{name} (from {config_path()})")


def register(app: typer.Typer) -> None:
    """Add ``config`` to ``app``."""
    app.add_typer(config_app, name="config")
