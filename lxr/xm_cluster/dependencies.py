"""XManager dependencies between work units, spelled as xmanager-slurm spells them:
``wu.after_started()``, ``after_finished()``, ``after_completed()``, ``after_failed()``,
combined with ``&`` (all of them) and ``|`` (any of them), passed as
``experiment.add(job, dependency=...)`` (or one per element of ``args=[...]``).

Nothing is handed to the scheduler: when the launch is written, each expression becomes the
lxr work unit's own ``dependsOn`` (``allOf``/``anyOf`` of named upstream work units), and the
controller holds the unit back until the upstream units' final outcomes say so, across
resubmissions and clusters. The launch script need not stay alive for that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lxr.api.dependencies import DependencyCondition, WorkUnitDependencies, WorkUnitDependency

if TYPE_CHECKING:
    from lxr.xm_cluster.work_unit import ClusterWorkUnit

__all__ = [
    "AllOf",
    "AnyOf",
    "DependencyError",
    "JobDependency",
    "WorkUnitAfter",
    "after",
    "combine_all",
    "per_element",
    "resolve_dependency",
]


class DependencyError(ValueError):
    """A dependency expression lxr cannot express (or a wrong argument)."""


class JobDependency:
    """A dependency expression; ``a & b`` needs both, ``a | b`` either."""

    def __and__(self, other: JobDependency) -> JobDependency:
        _check(other)
        return AllOf((*_parts(self, AllOf), *_parts(other, AllOf)))

    def __or__(self, other: JobDependency) -> JobDependency:
        _check(other)
        return AnyOf((*_parts(self, AnyOf), *_parts(other, AnyOf)))

    def flatten(self) -> tuple[WorkUnitAfter, ...]:
        """Every work unit named, in order."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class WorkUnitAfter(JobDependency):
    """One upstream work unit and the condition its tasks must meet."""

    work_unit: ClusterWorkUnit
    condition: DependencyCondition

    def flatten(self) -> tuple[WorkUnitAfter, ...]:
        return (self,)

    def __repr__(self) -> str:
        wu = self.work_unit.work_unit_id
        return f"{type(self).__name__}(work unit {wu}, {self.condition.value})"


@dataclass(frozen=True, eq=False)
class AllOf(JobDependency):
    """Every part."""

    parts: tuple[JobDependency, ...]

    def flatten(self) -> tuple[WorkUnitAfter, ...]:
        return tuple(leaf for p in self.parts for leaf in p.flatten())


@dataclass(frozen=True, eq=False)
class AnyOf(JobDependency):
    """At least one part."""

    parts: tuple[JobDependency, ...]

    def flatten(self) -> tuple[WorkUnitAfter, ...]:
        return tuple(leaf for p in self.parts for leaf in p.flatten())


def _check(other: object) -> None:
    if not isinstance(other, JobDependency):
        raise TypeError(f"a dependency combines with another dependency, not {other!r}")


def _parts(dep: JobDependency, kind: type) -> tuple[JobDependency, ...]:
    return dep.parts if isinstance(dep, kind) else (dep,)  # type: ignore[attr-defined]


def after(wu: ClusterWorkUnit, condition: DependencyCondition, time: Any = None) -> WorkUnitAfter:
    """``wu.after_*()``: the dependency on ``wu``'s tasks."""
    if time is not None:
        seconds = time.total_seconds() if isinstance(time, dt.timedelta) else time
        raise DependencyError(
            f"after_started(time={seconds!r}): lxr starts a dependent when the upstream work "
            "unit started; a delay after that is not supported"
        )
    return WorkUnitAfter(wu, condition)


def combine_all(deps: Sequence[JobDependency | None]) -> JobDependency | None:
    """Every one of ``deps`` (None entries skipped)."""
    given = [d for d in deps if d is not None]
    if not given:
        return None
    out = given[0]
    for d in given[1:]:
        out = out & d
    return out


def per_element(dep: Any, count: int | None) -> list[JobDependency | None]:
    """``experiment.add``'s ``dependency``: one for each of ``count`` elements of
    ``args=[...]`` (a list must have one per element), or the one of a single add
    (``count`` None)."""
    if isinstance(dep, Sequence) and not isinstance(dep, str | bytes):
        if count is None:
            return [combine_all([_checked(d) for d in dep])]
        if len(dep) != count:
            raise DependencyError(
                f"dependency: a list of {len(dep)} for {count} elements of args "
                "(give one per element, or one dependency for all)"
            )
        return [_checked(d) for d in dep]
    return [_checked(dep)] * (count or 1)


def _checked(dep: Any) -> JobDependency | None:
    if dep is not None and not isinstance(dep, JobDependency):
        raise DependencyError(
            f"dependency: expected wu.after_completed() (or after_started, after_finished, "
            f"after_failed, combined with & and |), got {dep!r}"
        )
    return dep


def resolve_dependency(
    dep: JobDependency, names: Callable[[ClusterWorkUnit], list[tuple[str, str]]]
) -> WorkUnitDependencies:
    """The lxr ``dependsOn`` of one work unit; ``names`` gives an upstream xm work unit's lxr
    work units as ``(experiment, work-unit name)``. ``a & b``, ``a | b`` and ``(a | b) & c``
    can be written; an ``|`` with an ``&`` inside, two ``|`` groups, or an ``|`` over a work
    unit of several tasks cannot, and raise :class:`DependencyError`."""
    parts = dep.parts if isinstance(dep, AllOf) else (dep,)
    all_of: list[WorkUnitDependency] = []
    any_of: list[WorkUnitDependency] = []
    for part in parts:
        if isinstance(part, WorkUnitAfter):
            all_of += _entries(part, names)
            continue
        assert isinstance(part, AnyOf)
        if any_of:
            raise DependencyError(f"{dep!r}: lxr can express one '|' group per work unit")
        for leaf in part.parts:
            if not isinstance(leaf, WorkUnitAfter):
                raise DependencyError(f"{dep!r}: '&' inside '|' cannot be expressed by lxr")
            entries = _entries(leaf, names)
            if len(entries) != 1:
                raise DependencyError(
                    f"{leaf!r}: a work unit of {len(entries)} tasks inside '|' cannot be "
                    "expressed by lxr (name one of its tasks' work units with '&' instead)"
                )
            any_of += entries
    return WorkUnitDependencies(all_of=all_of, any_of=any_of)


def _entries(
    leaf: WorkUnitAfter, names: Callable[[ClusterWorkUnit], list[tuple[str, str]]]
) -> list[WorkUnitDependency]:
    found = names(leaf.work_unit)
    if not found:
        raise DependencyError(f"{leaf!r}: that work unit has no job to wait for")
    return [
        WorkUnitDependency(experiment=exp, work_unit=unit, condition=leaf.condition)
        for exp, unit in found
    ]
