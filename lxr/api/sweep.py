"""Expanding an experiment's ``workUnits`` or ``sweep`` into concrete work units."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from lxr.api.resources import ArgValue, ExperimentSpec

__all__ = ["DesiredWorkUnit", "count_work_units", "expand_work_units"]


@dataclass(frozen=True)
class DesiredWorkUnit:
    """One work unit as the spec asks for it; ``index`` is its position, from 0."""

    index: int
    name: str
    args: dict[str, ArgValue] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


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
            DesiredWorkUnit(index=i, name=wu.name or str(i), args=dict(wu.args), env=dict(wu.env))
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
