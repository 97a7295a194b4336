"""``lxr schema KIND``: the JSON Schema of a resource."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.console import die, out

__all__ = ["register", "schema"]


def schema(
    kind: Annotated[str, typer.Argument(help="Experiment or Cluster.")] = "Experiment",
) -> None:
    """Print the JSON Schema of a resource (the same as crds/)."""
    import json

    from lxr.api.crds import crd_schema

    try:
        out(json.dumps(crd_schema(kind), indent=2))
    except KeyError:
        die(f"unknown kind {kind!r}: Experiment or Cluster")


def register(app: typer.Typer) -> None:
    """Add ``schema`` to ``app``."""
    app.command()(schema)
