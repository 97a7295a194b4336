"""Expanding an experiment's ``workUnits`` or ``sweep`` into concrete work units."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxr.api.resources import ArgValue, ExperimentSpec

__all__ = [
    "DesiredWorkUnit",
    "content_digest",
    "count_work_units",
    "expand_work_units",
    "identities",
    "unit_identities",
]


@dataclass(frozen=True)
class DesiredWorkUnit:
    """One work unit as the spec asks for it; ``index`` is its position, from 0.
    ``named`` says the spec gave its name (a ``workUnits`` entry's ``name``), which is then
    part of its identity."""

    index: int
    name: str
    args: dict[str, ArgValue] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    named: bool = False


def content_digest(args: Mapping[str, Any], env: Mapping[str, Any], name: str | None) -> str:
    """A work unit's content as a sha256 hex digest: its args and env, plus its name when the
    spec gave one. Stored (``work_units.identity``), so it never changes for a given content:
    ``1`` and ``1.0`` and ``true`` are different values, key order is not a difference."""
    content: dict[str, Any] = {"args": dict(args), "env": dict(env)}
    if name is not None:
        content["name"] = name
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def identities(digests: Iterable[str]) -> list[str]:
    """Each digest made unique by its occurrence: the k-th repeat of a content (``workUnits:
    [{}, {}]``, two replicas) is ``<digest>-k``, so a sweep edit that adds a third replica
    adds one unit and keeps the first two."""
    seen: dict[str, int] = {}
    out = []
    for digest in digests:
        k = seen.get(digest, 0)
        seen[digest] = k + 1
        out.append(digest if k == 0 else f"{digest}-{k}")
    return out


def unit_identities(units: Iterable[DesiredWorkUnit]) -> list[str]:
    """The identities of ``units``, in their order (see :func:`identities`)."""
    return identities(content_digest(u.args, u.env, u.name if u.named else None) for u in units)


def count_work_units(spec: ExperimentSpec) -> int:
    """How many work units :func:`expand_work_units` makes, computed without making them
    (a 1000⁴ grid is 10¹² units: counted, it is refused at once instead of filling memory)."""
    if spec.work_units is not None:
        return len(spec.work_units)
    if spec.sweep is None:
        return 1
    return math.prod(len(values) for values in spec.sweep.grid.values()) * max(
        1, len(spec.sweep.entries)
    )


def expand_work_units(spec: ExperimentSpec) -> list[DesiredWorkUnit]:
    """The work units of ``spec``, in a stable order.

    ``sweep.grid`` is a cartesian product in the order the keys are written (the last key varies
    fastest); with ``sweep.list`` too, every list entry is combined with every grid point (list
    keys win). Without a sweep or work units, the experiment is one work unit with no args.
    """
    if spec.work_units is not None:
        return [
            DesiredWorkUnit(
                index=i,
                name=wu.name or str(i),
                args=dict(wu.args),
                env=dict(wu.env),
                named=wu.name is not None,
            )
            for i, wu in enumerate(spec.work_units)
        ]
    if spec.sweep is None:
        return [DesiredWorkUnit(index=0, name="0")]
    keys = list(spec.sweep.grid)
    points: list[dict[str, ArgValue]] = [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(spec.sweep.grid[k] for k in keys))
    ]
    entries = spec.sweep.entries or [{}]
    combos = [{**point, **entry} for point in points for entry in entries]
    return [DesiredWorkUnit(index=i, name=str(i), args=args) for i, args in enumerate(combos)]
