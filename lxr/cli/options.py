"""Options and arguments shared by several commands, and how they are parsed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, EXIT_USAGE, die, note

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

FORMATS = ("table", "wide", "yaml", "json", "name", "custom-columns=", "jsonpath=")

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


@dataclass(frozen=True)
class OutputSpec:
    """A parsed ``-o``: the format and, for custom-columns/jsonpath, its template."""

    format: str
    template: str = ""

    @property
    def tabular(self) -> bool:
        """Whether the output is a table with a header line."""
        return self.format in ("table", "wide", "custom-columns")


def parse_output(text: str) -> OutputSpec:
    """``-o`` as given; exit 2 naming the formats when it is none of them."""
    name, sep, template = text.partition("=")
    if name in ("table", "wide", "yaml", "json", "name") and not sep:
        return OutputSpec(name)
    if name in ("custom-columns", "jsonpath") and template:
        from lxr.cli.jsonpath import JsonPathError

        try:
            if name == "jsonpath":
                from lxr.cli.jsonpath import parse_template

                parse_template(template)
            else:
                columns_of(template)
        except JsonPathError as exc:
            die(f"-o {name}: {exc}", EXIT_USAGE)
        return OutputSpec(name, template)
    die(f"-o {text!r}: expected one of {', '.join(FORMATS)}", EXIT_USAGE)


def columns_of(template: str) -> list[tuple[str, str]]:
    """``HEADER:.path,HEADER:.path`` as pairs."""
    from lxr.cli.jsonpath import JsonPathError, parse_path

    cols = []
    for part in template.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header or not path:
            raise JsonPathError(f"{part!r}: expected HEADER:.json.path")
        path = path.strip()
        if path.startswith("{") and path.endswith("}"):
            path = path[1:-1]
        parse_path(path)
        cols.append((header, path))
    return cols


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


def open_store(*, read_only: bool = False):  # imported lazily (`lxr --help`)
    """The store at the configured URL, or exit 1 naming the URL when it cannot be opened.

    ``read_only``: a SQLite file that does not exist is not created; the command reads an
    empty stand-in (:class:`~lxr.cli.nostore.NoStore`) and says so once on stderr.
    """
    from lxr.paths import default_database_url

    url = default_database_url()
    if read_only:
        from lxr.cli.nostore import NoStore, missing_store_url

        if missing_store_url(url):
            import atexit

            store = NoStore(url)

            # said once, at the end, unless an error already named the URL
            def said_once() -> None:
                if not store.raised:
                    note(f"note: {store.why}")

            atexit.register(said_once)
            return store
    from lxr.store import Store

    try:
        return Store(url)
    except Exception as exc:
        from lxr.redaction import redact

        die(f"cannot open the database {redact(url)}: {exc}", EXIT_FAILED)


def selector_of(texts: list[str] | None):
    """The parsed ``-l``; exit 2 naming the part that is not a selector."""
    from lxr.cli.selectors import SelectorError, parse_selector

    try:
        return parse_selector(texts)
    except SelectorError as exc:
        die(f"-l {exc}", EXIT_USAGE)
