"""Dependencies between experiments, on the store's side: what a dependent's plan reads of its
upstream experiments (on any cluster), what apply refuses (an unknown experiment, a cycle),
and which experiments depend on one that is being deleted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from lxr.api.dependencies import (
    DependencyCondition,
    DependencyMatch,
    dependency_entries,
    upstream_experiments,
)
from lxr.api.dependency_reasons import FAILED_REASON
from lxr.api.phases import WorkUnitPhase
from lxr.api.records import UpstreamRecord, UpstreamUnit, WorkUnitRecord
from lxr.api.resources import ExperimentSpec
from lxr.api.sweep import expand_work_units
from lxr.store.engine import StoreEngine
from lxr.store.errors import Invalid
from lxr.store.queries import TERMINAL, chunks
from lxr.store.tables import AttemptRow, ExperimentRow, WorkUnitRow

__all__ = [
    "DependencyViews",
    "check_dependencies",
    "dependents_of",
    "stopped_by_dependency",
    "upstream_inputs",
]


def upstream_inputs(
    s: Session, uid: str, spec: ExperimentSpec, units: Sequence[WorkUnitRecord]
) -> tuple[dict[str, UpstreamRecord | None], dict[int, dict[str, Any]]]:
    """What the plan of an experiment with dependencies needs while some of its work units
    were never submitted: each upstream experiment's work units (``None``: no such
    experiment), and the arguments of the units not yet submitted (for ``SameArgs`` only)."""
    waiting = [wu.index for wu in units if wu.attempt_count == 0]
    if not waiting:
        return {}, {}
    same_args = any(d.match is DependencyMatch.SAME_ARGS for d in spec.depends_on)
    started = any(d.condition is DependencyCondition.STARTED for d in dependency_entries(spec))
    w = WorkUnitRow
    upstream: dict[str, UpstreamRecord | None] = {}
    for name in sorted(upstream_experiments(spec)):
        row = s.execute(
            select(ExperimentRow.uid, ExperimentRow.cluster).where(ExperimentRow.name == name)
        ).one_or_none()
        if row is None:
            upstream[name] = None
            continue
        columns: list[Any] = [w.idx, w.name, w.phase]
        if started:
            columns.append(
                exists()
                .where(AttemptRow.work_unit_id == w.id, AttemptRow.start_time.is_not(None))
                .label("started")
            )
        if same_args:
            columns.append(w.args)
        found = []
        for r in s.execute(select(*columns).where(w.experiment_uid == row.uid).order_by(w.idx)):
            found.append(
                UpstreamUnit(
                    r[0],
                    r[1],
                    r[2],
                    bool(r[3]) if started else False,
                    dict(r[-1] or {}) if same_args else None,
                )
            )
        upstream[name] = UpstreamRecord(name, row.cluster, tuple(found))
    args: dict[int, dict[str, Any]] = {}
    if same_args:
        for chunk in chunks(waiting, 500):
            q = select(w.idx, w.args).where(w.experiment_uid == uid, w.idx.in_(chunk))
            args.update((i, dict(a or {})) for i, a in s.execute(q))
    return upstream, args


def _check_own_units(name: str, spec: ExperimentSpec) -> None:
    """Work units that wait for work units of their own experiment: no cycle among them."""
    edges: dict[str, set[str]] = {}
    for tpl in spec.work_units or ():
        if tpl.depends_on is not None and tpl.name is not None:
            own = {d.work_unit for d in tpl.depends_on.entries() if d.experiment == name}
            if own:
                edges[tpl.name] = own
    cycle = _find_cycle(edges)
    if cycle:
        shown = " -> ".join(f"{name}/{unit}" for unit in cycle)
        raise Invalid(f"spec.workUnits: dependency cycle {shown}")


def _stored_edges(s: Session) -> dict[str, set[str]]:
    """experiment -> the experiments it depends on, for every stored experiment that has
    dependencies (read from the specs: a JSON filter would differ per database)."""
    edges: dict[str, set[str]] = {}
    for name, spec in s.execute(select(ExperimentRow.name, ExperimentRow.spec)):
        names = {d["experiment"] for d in spec.get("dependsOn") or ()}
        names |= _names_in(spec) - {name}
        if names:
            edges[name] = names
    return edges


def _names_in(spec: Mapping[str, Any]) -> set[str]:
    """The upstream experiments of a stored (JSON) spec, without validating all of it."""
    names = {d["experiment"] for d in spec.get("dependsOn") or ()}
    for tpl in spec.get("workUnits") or ():
        own = tpl.get("dependsOn") or {}
        names.update(e["experiment"] for e in (*own.get("allOf", ()), *own.get("anyOf", ())))
    return names


def check_dependencies(s: Session, batch: Mapping[str, ExperimentSpec]) -> None:
    """Refuse (:class:`Invalid`) a dependency of an experiment in ``batch`` (name -> spec,
    being applied together) on an experiment that neither exists nor is in the batch, on a
    work unit the upstream experiment does not have, and any dependency cycle. An experiment
    already stored keeps its dependencies (``dependsOn`` is immutable): only new ones are
    checked for unknown names, all of them for cycles."""
    if not any(upstream_experiments(spec) for spec in batch.values()):
        return  # no new edge, so no new cycle
    edges = _stored_edges(s)
    stored = set(s.scalars(select(ExperimentRow.name)))
    for name, spec in batch.items():
        # a unit waiting for a unit of its own experiment is no cycle (checked below)
        edges[name] = {d.experiment for d in spec.depends_on} | (
            upstream_experiments(spec) - {name}
        )
    for name, spec in batch.items():
        if name in stored:
            continue
        _check_own_units(name, spec)
        for i, dep in enumerate(spec.depends_on):
            if dep.experiment not in stored and dep.experiment not in batch:
                raise Invalid(
                    f"spec.dependsOn[{i}].experiment: no experiment named {dep.experiment!r} "
                    f"(experiment {name} depends on it; apply it first or in the same file)"
                )
        _check_work_units(s, name, spec, stored, batch)
    cycle = _find_cycle(edges)
    if cycle:
        raise Invalid(f"spec.dependsOn: dependency cycle {' -> '.join(cycle)}")


def _check_work_units(
    s: Session, name: str, spec: ExperimentSpec, stored: set[str], batch: Mapping[str, Any]
) -> None:
    """A work unit's own dependsOn names an existing experiment and a work unit it has."""
    for i, tpl in enumerate(spec.work_units or ()):
        if tpl.depends_on is None:
            continue
        for field, entries in (("allOf", tpl.depends_on.all_of), ("anyOf", tpl.depends_on.any_of)):
            for j, dep in enumerate(entries):
                where = f"spec.workUnits[{i}].dependsOn.{field}[{j}]"
                if dep.experiment not in stored and dep.experiment not in batch:
                    raise Invalid(
                        f"{where}.experiment: no experiment named {dep.experiment!r} "
                        f"(experiment {name} depends on it)"
                    )
                if dep.work_unit not in _unit_names(s, dep.experiment, batch):
                    raise Invalid(
                        f"{where}.workUnit: experiment {dep.experiment} has no work unit "
                        f"named {dep.work_unit!r}"
                    )


def _unit_names(s: Session, experiment: str, batch: Mapping[str, Any]) -> set[str]:
    spec = batch.get(experiment)
    if spec is not None:
        return {u.name for u in expand_work_units(spec)}
    q = (
        select(WorkUnitRow.name)
        .join(ExperimentRow, ExperimentRow.uid == WorkUnitRow.experiment_uid)
        .where(ExperimentRow.name == experiment)
    )
    return set(s.scalars(q))


def _find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of ``edges`` as the names along it (first name repeated at the end), if any."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def dependents_of(s: Session, names: Iterable[str]) -> dict[str, list[str]]:
    """upstream name -> the unfinished experiments (not being deleted, not in ``names``)
    that depend on it, for the experiments ``names`` about to be deleted."""
    wanted = set(names)
    out: dict[str, list[str]] = {}
    q = select(ExperimentRow.name, ExperimentRow.spec).where(
        ExperimentRow.deletion_timestamp.is_(None), ExperimentRow.phase.not_in(TERMINAL)
    )
    for name, spec in s.execute(q):
        if name in wanted:
            continue
        for upstream in sorted(_names_in(spec) & wanted):
            out.setdefault(upstream, []).append(name)
    return out


def stopped_by_dependency(
    s: Session, upstream: str, indexes: Iterable[int]
) -> dict[str, tuple[str, str, list[tuple[int, int]]]]:
    """The work units that ended ``Stopped`` (reason ``DependencyFailed``) waiting for
    ``upstream`` and could now have their dependencies met, after its work units ``indexes``
    were rerun: experiment name -> (uid, cluster, [(work unit id, index)]). An experiment
    whose every dependency on ``upstream`` matches ``SameIndex`` counts only those indexes;
    one that waits for all of it, for matching args or for named units counts every such
    unit, since its verdict is computed again anyway. ``upstream`` itself is among them when
    its units wait for units of their own experiment."""
    rerun = set(indexes)
    out: dict[str, tuple[str, str, list[tuple[int, int]]]] = {}
    q = select(ExperimentRow.uid, ExperimentRow.name, ExperimentRow.cluster, ExperimentRow.spec)
    q = q.where(ExperimentRow.deletion_timestamp.is_(None))
    w = WorkUnitRow
    for uid, name, cluster, spec in s.execute(q):
        if upstream not in _names_in(spec):
            continue
        own = [d for d in spec.get("dependsOn") or () if d["experiment"] == upstream]
        per_unit = any(
            e["experiment"] == upstream
            for tpl in spec.get("workUnits") or ()
            for e in (*(tpl.get("dependsOn") or {}).get("allOf", ()),
                      *(tpl.get("dependsOn") or {}).get("anyOf", ()))
        )  # fmt: skip
        same_index = bool(own) and not per_unit and all(
            d.get("match") == DependencyMatch.SAME_INDEX.value for d in own
        )  # fmt: skip
        units = [
            (wu_id, idx)
            for wu_id, idx in s.execute(
                select(w.id, w.idx).where(
                    w.experiment_uid == uid,
                    w.phase == WorkUnitPhase.STOPPED.value,
                    w.reason == FAILED_REASON,
                    w.removed.is_(False),
                )
            )
            if not same_index or idx in rerun
        ]
        if units:
            out[name] = (uid, cluster, sorted(units, key=lambda u: u[1]))
    return out


class DependencyViews(StoreEngine):
    """What ``delete`` and ``launch`` read about dependencies."""

    def dependents(self, names: Iterable[str]) -> dict[str, list[str]]:
        """Experiment -> the unfinished experiments that depend on it (not counting those in
        ``names`` or already being deleted): what deleting ``names`` would leave waiting."""
        with self.session() as s:
            return dependents_of(s, names)

    def not_yet_submitted(self, names: Iterable[str]) -> int:
        """Work units of these experiments never submitted that do not wait for a dependency
        (``Pending`` without an attempt): what a launch still has to hand to a scheduler."""
        w = WorkUnitRow
        with self.session() as s:
            uids = select(ExperimentRow.uid).where(ExperimentRow.name.in_(list(names)))
            q = select(func.count()).where(
                w.experiment_uid.in_(uids),
                w.attempt_count == 0,
                w.phase == WorkUnitPhase.PENDING.value,
            )
            return s.scalar(q) or 0
