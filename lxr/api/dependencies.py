"""Dependencies between experiments: an experiment's ``spec.dependsOn`` (every work unit
waits for the matching work units of another experiment) and a work unit's own
``dependsOn`` (``allOf``/``anyOf`` named work units of other experiments, as XManager's
``wu.after_completed() & ...`` writes them).

A dependency waits for the *final* outcome of the upstream work units: a preempted unit that
is resubmitted is not final, so its dependents wait for the rerun. The meanings are Slurm's:

- ``Succeeded`` (``afterok``): every matching upstream unit succeeded. It can no longer be
  met once one ended ``Failed`` or ``Stopped``.
- ``Finished`` (``afterany``): every matching upstream unit ended, however.
- ``Failed`` (``afternotok``): every matching upstream unit ended without success (``Failed``
  or ``Stopped``). It can no longer be met once one succeeded.
- ``Started`` (``after``): every matching upstream unit started running, or ended.

``match`` says which upstream units a work unit waits for: ``All`` of them, the one with the
``SameIndex`` (``aftercorr``), or those whose arguments agree with its own on every argument
both have (``SameArgs``: the eval of each learning rate after the train of that rate).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, model_validator

from lxr.api.dependency_reasons import (
    FAILED_REASON,
    MET_REASON,
    WAITING_REASON,
    dependency_condition,
)
from lxr.api.model import SpecModel

if TYPE_CHECKING:
    from lxr.api.resources import ExperimentSpec

__all__ = [
    "FAILED_REASON",
    "MET_REASON",
    "WAITING_REASON",
    "Dependency",
    "DependencyCondition",
    "DependencyMatch",
    "WorkUnitDependencies",
    "WorkUnitDependency",
    "dependency_condition",
    "dependency_entries",
    "upstream_experiments",
]


_NAME = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


class DependencyCondition(str, Enum):
    """What the upstream work units must have done (Slurm's ``after*`` meanings)."""

    SUCCEEDED = "Succeeded"  # afterok
    FINISHED = "Finished"  # afterany
    FAILED = "Failed"  # afternotok
    STARTED = "Started"  # after


class DependencyMatch(str, Enum):
    """Which upstream work units one work unit waits for."""

    ALL = "All"  # every work unit of the upstream experiment
    SAME_INDEX = "SameIndex"  # the upstream work unit with the same index (aftercorr)
    SAME_ARGS = "SameArgs"  # upstream work units whose shared arguments have the same values


class Dependency(SpecModel):
    """Every work unit of this experiment waits for work units of ``experiment``."""

    experiment: _NAME = Field(description="the upstream experiment (on any cluster)")
    condition: DependencyCondition = Field(
        default=DependencyCondition.SUCCEEDED,
        description="Succeeded (afterok), Finished (afterany), Failed (afternotok) or "
        "Started (after)",
    )
    match: DependencyMatch = Field(
        default=DependencyMatch.ALL,
        description="All upstream work units, the one with the SameIndex (aftercorr), or "
        "those whose shared args agree (SameArgs)",
    )


class WorkUnitDependency(SpecModel):
    """One named upstream work unit."""

    experiment: _NAME
    work_unit: Annotated[str, Field(min_length=1)] = Field(
        description="the upstream work unit's name (a sweep's units are named by their index)"
    )
    condition: DependencyCondition = DependencyCondition.SUCCEEDED


class WorkUnitDependencies(SpecModel):
    """What one work unit waits for: every entry of ``allOf``, and at least one of ``anyOf``
    when it is given."""

    all_of: list[WorkUnitDependency] = Field(default_factory=list)
    any_of: list[WorkUnitDependency] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> WorkUnitDependencies:
        if not self.all_of and not self.any_of:
            raise ValueError("give allOf, anyOf, or both")
        return self

    def entries(self) -> list[WorkUnitDependency]:
        """Every upstream work unit named."""
        return [*self.all_of, *self.any_of]


def dependency_entries(spec: ExperimentSpec) -> list[Dependency | WorkUnitDependency]:
    """Every dependency of ``spec``: its ``dependsOn`` and its work units' own."""
    found: list[Dependency | WorkUnitDependency] = list(spec.depends_on)
    for tpl in spec.work_units or ():
        if tpl.depends_on is not None:
            found += tpl.depends_on.entries()
    return found


def upstream_experiments(spec: ExperimentSpec) -> set[str]:
    """The experiments ``spec`` depends on: in ``dependsOn`` and in its work units' own."""
    return {d.experiment for d in dependency_entries(spec)}
