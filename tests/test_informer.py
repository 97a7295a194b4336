"""The controller's cache is only a cache: after every pass, what it holds is what a fresh read
of the store gives, though it took the pass's own writes in without reading them back."""

from __future__ import annotations

import dataclasses
import gc
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pytest

from lxr.api.phases import TaskPhase
from lxr.api.records import AttemptRecord, ExperimentRecord, WorkUnitRecord
from lxr.api.resources import Experiment
from lxr.reconciler import cycle as cycle_module
from lxr.reconciler import informer as informer_module
from lxr.reconciler.actions import AttemptPatch, UpdateStatus, WorkUnitPatch
from lxr.reconciler.controller import Controller
from lxr.reconciler.informer import Informer, _patched, observe_query
from lxr.schedulers.base import ArrayJob, Driver, ObserveQuery, Snapshot, TaskObservation
from lxr.schedulers.transport import LocalTransport
from lxr.store import Store
from tests.test_store import any_store  # noqa: F401 - the fixture (SQLite and PostgreSQL)

_STATES = {
    TaskPhase.RUNNING: "RUNNING",
    TaskPhase.SUCCEEDED: "COMPLETED",
    TaskPhase.FAILED: "FAILED",
}


class _Scripted(Driver):
    """A scheduler that runs nothing: every task it accepted is in the state it is told."""

    scheduler = "local"

    def __init__(self) -> None:
        super().__init__("local", LocalTransport(), "/nonexistent")
        self.jobs: dict[str, list[int]] = {}
        self.phase: TaskPhase | None = None  # None: nothing reported yet
        self.phases: dict[tuple[str, int], TaskPhase] = {}  # tasks not in self.phase
        self.restarts: dict[tuple[str, int], int] = {}  # tasks the scheduler requeued
        self.cancelled: list[tuple[str, int | None]] = []

    @property
    def max_array_size(self) -> int:
        return 4  # several arrays per submission

    async def submit(self, job: ArrayJob) -> str:
        job_id = str(100 + len(self.jobs))
        self.jobs[job_id] = [t.array_index for t in job.tasks]
        return job_id

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        self.cancelled.extend(targets)

    async def observe(self, query: ObserveQuery) -> Snapshot:
        tasks: dict[tuple[str, int], TaskObservation] = {}
        if self.phase is not None:
            for job_id, indexes in self.jobs.items():
                for i in indexes:
                    if (job_id, i) in self.cancelled:
                        continue  # gone from the queue
                    phase = self.phases.get((job_id, i), self.phase)
                    state = _STATES[phase]
                    end = None if phase is TaskPhase.RUNNING else 2.0
                    code = 1 if phase is TaskPhase.FAILED else 0
                    restarts = self.restarts.get((job_id, i), 0)
                    obs = TaskObservation(
                        job_id, i, phase, state, None, code, None, 1.0, end, restarts
                    )
                    tasks[job_id, i] = obs
        return Snapshot(self.cluster, time.time(), tasks)


def _units(records: Sequence[ExperimentRecord]) -> dict[str, tuple[object, ...]]:
    return {r.uid: r.work_units for r in records}


def _same_status(entries: Mapping[str, Any], store: Store) -> None:
    """The experiments in the cache, their status inputs too, are what a fresh read gives
    (the cache moved the counts by the pass's own writes, it did not read them again)."""
    fresh = {r.uid: dataclasses.replace(r, work_units=()) for r in store.load_desired("local")}
    held = {uid: dataclasses.replace(e.record, work_units=()) for uid, e in entries.items()}
    for uid, record in fresh.items():
        assert held[uid].status == record.status, "the status inputs drifted from the store"
        assert held[uid] == record


def test_the_cache_holds_what_the_store_holds_after_each_pass(any_store: Store) -> None:  # noqa: F811
    store = any_store
    store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": "cached"},
                "spec": {
                    "executable": {"command": ["true"]},
                    "sweep": {"grid": {"x": [*range(10)]}},
                },
            }
        )
    )
    ctl = Controller(store)
    driver = _Scripted()
    ctl.drivers["local"] = (driver, store.get_cluster("local").spec)
    anyio.run(ctl.acquire_lease)

    planned: list[int] = []
    carried: list[bool] = []  # whether "a unit to submit?" was carried over the pass's writes

    def one_pass() -> tuple[int, dict[str, tuple[object, ...]]]:
        result = anyio.run(ctl.reconcile, "local")
        planned.append(result.planned)
        cached = ctl.informers["local"]
        held = {uid: e.record.work_units for uid, e in cached._entries.items()}
        memos = [cached._submittable.get(uid) for uid in held]
        carried.append(
            all(m is not None and m[0] is held[uid] for uid, m in zip(held, memos, strict=True))
        )
        for e in cached._entries.values():  # kept up to date, or found again
            units = e.record.work_units
            wanted = any(wu.active is None and not wu.stop_requested for wu in units)
            assert cached.submittable(e.record) == wanted
        fresh = _units(store.load_desired("local"))
        # a finished experiment leaves the cache at the next refresh, with no unit left
        assert all(not held[uid] for uid in held.keys() - fresh.keys())
        assert {uid: held.get(uid) for uid in fresh} == fresh, "the cache drifted from the store"
        _same_status(cached._entries, store)
        for e in cached._entries.values():  # what it asks the scheduler about, kept up to date
            assert cached.shape(e.record) == observe_query([e.record])
            assert (e.seen is None) == (e.keys is not None)  # the observations kept once
        return result.loaded, held

    loaded, _ = one_pass()  # reads everything, submits 3 arrays (4 + 4 + 2 tasks)
    assert loaded == 10 and len(driver.jobs) == 3
    driver.phase = TaskPhase.RUNNING
    loaded, held = one_pass()  # the new attempts came from the intents, not read back
    assert loaded == 0
    assert {wu.active.phase for units in held.values() for wu in units if wu.active} == {"Running"}
    one_pass()
    assert planned[-1] == 0  # nothing changed: nothing planned
    driver.phases[sorted(driver.jobs)[1], 2] = TaskPhase.SUCCEEDED  # one task ends
    loaded, held = one_pass()
    assert (loaded, planned[-1]) == (0, 1)  # only it was planned
    assert sum(map(len, held.values())) == 9
    one_pass()
    assert planned[-1] == 0
    for job_id, index in [(sorted(driver.jobs)[0], 1), (sorted(driver.jobs)[2], 1)]:
        driver.phases[job_id, index] = TaskPhase.SUCCEEDED  # two at once: the check is rebuilt
    one_pass()
    assert planned[-1] == 2
    one_pass()
    driver.restarts[sorted(driver.jobs)[1], 4] = 1  # one requeued: its unit is planned, kept
    loaded, held = one_pass()
    assert (loaded, planned[-1], sum(map(len, held.values()))) == (0, 1, 7)
    assert carried[-1]  # nothing to submit still: not looked for again over every unit
    driver.phases[sorted(driver.jobs)[0], 2] = TaskPhase.SUCCEEDED  # and one more after that
    loaded, held = one_pass()
    assert (loaded, planned[-1], sum(map(len, held.values()))) == (0, 1, 6)
    store.stop_work_units("cached", [3])  # a change counter moves: that experiment is read
    one_pass()
    loaded, held = one_pass()  # the cancel's time is taken in, not read back
    assert loaded == 0 and len(driver.cancelled) == 1 and planned[-1] == 1
    driver.phase = TaskPhase.SUCCEEDED
    loaded, held = one_pass()
    assert loaded == 0 and not any(held.values())
    assert store.get_experiment("cached").status.phase.value == "Stopped"  # one was stopped


def test_the_status_inputs_move_with_the_passes_writes(any_store: Store) -> None:  # noqa: F811
    """Units failing for good, others succeeding, some removed by a sweep edit while they ran
    and new ones added: after every pass the cached counts, never-submitted count and failed
    indexes are those the store counts."""
    store = any_store

    def apply(xs: list[int]) -> None:
        spec = {"executable": {"command": ["true"]}, "sweep": {"grid": {"x": xs}}}
        spec["backoffLimitPerIndex"] = 0
        store.apply(Experiment.model_validate({"metadata": {"name": "counted"}, "spec": spec}))

    apply([*range(8)])
    ctl = Controller(store)
    driver = _Scripted()
    ctl.drivers["local"] = (driver, store.get_cluster("local").spec)
    anyio.run(ctl.acquire_lease)

    def one_pass() -> None:
        anyio.run(ctl.reconcile, "local")
        _same_status(ctl.informers["local"]._entries, store)

    def tasks() -> list[tuple[str, int]]:
        return [(job, i) for job, indexes in sorted(driver.jobs.items()) for i in indexes]

    one_pass()  # 8 submitted
    driver.phase = TaskPhase.RUNNING
    one_pass()
    first, second, third = tasks()[:3]
    driver.phases[first] = TaskPhase.FAILED  # fails for good (no retry budget)
    driver.phases[second] = TaskPhase.SUCCEEDED
    one_pass()
    one_pass()
    apply([*range(6), 8, 9])  # two in flight removed (stopped, then deleted), two added
    for _ in range(3):
        one_pass()
    driver.phases[third] = TaskPhase.FAILED
    one_pass()
    driver.phase = TaskPhase.SUCCEEDED
    for _ in range(4):
        one_pass()
    status = store.get_experiment("counted").status
    assert status.phase.value == "Failed" and status.failed_indexes == [0, 2]
    assert status.work_units == {"Failed": 2, "Succeeded": 6, "total": 8}
    assert len(tasks()) == 10 and len(driver.cancelled) == 2  # the two removed were stopped


def test_a_unit_left_with_nothing_in_flight_is_one_to_submit(any_store: Store) -> None:  # noqa: F811
    """One of many running tasks fails and its unit backs off: the cache's answer to "is
    there a unit to submit?" (kept over the pass's writes while nothing changes it) is yes."""
    store = any_store
    spec = {
        "executable": {"command": ["true"]},
        "sweep": {"grid": {"x": [*range(12)]}},
        "backoffLimitPerIndex": 1,
        "backoff": {"initialSeconds": 600},
    }
    store.apply(Experiment.model_validate({"metadata": {"name": "backs-off"}, "spec": spec}))
    ctl = Controller(store)
    driver = _Scripted()
    ctl.drivers["local"] = (driver, store.get_cluster("local").spec)
    anyio.run(ctl.acquire_lease)
    driver.phase = TaskPhase.RUNNING
    for _ in range(3):
        anyio.run(ctl.reconcile, "local")
    cached = ctl.informers["local"]
    (record,) = (e.record for e in cached._entries.values())
    assert not cached.submittable(record)
    driver.phases[sorted(driver.jobs)[1], 2] = TaskPhase.FAILED
    anyio.run(ctl.reconcile, "local")
    (record,) = (e.record for e in cached._entries.values())
    assert [wu.phase for wu in record.work_units].count("BackOff") == 1
    assert cached.submittable(record)
    _same_status(cached._entries, store)


class _Cycle:
    """Garbage only the cyclic collector frees (it refers to itself)."""

    def __init__(self) -> None:
        self.me = self


def test_a_big_cache_stays_out_of_the_collectors_scans_until_the_resync(
    any_store: Store,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a pass over a big cache (here "big" is 5 units), what the cache keeps is out of
    the cyclic collector's scans (the first collection after a pass where 100k units changed
    walked all of it); a reference cycle that became garbage meanwhile is freed by the next
    full resync."""
    monkeypatch.setattr(informer_module, "_FREEZE_AFTER", 5)
    monkeypatch.setattr(cycle_module, "BIG_CYCLE", 5)
    store = any_store
    spec = {"executable": {"command": ["true"]}, "sweep": {"grid": {"x": [*range(10)]}}}
    store.apply(Experiment.model_validate({"metadata": {"name": "big"}, "spec": spec}))
    ctl = Controller(store)
    driver = _Scripted()
    ctl.drivers["local"] = (driver, store.get_cluster("local").spec)
    anyio.run(ctl.acquire_lease)
    cached = ctl.informers["local"] = Informer(resync_seconds=3600.0)
    garbage: list[weakref.ref[_Cycle]] = []
    snapshots: list[Snapshot] = []  # kept, as a driver keeps what it read last
    observe = driver.observe

    async def observe_making_garbage(query: ObserveQuery) -> Snapshot:
        garbage.append(weakref.ref(_Cycle()))
        snapshots.append(await observe(query))
        return snapshots[-1]

    driver.observe = observe_making_garbage  # type: ignore[method-assign]
    try:
        anyio.run(ctl.reconcile, "local")
        driver.phase = TaskPhase.RUNNING
        anyio.run(ctl.reconcile, "local")  # every unit changes: new records in the cache
        (entry,) = cached._entries.values()
        records = {id(wu) for wu in entry.record.work_units}
        assert len(records) == 10
        assert not any(id(o) in records for o in gc.get_objects()), "scanned by the collector"
        driver.phase = TaskPhase.SUCCEEDED
        anyio.run(ctl.reconcile, "local")  # every unit ends: the cache is empty after it
        assert not cached._entries[entry.record.uid].record.work_units
        assert not any(o is snapshots[-1] for o in gc.get_objects()), "scanned by the collector"
        cached.resync_seconds = 0.0
        anyio.run(ctl.reconcile, "local")
        assert len(garbage) == 2 and all(ref() is None for ref in garbage)
    finally:
        gc.unfreeze()


def test_patches_out_of_the_units_order_patch_the_same_units() -> None:
    def unit(i: int) -> WorkUnitRecord:
        att = AttemptRecord(10 + i, 1, 1, "tag", "Submitted", None, "7", i, "Queued")
        return WorkUnitRecord(i, i, f"e-{i}", "Pending", active=att)

    units = tuple(unit(i) for i in range(4))
    wps = [WorkUnitPatch(1, 1, "Running"), WorkUnitPatch(3, 3, "Succeeded", clear_active=True)]
    aps = [AttemptPatch(11, "Running", "7", "RUNNING"), AttemptPatch(13, "Succeeded", "7")]
    in_order = _patched(units, None, UpdateStatus("u", tuple(wps), tuple(aps)), 5.0)
    reverse = UpdateStatus("u", tuple(reversed(wps)), tuple(reversed(aps)))
    assert _patched(units, None, reverse, 5.0) == in_order
    patched, removed = in_order
    assert removed == [3] and [wu.phase for wu in patched] == ["Pending", "Running", "Pending"]
    assert patched[1].active is not None and patched[1].active.state == "RUNNING"
    assert patched[0] is units[0] and patched[2] is units[2]  # untouched units are kept
