"""Options and arguments shared by several commands, and how they are parsed."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, die

__all__ = [
    "LabelOpt",
    "Output",
    "OutputOpt",
    "WatchOpt",
    "only_experiments",
    "open_store",
    "parse_selector",
]


class Output(str, Enum):
    """Output formats."""

    table = "table"
    wide = "wide"
    yaml = "yaml"
    json = "json"
    name = "name"


OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table, wide, yaml, json or name.")
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option("--selector", "-l", help="Filter by label: key=value (repeatable)."),
]
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Keep printing as things change.")]


def open_store():  # noqa: ANN201 - imported lazily so `lxr --help` stays fast
    """The store at the configured URL, or exit 1 naming the URL when it cannot be opened."""
    from lxr.store import Store

    try:
        return Store()
    except Exception as exc:  # noqa: BLE001
        from lxr.store import default_database_url

        die(f"cannot open the database {default_database_url()}: {exc}", EXIT_FAILED)


def parse_selector(labels: list[str] | None) -> dict[str, str]:
    """``-l a=b,c=d -l e=f`` as a dict."""
    out: dict[str, str] = {}
    for item in labels or []:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key:
                die(f"-l {part!r}: expected key=value")
            out[key.strip()] = value.strip()
    return out


def only_experiments(kind: str, verb: str, what: str = "only experiments") -> None:
    """Commands that act on experiments take ``experiment`` (or ``exp``) as their first word."""
    if kind not in ("experiment", "experiments", "exp"):
        die(f"cannot {verb} {kind!r}: {what}")
