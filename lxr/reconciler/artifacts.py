"""Staging as a reconcile step: before the work units of an experiment are submitted, its
cluster gets every artifact they need (``spec.executable.artifacts``).

Observe, plan, act, as for the scheduler: one existence check per cluster per cycle for the
artifacts of every experiment waiting for them (:meth:`Stager.check`); a pure plan of what is
missing (:func:`plan_uploads`) and of each experiment's ``status.artifacts`` and
``ArtifactsReady`` condition (:func:`plan_artifact_status`); then the uploads, over the
cluster's pooled connection, from the store's blob store (resumable, verified by digest,
renamed into place only then). Until its artifacts are staged, an experiment's work units wait
in ``Pending`` (the ``ArtifactsPending`` row of the state machine) with the reason shown.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from lxr.api.records import ExperimentRecord
from lxr.api.resources import (
    ArtifactPhase,
    ArtifactRef,
    ArtifactStatus,
    Condition,
    ConditionStatus,
)
from lxr.reconciler.actions import Event
from lxr.reconciler.status import set_condition
from lxr.staging import Blob, Stager

__all__ = [
    "ARTIFACTS_READY",
    "ArtifactPlan",
    "needs_staging",
    "plan_artifact_status",
    "plan_uploads",
    "stage_artifacts",
]

#: the experiment condition staging sets
ARTIFACTS_READY = "ArtifactsReady"


def needs_staging(desired: Sequence[ExperimentRecord], root_known: bool) -> list[ExperimentRecord]:
    """Experiments whose next submission needs the check: they have artifacts, a work unit with
    nothing in flight, and their artifacts are not recorded as staged (or this controller does
    not know yet where the cluster keeps them)."""
    return [
        e
        for e in desired
        if e.spec.needed_artifacts
        and not e.deleting
        and (not e.artifacts_ready or not root_known)
        and any(wu.active is None for wu in e.work_units)
    ]


def plan_uploads(exps: Sequence[ExperimentRecord], present: set[str]) -> list[ArtifactRef]:
    """The artifacts to send: each missing one once, in the order the experiments name them."""
    out: dict[str, ArtifactRef] = {}
    for exp in exps:
        for ref in exp.spec.needed_artifacts:
            if ref.staged_name not in present:
                out.setdefault(ref.staged_name, ref)
    return list(out.values())


@dataclasses.dataclass(frozen=True)
class ArtifactPlan:
    """One experiment's ``status.artifacts`` and conditions after this cycle's staging."""

    experiment_uid: str
    artifacts: tuple[dict[str, Any], ...]
    conditions: tuple[dict[str, Any], ...]
    staged: frozenset[str]
    event: Event | None


def plan_artifact_status(
    exp: ExperimentRecord,
    present: set[str],
    sent: Mapping[str, int],
    failed: Mapping[str, str],
    credited: set[str],
    now: float,
) -> ArtifactPlan | None:
    """``exp``'s artifacts on its cluster: ``present`` (found by the check), ``sent`` (uploaded
    this cycle, bytes by staged name; ``credited`` names those already counted for another
    experiment, which shows 0), ``failed`` (upload errors). None when nothing changed."""
    rows: list[ArtifactStatus] = []
    for ref in exp.spec.needed_artifacts:
        name = ref.staged_name
        uploaded = 0
        if name in sent and name not in credited:
            uploaded = sent[name]
            credited.add(name)
        if name in present or name in sent:
            phase, message = ArtifactPhase.STAGED, None
        elif name in failed:
            phase, message = ArtifactPhase.FAILED, failed[name]
        else:
            phase, message = ArtifactPhase.PENDING, None
        rows.append(
            ArtifactStatus(
                name=ref.name,
                digest=ref.digest,
                cluster=exp.cluster,
                bytes=ref.bytes,
                bytes_uploaded=uploaded,
                phase=phase,
                message=message,
            )
        )
    staged = frozenset(r.digest for r in rows if r.phase is ArtifactPhase.STAGED)
    if staged == exp.staged and not any(r.phase is ArtifactPhase.FAILED for r in rows):
        return None  # e.g. only the root was unknown: nothing to write
    ready = len(staged) == len({r.digest for r in rows})
    when = datetime.fromtimestamp(now, timezone.utc)
    event: Event | None
    if ready:
        total = sum(r.bytes_uploaded for r in rows)
        found = sum(1 for r in rows if r.bytes_uploaded == 0)
        message = (
            f"{len(rows)} artifact(s) on cluster {exp.cluster}: {total} bytes uploaded, "
            f"{found} already present"
        )
        cond = Condition(type=ARTIFACTS_READY, status=ConditionStatus.TRUE, reason="Staged",
                         message=message)  # fmt: skip
        event = Event("Normal", "ArtifactsStaged", message, "Experiment", exp.name)
    else:
        bad = [r for r in rows if r.phase is ArtifactPhase.FAILED]
        waiting = [r for r in rows if r.phase is not ArtifactPhase.STAGED]
        reason = "UploadFailed" if bad else "Staging"
        message = (
            f"{bad[0].name}: {bad[0].message}"
            if bad
            else f"{len(waiting)} of {len(rows)} artifact(s) not yet on cluster {exp.cluster}"
        )
        cond = Condition(type=ARTIFACTS_READY, status=ConditionStatus.FALSE, reason=reason,
                         message=message)  # fmt: skip
        event = Event("Warning", reason, message, "Experiment", exp.name) if bad else None
    old = exp.status.conditions if exp.status is not None else ()
    conditions = set_condition(old, cond, when)
    return ArtifactPlan(
        exp.uid,
        tuple(r.model_dump(mode="json", by_alias=True) for r in rows),
        tuple(c.model_dump(mode="json", by_alias=True) for c in conditions),
        staged,
        event,
    )


def _with_plan(exp: ExperimentRecord, plan: ArtifactPlan) -> ExperimentRecord:
    """``exp`` as the rest of the cycle must see it: staged digests and the new conditions."""
    status = exp.status
    if status is not None:
        status = dataclasses.replace(
            status,
            conditions=tuple(Condition.model_validate(c) for c in plan.conditions),
            written={**status.written, "conditions": list(plan.conditions)},
        )
    return dataclasses.replace(exp, staged=plan.staged, status=status)


async def stage_artifacts(
    actor: Any, exps: Sequence[ExperimentRecord]
) -> dict[str, ExperimentRecord]:
    """Check, upload what is missing, record ``status.artifacts``; returns the experiments
    whose record changed, by uid. An upload that fails is recorded (condition, event) and
    raised: the cycle fails and is retried, and the next upload continues where it stopped."""
    driver, store, db = actor.driver, actor.store, actor.calls
    stager = Stager(actor.cluster, driver.transport, driver.staging_dir)
    names = [r.staged_name for e in exps for r in e.spec.needed_artifacts]
    root, present = await stager.check(names)  # the observation
    driver.blobs_root = f"{root}/blobs"
    sent: dict[str, int] = {}
    failed: dict[str, str] = {}
    error: BaseException | None = None
    for ref in plan_uploads(exps, present):  # the actions
        try:
            path = await db(store.artifact_file, ref.digest)
            blob = Blob(ref.digest, path, ref.suffix, ref.unpack)
            before = stager.bytes_uploaded
            try:
                await stager.upload(blob, root)
            finally:
                moved = stager.bytes_uploaded - before
                if moved:
                    await db(store.add_staged_bytes, actor.cluster, moved)
            sent[ref.staged_name] = moved
            resumed = stager.resumed_at.get(ref.staged_name, 0)
            message = f"{ref.name} ({ref.bytes} bytes) uploaded to cluster {actor.cluster}" + (
                f", resumed at {resumed} bytes" if resumed else ""
            )
            for exp in exps:
                if ref in exp.spec.needed_artifacts:
                    event = ("Normal", "Uploaded", message, "Experiment", exp.name)
                    await db(store.add_events, [event], exp.uid, actor.cluster)
        except Exception as exc:
            failed[ref.staged_name] = str(exc)[:500]
            error = exc
            break
    now = time.time()
    on_cluster = present | set(sent)
    by_name = {r.staged_name: r for e in exps for r in e.spec.needed_artifacts}
    await db(
        store.record_staged,
        actor.cluster,
        [(n, by_name[n].digest, by_name[n].bytes) for n in sorted(on_cluster & set(by_name))],
    )
    changed: dict[str, ExperimentRecord] = {}
    credited: set[str] = set()
    for exp in exps:
        plan = plan_artifact_status(exp, present, sent, failed, credited, now)
        if plan is None:
            continue
        await db(store.write_artifact_status, plan, actor.cluster)
        changed[exp.uid] = _with_plan(exp, plan)
    if error is not None:
        raise error
    return changed
