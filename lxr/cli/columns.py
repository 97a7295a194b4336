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


def _cell(value: object) -> str:
    # one row per line: a newline in a message must not start a fake row
    return str(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")


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
    while True:
        page = [[_cell(v) for v in row] for row in islice(it, PAGE)]
        if not page:
            break
        for row in page:
            for i, value in enumerate(row):
                if len(value) > widths[i]:
                    widths[i] = len(value)
        lines = []
        if first and not no_headers:
            lines.append(_line(headers, widths))
        lines.extend(_line(row, widths) for row in page)
        if lines:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        count += len(page)
        first = False
        if len(page) < PAGE:
            break
    return count


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    last = len(cells) - 1
    return GAP.join(c if i == last else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()
