"""Deriving an experiment's phase and conditions from its work-unit counts. Pure.

Conditions (``type``: meaning when ``True``):

- ``Submitted``: every work unit has reached the scheduler at least once.
- ``Finished``: no work unit is active any more (each Succeeded, Failed or Stopped).
- ``Succeeded``: every work unit succeeded. ``False`` once that can no longer happen, with a
  message naming the failed indexes; ``Unknown`` while work is in progress.
- ``Failed``: the experiment finished with failed work units, or failed as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from lxr.api.phases import (
    WORK_UNIT_ACTIVE,
    ExperimentFacts,
    ExperimentPhase,
    WorkUnitPhase,
    experiment_phase,
)
from lxr.api.resources import Condition, ConditionStatus

__all__ = ["DerivedStatus", "derive_status", "set_condition"]


@dataclass(frozen=True)
class DerivedStatus:
    """Phase and conditions of an experiment."""

    phase: ExperimentPhase
    conditions: list[Condition]
    finished: bool


def set_condition(
    conditions: Sequence[Condition], new: Condition, now: datetime
) -> list[Condition]:
    """``conditions`` with ``new`` in place; its transition time moves only if its status did."""
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type == new.type:
            found = True
            moved = cond.status != new.status or cond.last_transition_time is None
            when = now if moved else cond.last_transition_time
            out.append(new.model_copy(update={"last_transition_time": when}))
        else:
            out.append(cond)
    if not found:
        out.append(new.model_copy(update={"last_transition_time": now}))
    return out


def _indexes(failed: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in failed[:limit])
    return shown + (f" and {len(failed) - limit} more" if len(failed) > limit else "")


def derive_status(
    counts: Mapping[str, int],
    failed_indexes: Sequence[int],
    *,
    never_submitted: int,
    deleting: bool,
    failed_reason: str | None,
    failed_message: str | None,
    conditions: Sequence[Condition],
    now: float,
) -> DerivedStatus:
    """Phase and conditions from work units per phase.

    ``never_submitted`` counts work units that have had no attempt yet.
    """
    when = datetime.fromtimestamp(now, tz=timezone.utc)
    total = sum(counts.values())
    active = sum(counts.get(p, 0) for p in WORK_UNIT_ACTIVE)
    succeeded = counts.get(WorkUnitPhase.SUCCEEDED.value, 0)
    failed = counts.get(WorkUnitPhase.FAILED.value, 0)
    stopped = counts.get(WorkUnitPhase.STOPPED.value, 0)
    finished = active == 0

    phase = experiment_phase(
        ExperimentFacts(
            deleting=deleting,
            finished=finished,
            failed=bool(failed or failed_reason),
            stopped=bool(stopped),
            none_submitted=never_submitted == total,
        )
    )

    conds = list(conditions)
    T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
    submitted = never_submitted == 0
    conds = set_condition(
        conds,
        Condition(
            type="Submitted",
            status=T if submitted else F,
            reason="AllSubmitted" if submitted else "Submitting",
            message=f"{total - never_submitted}/{total} work units submitted",
        ),
        when,
    )
    conds = set_condition(
        conds,
        Condition(
            type="Finished",
            status=T if finished else F,
            reason="NoActiveWorkUnits" if finished else "InProgress",
            message=f"{succeeded} succeeded, {failed} failed, {stopped} stopped, "
            f"{active} active of {total}",
        ),
        when,
    )
    if failed_reason:
        ok = Condition(
            type="Succeeded", status=F, reason=failed_reason, message=failed_message or ""
        )
    elif failed:
        ok = Condition(
            type="Succeeded",
            status=F,
            reason="IndexesFailed",
            message=f"{failed} work unit(s) failed: indexes {_indexes(failed_indexes)}",
        )
    elif finished and stopped:
        ok = Condition(
            type="Succeeded", status=F, reason="Stopped", message=f"{stopped} work units stopped"
        )
    elif finished:
        ok = Condition(
            type="Succeeded",
            status=T,
            reason="AllSucceeded",
            message=f"all {total} work units succeeded",
        )
    else:
        ok = Condition(
            type="Succeeded",
            status=U,
            reason="InProgress",
            message=f"{succeeded}/{total} work units succeeded",
        )
    conds = set_condition(conds, ok, when)
    is_failed = finished and bool(failed or failed_reason)
    conds = set_condition(
        conds,
        Condition(
            type="Failed",
            status=T if is_failed else F,
            reason=(failed_reason or "IndexesFailed") if is_failed else "NotFailed",
            message=ok.message if is_failed else "",
        ),
        when,
    )
    return DerivedStatus(phase=phase, conditions=conds, finished=finished)
