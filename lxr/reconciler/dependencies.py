"""Whether a work unit's dependencies are met: from its experiment's ``spec.dependsOn``, its own
``dependsOn`` and the upstream work units the record carries (:attr:`ExperimentRecord.upstream`,
read from the store whatever cluster they run on). Pure, no I/O.

A verdict is ``Met``, ``Waiting`` or ``Failed`` (it can no longer be met: an upstream outcome
is final and is not the one asked for), with a message naming the upstream work units. Only
terminal upstream phases are final: a preempted unit that is resubmitted is ``Pending`` again,
and its dependents go on waiting for the rerun.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, NamedTuple

from lxr.api.dependencies import (
    Dependency,
    DependencyCondition,
    DependencyMatch,
    WorkUnitDependencies,
    WorkUnitDependency,
)
from lxr.api.phases import WORK_UNIT_TERMINAL, WorkUnitPhase
from lxr.api.records import ExperimentRecord, UpstreamRecord, UpstreamUnit, WorkUnitRecord

__all__ = ["DependencyIndex", "Verdict", "VerdictKind", "needs_upstream"]

_SUCCEEDED = WorkUnitPhase.SUCCEEDED.value
_TERMINAL = frozenset(p.value for p in WORK_UNIT_TERMINAL)
_STARTED = frozenset(p.value for p in WORK_UNIT_TERMINAL | {WorkUnitPhase.RUNNING})
_ENDED_BADLY = frozenset({WorkUnitPhase.FAILED.value, WorkUnitPhase.STOPPED.value})

#: a condition as a message says it ("waiting for train/2 to succeed")
_WORDS = {
    DependencyCondition.SUCCEEDED: "succeed",
    DependencyCondition.FINISHED: "finish",
    DependencyCondition.FAILED: "fail",
    DependencyCondition.STARTED: "start",
}


class VerdictKind(str, Enum):
    """Where a work unit's dependencies stand."""

    MET = "Met"
    WAITING = "Waiting"
    FAILED = "Failed"


class Verdict(NamedTuple):
    """A verdict and its message (the dependencies not met, or the ones that failed)."""

    kind: VerdictKind
    message: str = ""


_MET = Verdict(VerdictKind.MET)


def needs_upstream(exp: ExperimentRecord) -> bool:
    """True when ``exp`` has dependencies and a work unit not submitted yet (only such a unit
    waits: once submitted, its dependencies were met)."""
    spec = exp.spec
    has = bool(spec.depends_on) or any(t.depends_on for t in spec.work_units or ())
    return has and any(wu.attempt_count == 0 for wu in exp.work_units)


def _condition(units: Sequence[UpstreamUnit], condition: DependencyCondition) -> Verdict:
    """``condition`` over the matching upstream units (not empty); a failed verdict's message
    is the outcome that spoiled it."""
    if condition is DependencyCondition.SUCCEEDED:
        spoiled = sorted({u.phase for u in units if u.phase in _ENDED_BADLY})
        ok = not spoiled and all(u.phase == _SUCCEEDED for u in units)
    elif condition is DependencyCondition.FAILED:
        spoiled = [_SUCCEEDED] if any(u.phase == _SUCCEEDED for u in units) else []
        ok = all(u.phase in _ENDED_BADLY for u in units)
    elif condition is DependencyCondition.FINISHED:
        spoiled, ok = [], all(u.phase in _TERMINAL for u in units)
    else:
        spoiled, ok = [], all(u.started or u.phase in _STARTED for u in units)
    if spoiled:
        return Verdict(VerdictKind.FAILED, " or ".join(spoiled))
    return _MET if ok else Verdict(VerdictKind.WAITING)


def _judge(what: str, units: Sequence[UpstreamUnit], condition: DependencyCondition) -> Verdict:
    if not units:
        return Verdict(VerdictKind.FAILED, f"{what}: no such work unit")
    kind, outcome = _condition(units, condition)
    if kind is VerdictKind.FAILED:
        return Verdict(kind, f"{what} ended {outcome}")
    if kind is VerdictKind.WAITING:
        return Verdict(kind, f"{what} to {_WORDS[condition]}")
    return _MET


def _combine(results: Sequence[Verdict], prefix: str = "") -> Verdict:
    """All of ``results``: failed if one failed, else waiting if one waits."""
    failed = [r.message for r in results if r.kind is VerdictKind.FAILED]
    if failed:
        return Verdict(VerdictKind.FAILED, "; ".join(failed))
    waiting = [r.message for r in results if r.kind is VerdictKind.WAITING]
    if waiting:
        return Verdict(VerdictKind.WAITING, prefix + "; ".join(waiting))
    return _MET


def _missing(name: str) -> Verdict:
    return Verdict(VerdictKind.FAILED, f"experiment {name} does not exist")


class DependencyIndex:
    """The upstream work units of one experiment's plan, indexed on first use, and the
    verdict for each of its work units (:meth:`verdict`)."""

    def __init__(self, exp: ExperimentRecord) -> None:
        self.exp = exp
        self.deps = tuple(exp.spec.depends_on)
        self.own = {t.name: t.depends_on for t in exp.spec.work_units or () if t.depends_on}
        self._by_index: dict[str, dict[int, UpstreamUnit]] = {}
        self._all: dict[int, Verdict] = {}  # id of a match-All dependency -> its verdict
        self._by_name: dict[str, dict[str, UpstreamUnit]] = {}
        # (experiment, arg names, shared names) -> the shared values -> upstream units
        self._by_args: dict[
            tuple[str, tuple[str, ...], tuple[str, ...]], dict[str, list[UpstreamUnit]]
        ] = {}
        self._arg_names: dict[str, list[tuple[tuple[str, ...], list[UpstreamUnit]]]] = {}

    def has_dependencies(self, wu: WorkUnitRecord) -> bool:
        """Whether ``wu`` waits for anything before its first attempt."""
        return wu.attempt_count == 0 and (bool(self.deps) or wu.name in self.own)

    def verdict(self, wu: WorkUnitRecord) -> Verdict:
        """Every dependency of ``wu``: met, waiting (the message says for what) or failed."""
        results = [self._experiment_dep(dep, wu) for dep in self.deps]
        own = self.own.get(wu.name)
        if own is not None:
            results.append(self._own(own))
        return _combine(results, "waiting for ")

    # ---------------------------------------------------------------- spec.dependsOn

    def _experiment_dep(self, dep: Dependency, wu: WorkUnitRecord) -> Verdict:
        up = self.exp.upstream.get(dep.experiment)
        if up is None:
            return _missing(dep.experiment)
        if dep.match is DependencyMatch.SAME_INDEX:
            unit = self._indexed(up).get(wu.index)
            return _judge(f"{up.name}/{wu.index}", [unit] if unit else [], dep.condition)
        if dep.match is DependencyMatch.SAME_ARGS:
            args = self.exp.waiting_args.get(wu.index, {})
            shown = ", ".join(f"{k}={args[k]}" for k in sorted(args)) or "any args"
            what = f"work units of {up.name} with {shown}"
            return _judge(what, self._same_args(up, args), dep.condition)
        found = self._all.get(id(dep))
        if found is None:  # the same for every work unit: judged once per plan
            found = self._all[id(dep)] = _judge(
                f"every work unit of {up.name}", up.units, dep.condition
            )
        return found

    def _indexed(self, up: UpstreamRecord) -> dict[int, UpstreamUnit]:
        found = self._by_index.get(up.name)
        if found is None:
            found = self._by_index[up.name] = {u.index: u for u in up.units}
        return found

    def _same_args(self, up: UpstreamRecord, args: Mapping[str, Any]) -> list[UpstreamUnit]:
        """Upstream units whose args agree with ``args`` on every name both have. The upstream
        units are grouped by their arg names and each group indexed by the shared values once,
        so a sweep is not scanned again for every dependent unit."""
        groups = self._arg_names.get(up.name)
        if groups is None:
            by_names: dict[tuple[str, ...], list[UpstreamUnit]] = {}
            for u in up.units:
                by_names.setdefault(tuple(sorted(u.args or {})), []).append(u)
            groups = self._arg_names[up.name] = list(by_names.items())
        out: list[UpstreamUnit] = []
        for names, units in groups:
            shared = tuple(n for n in names if n in args)
            key = (up.name, names, shared)
            table = self._by_args.get(key)
            if table is None:
                table = self._by_args[key] = {}
                for u in units:
                    table.setdefault(_values(u.args or {}, shared), []).append(u)
            out.extend(table.get(_values(args, shared), ()))
        return sorted(out, key=lambda u: u.index)

    # ---------------------------------------------------------------- a unit's own dependsOn

    def _unit_dep(self, dep: WorkUnitDependency) -> Verdict:
        up = self.exp.upstream.get(dep.experiment)
        if up is None:
            return _missing(dep.experiment)
        named = self._by_name.get(up.name)
        if named is None:
            named = self._by_name[up.name] = {u.name: u for u in up.units}
        unit = named.get(dep.work_unit)
        return _judge(f"{up.name}/{dep.work_unit}", [unit] if unit else [], dep.condition)

    def _own(self, own: WorkUnitDependencies) -> Verdict:
        every = [self._unit_dep(d) for d in own.all_of]
        some = [self._unit_dep(d) for d in own.any_of]
        if some and not any(v.kind is VerdictKind.MET for v in some):
            if all(v.kind is VerdictKind.FAILED for v in some):
                every.append(Verdict(VerdictKind.FAILED, " and ".join(v.message for v in some)))
            else:
                open_ = " or ".join(v.message for v in some if v.kind is VerdictKind.WAITING)
                every.append(Verdict(VerdictKind.WAITING, f"one of {open_}"))
        return _combine(every)


def _values(args: Mapping[str, Any], names: tuple[str, ...]) -> str:
    """The values of ``names`` in ``args`` as one key (typed: ``1`` is not ``True``)."""
    return repr([(type(args[n]).__name__, args[n]) for n in names])
