"""Small helpers shared by the batch scheduler drivers (Slurm, Grid Engine).

Index ranges, time strings, the cluster's clock and remote paths: each driver needs them,
none of them is specific to one scheduler.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

__all__ = [
    "absolute_path",
    "compress_ranges",
    "expand_ranges",
    "hms",
    "local_timestamp",
    "parse_utc_offset",
]


def compress_ranges(indexes: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted runs of consecutive indexes: ``[1, 2, 3, 7, 9, 10]`` ->
    ``[(1, 3), (7, 7), (9, 10)]``."""
    runs: list[tuple[int, int]] = []
    for idx in sorted(set(indexes)):
        if runs and idx == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], idx)
        else:
            runs.append((idx, idx))
    return runs


def expand_ranges(spec: str) -> list[int]:
    """The indexes of a range list as schedulers print them: ``3-10:1``, ``9,10``, ``1-7:2``,
    ``[1-3,5%2]`` (brackets and a ``%throttle`` suffix are ignored)."""
    spec = spec.strip().strip("[]").split("%", 1)[0]
    out: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        rng, _, step = part.partition(":")
        lo, _, hi = rng.partition("-")
        if hi:
            out.extend(range(int(lo), int(hi) + 1, int(step or 1)))
        else:
            out.append(int(lo))
    return out


def hms(seconds: int) -> str:
    """``HH:MM:SS`` with as many hours as needed (``90061`` -> ``25:01:01``); Grid Engine and
    Slurm both read it."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def parse_utc_offset(text: str) -> float:
    """``date +%z`` output in seconds: ``+0200`` -> ``7200.0`` (0 when unreadable)."""
    m = re.fullmatch(r"\s*([+-])(\d\d):?(\d\d)\s*", text)
    if not m:
        return 0.0
    seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60
    return float(seconds if m.group(1) == "+" else -seconds)


def local_timestamp(value: str, fmt: str, utc_offset: float) -> float | None:
    """A time the cluster printed in its own local time (``fmt`` as for ``strptime``), as a
    Unix timestamp; None when it is not a time (``-/-``, ``N/A``, empty)."""
    try:
        dt = datetime.strptime(value.strip(), fmt)
    except ValueError:
        return None
    return dt.replace(tzinfo=timezone(timedelta(seconds=utc_offset))).timestamp()


def absolute_path(path: str, home: str) -> str:
    """``path`` made absolute against the remote ``home`` (``~/x`` and ``x`` both mean
    ``home/x``): job scripts run wherever the scheduler starts them."""
    if path.startswith("/"):
        return path
    rel = path.removeprefix("~").lstrip("/")
    return f"{home.rstrip('/')}/{rel}" if rel else home
