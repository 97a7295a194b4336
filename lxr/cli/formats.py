"""``-o`` and ``-l`` as parsed, without typer: the fast path of reads uses them too."""

from __future__ import annotations

from dataclasses import dataclass

from lxr.cli.console import EXIT_USAGE, die

__all__ = ["FORMATS", "OutputSpec", "columns_of", "parse_output", "selector_of"]

FORMATS = ("table", "wide", "yaml", "json", "name", "custom-columns=", "jsonpath=")


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


def selector_of(texts: list[str] | None):
    """The parsed ``-l``; exit 2 naming the part that is not a selector."""
    from lxr.cli.selectors import SelectorError, parse_selector

    try:
        return parse_selector(texts)
    except SelectorError as exc:
        die(f"-l {exc}", EXIT_USAGE)
