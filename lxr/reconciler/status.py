"""Deriving an experiment's phase and conditions from its work-unit counts, and planning its
status write or its removal (the deletion finalizer) as part of the plan. Pure.

Conditions (``type``: meaning when ``True``):

- ``Submitted``: every work unit has reached the scheduler at least once.
- ``Finished``: no work unit is active any more (each Succeeded, Failed or Stopped).
- ``Succeeded``: every work unit succeeded. ``False`` once that can no longer happen, with a
  message naming the failed indexes; ``Unknown`` while work is in progress.
- ``Failed``: the experiment finished with failed work units, or failed as a whole.
- ``RuntimeReady`` (only once it was ``False``): ``False`` with reason ``RuntimeMissing`` while
  a program its work units need (container runtime, interpreter) is not on the cluster, so
  nothing is submitted; ``True`` (``RuntimeFound``) once it is there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from lxr.api.phases import (
    WORK_UNIT_ACTIVE,
    ExperimentFacts,
    ExperimentPhase,
    WorkUnitPhase,
    check_experiment,
    experiment_phase,
)
from lxr.api.records import FAILED_INDEXES_SHOWN, ExperimentRecord, StatusRecord
from lxr.api.resources import Condition, ConditionStatus
from lxr.reconciler.actions import Event, Finalize, SetStatus

__all__ = [
    "DerivedStatus",
    "derive_status",
    "moved_inputs",
    "plan_status",
    "set_condition",
    "written_status",
]


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
    runtime_missing: str | None = None,
) -> DerivedStatus:
    """Phase and conditions from work units per phase.

    ``never_submitted`` counts work units that have had no attempt yet; ``runtime_missing``
    says what is missing where, when work units were held for it.
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
    if runtime_missing is not None:
        conds = set_condition(
            conds,
            Condition(
                type="RuntimeReady", status=F, reason="RuntimeMissing", message=runtime_missing
            ),
            when,
        )
    elif any(c.type == "RuntimeReady" and c.status is not T for c in conds):
        found = "the programs its work units need are on the cluster"
        conds = set_condition(
            conds,
            Condition(type="RuntimeReady", status=T, reason="RuntimeFound", message=found),
            when,
        )
    return DerivedStatus(phase=phase, conditions=conds, finished=finished)


def moved_inputs(
    st: StatusRecord,
    moves: Mapping[tuple[str, str], int],
    submitted_first: int = 0,
    newly_failed: Sequence[int] = (),
    removed: Sequence[tuple[str, bool]] = (),
) -> StatusRecord:
    """The status inputs ``st`` once work units moved between phases as ``moves`` counts
    them by (old, new), ``submitted_first`` of them got their first attempt, those at
    ``newly_failed`` (indexes) failed and the ``removed`` ones (``(phase, never submitted)``)
    were deleted: the counts a fresh read of the store gives after such writes."""
    if not (moves or submitted_first or newly_failed or removed):
        return st
    counts = dict(st.counts)
    for (old, new), n in moves.items():
        counts[old] = counts.get(old, 0) - n
        counts[new] = counts.get(new, 0) + n
    for old, _ in removed:
        counts[old] = counts.get(old, 0) - 1
    failed = st.failed_indexes
    if newly_failed:
        failed = tuple(sorted({*failed, *newly_failed})[:FAILED_INDEXES_SHOWN])
    return replace(
        st,
        counts={phase: n for phase, n in counts.items() if n > 0},
        never_submitted=st.never_submitted - submitted_first - sum(u for _, u in removed),
        failed_indexes=failed,
    )


def plan_status(
    exp: ExperimentRecord,
    moves: Mapping[tuple[str, str], int],
    submitted_first: int,
    newly_failed: Sequence[int],
    fail_experiment: tuple[str, str] | None,
    now: float,
    *,
    removed: Sequence[tuple[str, bool]] = (),
    runtime_missing: str | None = None,
) -> SetStatus | Finalize | None:
    """The experiment's status after this plan, or its finalizer; None when nothing changed
    (or the record carries no status inputs).

    ``moves`` counts the work units' phase changes this plan makes by (old, new),
    ``submitted_first`` how many work units get their first attempt, ``fail_experiment`` the
    plan's own verdict on the whole experiment: the counts read with the record are moved by
    what the plan decided, so the status is the plan's, not re-read from the store.
    ``removed`` are the work units this plan deletes (a sweep edit removed them): ``(phase as
    read, never submitted)``.
    """
    st = exp.status
    if st is None:
        return None
    moved = moved_inputs(st, moves, submitted_first, newly_failed, removed)
    counts = {phase: n for phase, n in moved.counts.items() if n > 0}
    never = moved.never_submitted
    failed_idx = list(moved.failed_indexes)
    failed_reason, failed_message = exp.failed_reason, st.failed_message
    if failed_reason is None and fail_experiment is not None:
        failed_reason, failed_message = fail_experiment
    derived = derive_status(
        counts,
        failed_idx,
        never_submitted=never,
        deleting=exp.deleting,
        failed_reason=failed_reason,
        failed_message=failed_message,
        conditions=st.conditions,
        now=now,
        runtime_missing=runtime_missing,
    )
    if exp.deleting and derived.finished:
        return Finalize(exp.uid, exp.name, exp.cluster)
    written = st.written
    total = sum(counts.values())
    new_counts = {**counts, "total": total}
    conditions = tuple(c.model_dump(mode="json", by_alias=True) for c in derived.conditions)
    start = written["start_time"]
    if start is None and never < total:
        start = now
    completion = written["completion_time"] if derived.finished else None
    if derived.finished and completion is None:
        completion = now
    phase = derived.phase.value
    if (
        written["phase"] == phase
        and written["counts"] == new_counts
        and list(written["conditions"]) == list(conditions)
        and list(written["failed_indexes"]) == failed_idx
        and written["observed_generation"] == exp.generation
        and written["start_time"] == start
        and written["completion_time"] == completion
    ):
        return None
    event = None
    if written["phase"] != phase:
        # a new generation (a sweep edit, a rerun) may give a finished experiment new work
        check_experiment(
            written["phase"], phase, reopened=written["observed_generation"] != exp.generation
        )
    if written["phase"] != phase and derived.finished:
        ok = next((c.message for c in derived.conditions if c.type == "Succeeded"), "")
        warn = derived.phase is ExperimentPhase.FAILED
        event = Event("Warning" if warn else "Normal", phase, ok, "Experiment", exp.name)
    return SetStatus(
        experiment_uid=exp.uid,
        phase=phase,
        counts=new_counts,
        conditions=conditions,
        failed_indexes=tuple(failed_idx),
        observed_generation=exp.generation,
        start_time=start,
        completion_time=completion,
        finished=derived.finished,
        event=event,
    )


def written_status(st: StatusRecord, status: SetStatus) -> StatusRecord:
    """The status inputs ``st`` once ``status`` is written: what a fresh read gives then."""
    return replace(
        st,
        conditions=tuple(Condition.model_validate(c) for c in status.conditions),
        written={
            "phase": status.phase,
            "counts": status.counts,
            "conditions": list(status.conditions),
            "failed_indexes": list(status.failed_indexes),
            "observed_generation": status.observed_generation,
            "start_time": status.start_time,
            "completion_time": status.completion_time,
        },
    )
