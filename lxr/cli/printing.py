"""``-o`` for any list of resources: tables, custom-columns, names, JSON/YAML lists and
jsonpath, written to stdout as the items arrive (unless ``--sort-by`` needs them all)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lxr.cli.columns import write_table
from lxr.cli.console import out
from lxr.cli.formats import OutputSpec, columns_of
from lxr.cli.output import API_VERSION, TABLES, to_dict

__all__ = ["print_items", "print_unit_rows", "sort_items", "sort_key", "value_key"]


def value_key(value: Any) -> tuple[int, Any]:
    """Where ``--sort-by`` puts a field's value: missing first, then numbers, then text."""
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, float(value))
    return (2, str(value))


def sort_key(path: str) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    """The key ``--sort-by PATH`` sorts by (:func:`value_key` of the field's value)."""
    from lxr.cli.jsonpath import evaluate

    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]

    def key(item: Mapping[str, Any]) -> tuple[int, Any]:
        found = evaluate(item, path)
        return value_key(found[0] if found else None)

    return key


def sort_items(items: Iterable[Mapping[str, Any]], sort_by: str) -> list[Mapping[str, Any]]:
    """Items ordered by the field at ``sort_by`` (missing first), as kubectl's --sort-by."""
    return sorted(items, key=sort_key(sort_by))


def print_unit_rows(
    pages: Iterable[Sequence[Sequence[Any]]], fmt: str, *, no_headers: bool = False
) -> int:
    """Print work units as a table (``fmt`` ``table`` or ``wide``) or names from pages of
    SQL's cells (``lxr.store.reads.UNIT_TABLE_CELLS``, ``UNIT_WIDE_CELLS``,
    ``UNIT_NAME_CELLS``); returns how many."""
    if fmt == "name":
        n = 0
        for page in pages:
            sys.stdout.write("\n".join([row[0] for row in page]) + "\n")
            n += len(page)
        return n
    from lxr.cli.output import unit_table_rows

    wide = fmt == "wide"
    headers = TABLES["WorkUnit"].headers(wide)
    return write_table(headers, unit_table_rows(pages, wide), no_headers=no_headers)


def print_items(
    kind: str,
    items: Iterable[Any],
    spec: OutputSpec,
    *,
    single: bool = False,
    no_headers: bool = False,
    sort_by: str | None = None,
) -> int:
    """Print ``items`` (models or their JSON form) as ``spec`` says; returns how many."""
    dicts: Iterable[Mapping[str, Any]] = (to_dict(i) for i in items)
    if sort_by:
        dicts = sort_items(dicts, sort_by)
    fmt = spec.format
    if fmt in ("json", "yaml"):
        if single:
            listed = list(dicts)
            if len(listed) == 1:
                from lxr.cli.output import dump

                out(dump(listed, fmt, single=True))
                return 1
            dicts = listed
        from lxr.cli.output import write_list

        return write_list(dicts, fmt, sys.stdout)
    if fmt == "name":
        n = 0
        for d in dicts:
            out(f"{kind.lower()}/{d['metadata']['name']}")
            n += 1
        return n
    if fmt == "jsonpath":
        from lxr.cli.jsonpath import render

        listed = list(dicts)
        data = (
            listed[0]
            if single and len(listed) == 1
            else {"apiVersion": API_VERSION, "kind": "List", "items": listed}
        )
        sys.stdout.write(render(spec.template, data))
        return len(listed)
    if fmt == "custom-columns":
        from lxr.cli.jsonpath import evaluate, format_value

        cols = columns_of(spec.template)

        def cells(d: Mapping[str, Any]) -> list[str]:
            row = []
            for _header, path in cols:
                found = evaluate(d, path)
                row.append(",".join(format_value(v) for v in found) if found else "<none>")
            return row

        return write_table([h for h, _ in cols], (cells(d) for d in dicts), no_headers=no_headers)
    table = TABLES[kind]
    wide = fmt == "wide"
    return write_table(table.headers(wide), table.rows(dicts, wide), no_headers=no_headers)
