"""``lxr import lxm3-config [FILE]``: lxm3's ``[[clusters]]`` as lxr Clusters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lxr.cli.console import EXIT_USAGE, die, note, out

__all__ = ["import_app", "register"]

import_app = typer.Typer(help="Bring settings over from other tools.", no_args_is_help=True)


@import_app.command("lxm3-config")
def lxm3_config(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="lxm3's config file (default: $LXM_CONFIG, ~/.config/lxm3/config.toml)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="slurm or sge, for clusters whose entry does not say."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the Clusters as YAML; write nothing.")
    ] = False,
) -> None:
    """Create an lxr Cluster for each of lxm3's [[clusters]] (server, user, ssh_private_key,
    storage.staging). The first becomes the default cluster unless one is set already.

    \b
    Example:  lxr import lxm3-config --scheduler sge
    """
    import yaml

    from lxr.api.lxm3_config import clusters_from_lxm3, default_lxm3_config_path
    from lxr.api.user_config import load_user_config, save_user_config

    path = path or default_lxm3_config_path()
    if not path.is_file():
        die(f"no lxm3 config at {path}")
    try:
        clusters = clusters_from_lxm3(path, scheduler)
    except ValueError as exc:
        die(str(exc), EXIT_USAGE)
    if dry_run:
        docs = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in clusters]
        out(yaml.safe_dump_all(docs, sort_keys=False).rstrip("\n"))
        return
    from lxr.cli.options import open_store

    store = open_store()
    with store.transaction():
        for cluster in clusters:
            store.apply(cluster)
    for cluster in clusters:
        out(f"cluster/{cluster.metadata.name} imported")
    settings = load_user_config()
    if not settings.get("cluster"):
        settings["cluster"] = clusters[0].metadata.name
        where = save_user_config(settings)
        note(f"default cluster: {clusters[0].metadata.name} ({where})")


def register(app: typer.Typer) -> None:
    """Add ``import`` to ``app``."""
    app.add_typer(import_app, name="import")
