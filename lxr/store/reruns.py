"""``lxr rerun``: finished work units run again with a fresh budget, their attempts kept.

A rerun re-admits a unit: it is written back in the phase a unit is created in
(:data:`~lxr.api.phases.WORK_UNIT_INITIAL`), as apply does for a new unit, with its failure
and disruption budgets, backoff and resource scaling reset. Its attempt count stays, so the
next attempt is number N+1 and ``describe`` shows every earlier one. The experiment gets a new
generation, so the controller takes a finished experiment up again, and a verdict that ended
it early (a FailJob rule, maxFailedIndexes) is cleared: the user asked to try again.

Downstream, the work units that stopped because a rerun unit had failed (reason
``DependencyFailed``) are re-admitted the same way, experiment after experiment along the
pipeline, so they wait for the new outcome instead of staying stopped for the old one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lxr.api.phases import WORK_UNIT_INITIAL, WorkUnitPhase
from lxr.store.codecs import event_row
from lxr.store.dependencies import stopped_by_dependency
from lxr.store.engine import StoreEngine
from lxr.store.errors import Invalid, NotFound
from lxr.store.queries import TERMINAL, chunks, experiment_row
from lxr.store.tables import ExperimentRow, WorkUnitRow

__all__ = ["RERUN_REASON", "RerunOutcome", "Reruns"]

#: the reason a rerun unit carries until its new attempt ends (and its retry reason)
RERUN_REASON = "Rerun"


@dataclass(frozen=True)
class RerunOutcome:
    """What a rerun re-admitted: the experiment's own work units, and the dependents that had
    stopped because those failed (experiment -> indexes), which wait for them again."""

    indexes: list[int]
    dependents: dict[str, list[int]]


class Reruns(StoreEngine):
    """Rerunning finished work units."""

    def rerun_work_units(
        self, experiment: str, indexes: Iterable[int] = (), *, failed: bool = False
    ) -> RerunOutcome:
        """Run these finished work units of ``experiment`` again (``failed``: every Failed one
        too), and let the work units that stopped because they failed (``DependencyFailed``,
        in any experiment downstream) wait for them again. Returns the indexes rerun, in
        order, and those dependents.

        Raises :class:`NotFound` for an unknown experiment or index and :class:`Invalid` for a
        work unit that has not finished, or an experiment being deleted.
        """
        wanted = sorted(set(indexes))
        now = time.time()
        w = WorkUnitRow
        with self.session() as s:
            exp = experiment_row(s, experiment)
            if exp.deletion_timestamp is not None:
                raise Invalid(f"experiment {experiment} is being deleted")
            found: dict[int, tuple[int, str, bool]] = {}
            for chunk in chunks(wanted, 500):
                for wu_id, idx, phase, removed in s.execute(
                    select(w.id, w.idx, w.phase, w.removed).where(
                        w.experiment_uid == exp.uid, w.idx.in_(chunk)
                    )
                ):
                    found[idx] = (wu_id, phase, removed)
            missing = [i for i in wanted if i not in found]
            if missing:
                raise NotFound(f"experiment {experiment} has no work unit {missing[0]}")
            gone = [i for i in wanted if found[i][2]]
            if gone:
                raise Invalid(
                    f"work unit {gone[0]} of experiment {experiment} is no longer in its spec "
                    "(removedWorkUnitPolicy Retain kept it): put it back in the sweep first"
                )
            active = [(i, found[i][1]) for i in wanted if found[i][1] not in TERMINAL]
            if active:
                idx, phase = active[0]
                raise Invalid(
                    f"work unit {idx} of experiment {experiment} is {phase}: only finished "
                    "work units (Succeeded, Failed, Stopped) can be rerun"
                )
            if failed:
                for wu_id, idx, phase in s.execute(
                    select(w.id, w.idx, w.phase).where(
                        w.experiment_uid == exp.uid,
                        w.phase == WorkUnitPhase.FAILED.value,
                        w.removed.is_(False),
                    )
                ):
                    found[idx] = (wu_id, phase, False)
                    wanted.append(idx)
            chosen = sorted(set(wanted))
            if not chosen:
                return RerunOutcome([], {})
            ids = [found[i][0] for i in chosen]
            message = "rerun requested: a fresh budget, earlier attempts kept"
            _readmit(s, exp.uid, experiment, exp.cluster, ids, chosen, message, now)
            return RerunOutcome(chosen, _revive_dependents(s, experiment, chosen, now))


def _revive_dependents(
    s: Session, experiment: str, indexes: list[int], now: float
) -> dict[str, list[int]]:
    """Work units that stopped because ``experiment``'s units failed wait again, and so on
    down the pipeline: experiment -> the indexes revived. Their dependencies are judged again
    from scratch by the controller (met, still pending, or failed again)."""
    revived: dict[str, list[int]] = {}
    queue = [(experiment, indexes)]
    while queue:
        upstream, rerun = queue.pop(0)
        for name, (uid, cluster, units) in stopped_by_dependency(s, upstream, rerun).items():
            idxs = [idx for _, idx in units]
            message = f"experiment {upstream} was rerun: waiting for its dependencies again"
            _readmit(s, uid, name, cluster, [wu_id for wu_id, _ in units], idxs, message, now)
            revived[name] = sorted({*revived.get(name, ()), *idxs})
            queue.append((name, idxs))
    return revived


def _readmit(
    s: Session,
    uid: str,
    experiment: str,
    cluster: str,
    ids: list[int],
    indexes: list[int],
    message: str,
    now: float,
) -> None:
    """Write work units ``ids`` back as new, with fresh budgets, and take their experiment up
    again (a new generation; an early verdict lifted), with a ``RerunRequested`` event."""
    w = WorkUnitRow
    for chunk in chunks(ids, 500):
        s.execute(
            update(w)
            .where(w.id.in_(chunk))
            .values(
                phase=WORK_UNIT_INITIAL.value,
                reason=RERUN_REASON,
                message=message,
                exit_code=None,
                failures=0,
                disruptions=0,
                next_attempt_after=None,
                retry_reason=RERUN_REASON,
                stop_requested=False,
                resource_scale=None,
                updated_at=now,
            )
        )
    s.execute(
        update(ExperimentRow)
        .where(ExperimentRow.uid == uid)
        .values(
            generation=ExperimentRow.generation + 1,
            resource_version=ExperimentRow.resource_version + 1,
            failed_reason=None,
            failed_message=None,
        )
    )
    shown = ", ".join(str(i) for i in indexes[:20]) + (" ..." if len(indexes) > 20 else "")
    s.add(
        event_row(
            now,
            "Normal",
            "RerunRequested",
            f"rerun of {len(indexes)} work unit(s): {shown}",
            "Experiment",
            experiment,
            uid,
            cluster,
        )
    )
