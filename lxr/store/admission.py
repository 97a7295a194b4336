"""Admission: what ``lxr apply``, ``delete`` and ``stop`` write, and what they refuse.

Experiments carry a ``resourceVersion`` checked on update (optimistic concurrency) and a
``generation`` that moves only when the normalized spec does.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from lxr.api.capabilities import unsupported
from lxr.api.phases import EXPERIMENT_INITIAL, WORK_UNIT_INITIAL
from lxr.api.resources import Cluster, ClusterSpec, Experiment, ExperimentSpec
from lxr.api.sweep import expand_work_units, unit_identities
from lxr.store.codecs import event_row
from lxr.store.dependencies import check_dependencies
from lxr.store.engine import StoreEngine
from lxr.store.errors import Conflict, Invalid, NotFound
from lxr.store.queries import (
    CONFLICT_RETRIES,
    TERMINAL,
    bump_version,
    chunks,
    cluster_names,
    experiment_row,
    rowcount,
)
from lxr.store.tables import ClusterRow, ExperimentRow, WorkUnitRow
from lxr.store.unit_edits import plan_unit_edit, write_unit_edit

__all__ = ["IMMUTABLE_SPEC_FIELDS", "UNIT_SPEC_FIELDS", "Admission", "ApplyResult"]

#: spec fields that define what every work unit runs and where; like a Kubernetes Job's
#: template they cannot change (``workUnits`` and ``sweep`` can: a sweep edit)
IMMUTABLE_SPEC_FIELDS = ("cluster", "executable", "components", "resources", "dependsOn")
#: spec fields that list the work units: a change is reconciled unit by unit (a sweep edit)
UNIT_SPEC_FIELDS = ("workUnits", "sweep")


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A digest of a normalized spec."""
    return hashlib.sha256(
        json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def normal_spec(model: ExperimentSpec | ClusterSpec) -> dict[str, Any]:
    """The spec with every default filled in: equal specs hash equal however they are written."""
    return model.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class ApplyResult:
    """What apply did: ``created``, ``configured`` or ``unchanged``; ``detail`` says what a
    sweep edit did to the work units."""

    kind: str
    name: str
    action: str
    generation: int
    detail: str = ""


class Admission(StoreEngine):
    """Desired state in: apply, delete, stop."""

    def apply(
        self,
        obj: Cluster | Experiment,
        *,
        dry_run: bool = False,
        pending_clusters: Sequence[str] = (),
        pending_experiments: Mapping[str, ExperimentSpec] | None = None,
    ) -> ApplyResult:
        """Create or update ``obj``'s desired state (status and server fields are ignored).

        ``pending_clusters`` names clusters a dry run would create first, so an experiment on
        one of them is not refused for naming an unknown cluster; ``pending_experiments`` the
        experiments applied with it, which its dependencies may name (and which take part in
        the cycle check).
        """
        if isinstance(obj, Experiment):
            with self.session() as s:
                batch = dict(pending_experiments or {})
                batch[obj.metadata.name] = obj.spec
                check_dependencies(s, batch)
        for _ in range(CONFLICT_RETRIES):
            try:
                if isinstance(obj, Cluster):
                    return self._apply_cluster(obj, dry_run)
                return self._apply_experiment(obj, dry_run, pending_clusters)
            except Conflict:
                continue
        raise Conflict(f"{obj.kind} {obj.metadata.name} kept changing; try again")

    def apply_all(
        self, objs: Iterable[Cluster | Experiment], *, dry_run: bool = False
    ) -> list[ApplyResult]:
        """Apply every object in one transaction, clusters first (experiments refer to them):
        when one is refused, none is written. Results come in the order applied."""
        ordered = sorted(objs, key=lambda o: not isinstance(o, Cluster))
        batch = [o.metadata.name for o in ordered if isinstance(o, Cluster)]
        exps = {o.metadata.name: o.spec for o in ordered if isinstance(o, Experiment)}
        with self.transaction():
            return [
                self.apply(o, dry_run=dry_run, pending_clusters=batch, pending_experiments=exps)
                for o in ordered
            ]

    def _apply_cluster(self, obj: Cluster, dry_run: bool) -> ApplyResult:
        spec = normal_spec(obj.spec)
        digest = spec_hash(spec)
        with self.session() as s:
            row = s.get(ClusterRow, obj.metadata.name)
            if row is None:
                if not dry_run:
                    s.add(
                        ClusterRow(
                            name=obj.metadata.name,
                            uid=str(uuid.uuid4()),
                            labels=obj.metadata.labels,
                            annotations=obj.metadata.annotations,
                            spec=spec,
                            spec_hash=digest,
                            generation=1,
                            resource_version=1,
                            created_at=time.time(),
                        )
                    )
                return ApplyResult("Cluster", obj.metadata.name, "created", 1)
            same_meta = (
                row.labels == obj.metadata.labels and row.annotations == obj.metadata.annotations
            )
            if row.spec_hash == digest and same_meta:
                return ApplyResult("Cluster", row.name, "unchanged", row.generation)
            generation = row.generation + (row.spec_hash != digest)
            if not dry_run:
                row.spec, row.spec_hash, row.generation = spec, digest, generation
                row.labels, row.annotations = obj.metadata.labels, obj.metadata.annotations
                row.resource_version += 1
            return ApplyResult("Cluster", row.name, "configured", generation)

    def _check_scheduler(self, s: Session, spec: ExperimentSpec) -> ClusterSpec | None:
        """Refuse what the cluster's scheduler cannot run (several nodes on the local
        cluster, components on Grid Engine), naming the field and the reason. The cluster's
        spec (None: a cluster the same dry run creates, checked when applied for real)."""
        row = s.get(ClusterRow, spec.cluster)
        if row is not None:
            cluster = ClusterSpec.model_validate(row.spec)
        elif spec.cluster == "local":
            cluster = ClusterSpec(scheduler="local")
        else:  # created by the same dry run: checked when it is applied for real
            return None
        resources = spec.resources.merged_over(cluster.defaults)
        problems = unsupported(cluster.scheduler, resources, components=len(spec.components or {}))
        for name, c in (spec.components or {}).items():
            problems += unsupported(
                cluster.scheduler,
                c.resources.merged_over(resources),
                path=f"spec.components.{name}.resources",
            )
        if problems:
            raise Invalid("; ".join(problems))
        return cluster

    def _apply_experiment(
        self, obj: Experiment, dry_run: bool, pending_clusters: Sequence[str] = ()
    ) -> ApplyResult:
        spec = normal_spec(obj.spec)
        digest = spec_hash(spec)
        name = obj.metadata.name
        with self.session() as s:
            known = obj.spec.cluster == "local" or obj.spec.cluster in pending_clusters
            if not known and s.get(ClusterRow, obj.spec.cluster) is None:
                raise Invalid(
                    f"spec.cluster: no cluster named {obj.spec.cluster!r} "
                    f"(apply a Cluster first; known: {', '.join(cluster_names(s))})"
                )
            cluster = self._check_scheduler(s, obj.spec)
            row = s.scalars(select(ExperimentRow).where(ExperimentRow.name == name)).one_or_none()
            if row is not None and row.deletion_timestamp is not None:
                raise Invalid(f"experiment {name} is being deleted; wait until it is gone")
            if row is None:
                units = expand_work_units(obj.spec)
                if not dry_run:
                    now = time.time()
                    uid = str(uuid.uuid4())
                    s.add(
                        ExperimentRow(
                            uid=uid,
                            name=name,
                            labels=obj.metadata.labels,
                            annotations=obj.metadata.annotations,
                            spec=spec,
                            spec_hash=digest,
                            cluster=obj.spec.cluster,
                            generation=1,
                            resource_version=1,
                            created_at=now,
                            finalizers=["lxr.dev/cancel-tasks"],
                            phase=EXPERIMENT_INITIAL.value,
                            conditions=[],
                            counts={WORK_UNIT_INITIAL.value: len(units), "total": len(units)},
                            failed_indexes=[],
                            # what it asks is fixed now, not at each submission
                            cluster_defaults=(
                                None
                                if cluster is None
                                else cluster.defaults.model_dump(
                                    mode="json", by_alias=True, exclude_none=True
                                )
                            ),
                        )
                    )
                    s.flush()
                    s.execute(
                        insert(WorkUnitRow),
                        [
                            {
                                "experiment_uid": uid,
                                "idx": u.index,
                                "name": u.name,
                                "args": u.args,
                                "env": u.env,
                                "identity": identity,
                                "cluster": obj.spec.cluster,
                                "phase": WORK_UNIT_INITIAL.value,
                                "failures": 0,
                                "disruptions": 0,
                                "attempt_count": 0,
                                "updated_at": now,
                            }
                            for u, identity in zip(units, unit_identities(units), strict=True)
                        ],
                    )
                    s.add(
                        event_row(
                            now,
                            "Normal",
                            "Created",
                            f"{len(units)} work units",
                            "Experiment",
                            name,
                            uid,
                        )
                    )
                return ApplyResult("Experiment", name, "created", 1)

            same_meta = (
                row.labels == obj.metadata.labels and row.annotations == obj.metadata.annotations
            )
            if row.spec_hash == digest and same_meta:
                return ApplyResult("Experiment", name, "unchanged", row.generation)
            # read back through the model: a spec stored in an older spelling (resources.queue
            # before resources.sge.queue), or before a field with a default existed, is the
            # same spec written today's way
            stored = ExperimentSpec.model_validate(row.spec).model_dump(mode="json", by_alias=True)
            if stored == spec and same_meta:
                return ApplyResult("Experiment", name, "unchanged", row.generation)
            changed = [f for f in IMMUTABLE_SPEC_FIELDS if stored.get(f) != spec.get(f)]
            if changed:
                raise Invalid(
                    f"spec.{changed[0]}: field is immutable once the experiment exists "
                    f"(immutable: {', '.join('spec.' + f for f in IMMUTABLE_SPEC_FIELDS)}); "
                    f"a new experiment is the answer: apply it under a new name, or delete "
                    f"experiment {name} first"
                )
            generation = row.generation + (stored != spec)
            edit = None
            if any(stored.get(f) != spec.get(f) for f in UNIT_SPEC_FIELDS):
                edit = plan_unit_edit(s, row, obj.spec)
            if not dry_run:
                values: dict[str, Any] = {}
                if edit is not None:
                    values["next_index"] = edit.next_index
                self.compare_and_set(
                    s,
                    row.uid,
                    row.resource_version,
                    spec=spec,
                    spec_hash=digest,
                    generation=generation,
                    labels=obj.metadata.labels,
                    annotations=obj.metadata.annotations,
                    **values,
                )
                if edit:
                    now = time.time()
                    write_unit_edit(s, row, edit, now)
                    s.add(
                        event_row(
                            now,
                            "Normal",
                            "SweepEdited",
                            f"generation {generation}: {edit.summary()}",
                            "Experiment",
                            name,
                            row.uid,
                            row.cluster,
                        )
                    )
            detail = edit.summary() if edit is not None else ""
            return ApplyResult("Experiment", name, "configured", generation, detail)

    @staticmethod
    def compare_and_set(s: Session, uid: str, resource_version: int, **values: Any) -> int:
        """Update experiment ``uid`` only if it is still at ``resource_version``; returns the
        new version. Raises :class:`Conflict` when someone else wrote it in between."""
        result = s.execute(
            update(ExperimentRow)
            .where(ExperimentRow.uid == uid, ExperimentRow.resource_version == resource_version)
            .values(**values, resource_version=resource_version + 1)
        )
        if rowcount(result) != 1:
            raise Conflict(f"experiment {uid} is no longer at resourceVersion {resource_version}")
        return resource_version + 1

    def delete_experiment(self, name: str) -> bool:
        """Mark the experiment for deletion; the controller cancels its tasks, then removes it.

        Returns False when it was already being deleted.
        """
        now = time.time()
        with self.session() as s:
            row = experiment_row(s, name)
            if row.deletion_timestamp is not None:
                return False
            row.deletion_timestamp = now
            row.resource_version += 1
            s.add(
                event_row(
                    now, "Normal", "Deleting", "deletion requested", "Experiment", name, row.uid
                )
            )
            return True

    def stop_work_units(self, experiment: str, indexes: Iterable[int]) -> list[int]:
        """Ask the controller to stop these work units of ``experiment`` (the others go on):
        an attempt in flight is cancelled, an idle unit ends ``Stopped``; none is resubmitted.

        Returns the indexes newly asked to stop (finished or already stopping ones are left
        alone). Raises :class:`NotFound` for an unknown experiment or index.
        """
        wanted = sorted(set(indexes))
        now = time.time()
        with self.session() as s:
            exp = experiment_row(s, experiment)
            found: dict[int, tuple[str, bool]] = {}
            for chunk in chunks(wanted, 500):
                for idx, phase, asked in s.execute(
                    select(WorkUnitRow.idx, WorkUnitRow.phase, WorkUnitRow.stop_requested).where(
                        WorkUnitRow.experiment_uid == exp.uid, WorkUnitRow.idx.in_(chunk)
                    )
                ):
                    found[idx] = (phase, asked)
            missing = [i for i in wanted if i not in found]
            if missing:
                raise NotFound(f"experiment {experiment} has no work unit {missing[0]}")
            todo = [i for i in wanted if found[i][0] not in TERMINAL and not found[i][1]]
            if todo:
                bump_version(s, exp.uid)  # the controller's cache reloads this experiment
            for chunk in chunks(todo, 500):
                s.execute(
                    update(WorkUnitRow)
                    .where(WorkUnitRow.experiment_uid == exp.uid, WorkUnitRow.idx.in_(chunk))
                    .values(stop_requested=True, updated_at=now)
                )
            if todo:
                shown = ", ".join(str(i) for i in todo[:20]) + (" ..." if len(todo) > 20 else "")
                s.add(
                    event_row(
                        now,
                        "Normal",
                        "StopRequested",
                        f"stop requested for {len(todo)} work unit(s): {shown}",
                        "Experiment",
                        experiment,
                        exp.uid,
                        exp.cluster,
                    )
                )
            return todo
