"""Options and arguments shared by several commands (typer's declarations), and how they are
parsed (:mod:`lxr.cli.formats`, which runs without typer)."""

from __future__ import annotations

from typing import Annotated

import typer

from lxr.cli.console import die
from lxr.cli.formats import FORMATS, OutputSpec, columns_of, parse_output, selector_of
from lxr.cli.stores import open_store

__all__ = [
    "FORMATS",
    "LabelOpt",
    "NoHeadersOpt",
    "OutputOpt",
    "OutputSpec",
    "SortByOpt",
    "WatchOpt",
    "columns_of",
    "experiment_ref",
    "open_store",
    "parse_output",
    "selector_of",
]

OutputOpt = Annotated[
    str,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="table, wide, yaml, json, name, custom-columns=HEADER:.path,... or jsonpath={.path}.",
    ),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--selector",
        "-l",
        metavar="SELECTOR",
        help="Filter by label, as kubectl: k=v, k!=v, 'k in (a,b)', 'k notin (a,b)', k, !k; "
        "comma-separated or repeated, all must hold.",
    ),
]
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Keep printing as things change.")]
SortByOpt = Annotated[
    str | None,
    typer.Option(
        "--sort-by",
        metavar="JSONPATH",
        help="Sort by a field, e.g. .metadata.name or .status.phase.",
    ),
]
NoHeadersOpt = Annotated[
    bool, typer.Option("--no-headers", help="Tables and custom-columns without the header line.")
]


def experiment_ref(kind: str, name: str | None, verb: str) -> str:
    """``experiment NAME`` or ``experiment/NAME`` (any word for the kind) as the name."""
    from lxr.cli.kinds import kind_of

    word, sep, rest = kind.partition("/")
    if sep:
        if name is not None:
            die(f"{kind} {name}: give KIND NAME or KIND/NAME")
        name = rest
    if kind_of(word) != "Experiment":
        die(f"cannot {verb} {word!r}: only experiments")
    if not name:
        die(f"{verb}: which experiment? (experiment NAME)")
    return name
