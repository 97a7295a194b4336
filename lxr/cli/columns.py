"""Plain-text tables written as they stream, like kubectl's: columns padded to the widest
cell seen so far, three spaces apart; a cell is never folded, cut or wrapped (a cell wider
than its column pushes the rest of its line to the right, as in kubectl)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import TextIO

__all__ = ["GAP", "PAGE", "shorten_middle", "write_table"]

GAP = "   "
# rows laid out together: the first page sets the widths, so the first line comes at once
PAGE = 500


def shorten_middle(text: str, limit: int) -> str:
    """``text`` cut in the middle to ``limit`` characters (``head…tail``), else unchanged."""
    if len(text) <= limit:
        return text
    keep = limit - 1
    head = (keep + 1) // 2
    return f"{text[:head]}…{text[len(text) - (keep - head) :]}"


def _cells(values: Sequence[object]) -> list[str]:
    """One column's cells as text; one row per line: a newline in a message must not start a
    fake row (checked on the whole column at once: most have none)."""
    cells = [v if type(v) is str else str(v) for v in values]
    joined = "".join(cells)
    if "\n" in joined or "\r" in joined or "\t" in joined:
        cells = [c.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ") for c in cells]
    return cells


def write_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    no_headers: bool = False,
    file: TextIO | None = None,
) -> int:
    """Write ``rows`` under ``headers`` page by page; returns how many rows were written."""
    stream = file or sys.stdout
    widths = [0 if no_headers else len(h) for h in headers]
    it = iter(rows)
    first = True
    count = 0
    while page := list(islice(it, PAGE)):
        # column by column: the loops of a 100k-row table run in C
        columns = [_cells(col) for col in zip(*page, strict=True)]
        for i, col in enumerate(columns):
            widths[i] = max(widths[i], max(map(len, col)))
        # every cell but the last padded to its column's width; a line ends with no blanks
        line = GAP.join([f"%-{w}s" for w in widths[:-1]] + ["%s"])
        lines = [line % tuple(headers)] if first and not no_headers else []
        lines += [line % row for row in zip(*columns, strict=True)]
        stream.write("\n".join([text.rstrip() for text in lines]) + "\n")
        stream.flush()
        count += len(page)
        first = False
        if len(page) < PAGE:
            break
    return count
