"""``lxr delete cluster NAME...``: refused while experiments use the cluster."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lxr.cli.commands.delete import DELETERS, delete_app
from lxr.cli.completion import cluster_names
from lxr.cli.console import EXIT_FAILED, EXIT_OK, error, out
from lxr.cli.kinds import names_for
from lxr.cli.options import open_store

__all__ = ["delete_clusters", "register"]


def delete_clusters(
    store: Any, names: list[str], ignore_not_found: bool, wait: bool, timeout: float | None
) -> int:
    """Delete clusters; one still used by experiments is refused, naming them."""
    from lxr.store import Invalid, NotFound

    code = EXIT_OK
    for name in names:
        try:
            store.delete_cluster(name)
        except NotFound as exc:
            if not ignore_not_found:
                error(str(exc))
                code = EXIT_FAILED
            continue
        except Invalid as exc:
            error(str(exc))
            code = EXIT_FAILED
            continue
        out(f"cluster/{name} deleted")
    return code


def delete_cluster_cmd(
    ctx: typer.Context,
    names: Annotated[
        list[str], typer.Argument(help="Cluster names.", autocompletion=cluster_names)
    ],
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="A name that does not exist is not an error.")
    ] = False,
) -> None:
    """Delete clusters. Refused while experiments use one (delete them first); local
    always exists."""
    group = (ctx.obj or {}) if ctx is not None else {}
    ignore_not_found = ignore_not_found or group.get("ignore_not_found", False)
    wanted = names_for("Cluster", names)
    store = open_store(read_only=True)
    raise typer.Exit(delete_clusters(store, wanted, ignore_not_found, False, None))


def register(app: typer.Typer) -> None:
    """Add ``delete cluster`` to the ``delete`` group (registered by ``delete``)."""
    DELETERS["Cluster"] = delete_clusters
    delete_app.command("cluster")(delete_cluster_cmd)
