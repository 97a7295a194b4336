"""``lxr rerun``: finished work units run again with a fresh budget, their attempts kept.

A rerun re-admits a unit: it is written back in the phase a unit is created in
(:data:`~lxr.api.phases.WORK_UNIT_INITIAL`), as apply does for a new unit, with its failure
and disruption budgets, backoff and resource scaling reset. Its attempt count stays, so the
next attempt is number N+1 and ``describe`` shows every earlier one. The experiment gets a new
generation, so the controller takes a finished experiment up again, and a verdict that ended
it early (a FailJob rule, maxFailedIndexes) is cleared: the user asked to try again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select, update

from lxr.api.phases import WORK_UNIT_INITIAL, WorkUnitPhase
from lxr.store.codecs import event_row
from lxr.store.engine import StoreEngine
from lxr.store.errors import Invalid, NotFound
from lxr.store.queries import TERMINAL, chunks, experiment_row
from lxr.store.tables import ExperimentRow, WorkUnitRow

__all__ = ["RERUN_REASON", "Reruns"]

#: the reason a rerun unit carries until its new attempt ends (and its retry reason)
RERUN_REASON = "Rerun"


class Reruns(StoreEngine):
    """Rerunning finished work units."""

    def rerun_work_units(
        self, experiment: str, indexes: Iterable[int] = (), *, failed: bool = False
    ) -> list[int]:
        """Run these finished work units of ``experiment`` again (``failed``: every Failed one
        too). Returns the indexes rerun, in order.

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
                return []
            for chunk in chunks([found[i][0] for i in chosen], 500):
                s.execute(
                    update(w)
                    .where(w.id.in_(chunk))
                    .values(
                        phase=WORK_UNIT_INITIAL.value,
                        reason=RERUN_REASON,
                        message="rerun requested: a fresh budget, earlier attempts kept",
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
                .where(ExperimentRow.uid == exp.uid)
                .values(
                    generation=ExperimentRow.generation + 1,
                    resource_version=ExperimentRow.resource_version + 1,
                    failed_reason=None,
                    failed_message=None,
                )
            )
            shown = ", ".join(str(i) for i in chosen[:20]) + (" ..." if len(chosen) > 20 else "")
            s.add(
                event_row(
                    now,
                    "Normal",
                    "RerunRequested",
                    f"rerun of {len(chosen)} work unit(s): {shown}",
                    "Experiment",
                    experiment,
                    exp.uid,
                    exp.cluster,
                )
            )
            return chosen
