"""The lease fences a stale leader: every write of a term checks its epoch in the same
transaction, scheduler calls are preceded by a renewal, and a standby never takes the lease
from a holder that keeps renewing it."""

from __future__ import annotations

import time

import anyio
import pytest

from lxr.api.phases import (
    AttemptPhase,
    SubmissionEvent,
    SubmissionState,
    WorkUnitPhase,
    submission_transition,
)
from lxr.api.resources import Experiment
from lxr.reconciler.actions import Cancel, Finalize, SetStatus, UpdateStatus
from lxr.reconciler.actor import Actor
from lxr.reconciler.lease import LeaseKeeper
from lxr.reconciler.storecalls import StoreCalls
from lxr.schedulers.base import ArrayJob, Driver, ObserveQuery, Snapshot
from lxr.schedulers.transport import LocalTransport
from lxr.store import LeaseLost, Store
from tests.test_store import any_store  # noqa: F401 - the fixture (SQLite and PostgreSQL)


def _experiment(store: Store, name: str = "fence") -> str:
    store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": name},
                "spec": {"executable": {"command": ["true"]}, "workUnits": [{}, {}]},
            }
        )
    )
    return store.experiment_uid(name)


def test_epochs_grow_with_every_term(any_store: Store) -> None:  # noqa: F811
    first = any_store.try_acquire_lease("a", ttl=0.2)
    assert first >= 1
    assert any_store.try_acquire_lease("b", ttl=0.2) == 0  # a renews: b waits
    assert any_store.renew_lease("a", first, ttl=0.2)
    time.sleep(0.3)
    second = any_store.try_acquire_lease("b", ttl=10)
    assert second == first + 1
    assert not any_store.renew_lease("a", first, ttl=10)  # a's term is over
    any_store.release_lease("b")
    third = any_store.try_acquire_lease("a", ttl=10)  # a again: still a new epoch
    assert third == second + 1
    info = any_store.lease_info()
    assert info is not None and (info.holder, info.epoch) == ("a", third) and info.live()


def test_every_write_of_a_stale_term_is_refused(any_store: Store) -> None:  # noqa: F811
    uid = _experiment(any_store)
    epoch = any_store.try_acquire_lease("old", ttl=0.2)
    stale = any_store.fenced("old", epoch)
    wu_ids = [r.id for r in stale.load_desired("local")[0].work_units]
    pending = {"phase": WorkUnitPhase.PENDING, "attempt_phase": AttemptPhase.PENDING}
    sub = stale.record_intent(uid, "local", "fence-aaaa", [(wu_ids[0], 1, 0, None)], **pending)
    time.sleep(0.3)
    assert any_store.try_acquire_lease("new", ttl=10) == epoch + 1
    accepted = submission_transition(SubmissionState.INTENT, SubmissionEvent.ACCEPTED)
    rejected = submission_transition(SubmissionState.INTENT, SubmissionEvent.REJECTED)
    status = SetStatus(uid, "Running", {"total": 2}, (), (), 1, None, None, False)
    writes = {
        "record_intent": lambda: stale.record_intent(
            uid, "local", "fence-bbbb", [(wu_ids[1], 1, 0, None)], **pending
        ),
        "mark_submitted": lambda: stale.mark_submitted(sub, "123", accepted),
        "mark_submit_failed": lambda: stale.mark_submit_failed(sub, "no", rejected),
        "mark_cancel_requested": lambda: stale.mark_cancel_requested([1], 1.0),
        "apply_update": lambda: stale.apply_update(
            UpdateStatus(uid, adoptions=((sub, "9"),)), "local"
        ),
        "add_events": lambda: stale.add_events([("Normal", "X", "y", "Experiment", "fence")], uid),
        "write_status": lambda: stale.write_status(status, "local"),
        "finalize": lambda: stale.finalize(Finalize(uid, "fence", "local")),
        "load_desired": lambda: stale.load_desired("local"),
    }
    for what, write in writes.items():
        with pytest.raises(LeaseLost):
            write()
        print(what, "refused")
    # nothing of it landed: the intent still has no job, no second intent, no event
    info = any_store.submission(sub)
    assert (info.state, info.job_id) == ("Intent", None)
    assert [e.reason for e in any_store.list_events("fence") if e.reason == "X"] == []
    fresh = any_store.fenced("new", epoch + 1)
    assert len(fresh.load_desired("local")) == 1  # the current term reads and writes fine


class _Recording(Driver):
    scheduler = "local"

    def __init__(self) -> None:
        super().__init__("local", LocalTransport(), "/nonexistent")
        self.calls: list[str] = []

    async def submit(self, job: ArrayJob) -> str:
        self.calls.append(f"submit {job.tag}")
        return "1"

    async def cancel(self, targets: list[tuple[str, int]]) -> None:
        self.calls.append(f"cancel {targets}")

    async def observe(self, query: ObserveQuery) -> Snapshot:
        return Snapshot(self.cluster, time.time(), {})


def test_a_stale_leader_reaches_no_scheduler(store: Store) -> None:
    _experiment(store)
    calls = StoreCalls(patience=1)
    keeper = LeaseKeeper(store, "old", None, calls, ttl=0.3)
    driver = _Recording()

    async def main() -> None:
        assert await keeper.acquire()
        time.sleep(0.4)  # noqa: ASYNC251 - stalled (no renewal) past the TTL
        assert store.try_acquire_lease("new", ttl=10)
        actor = Actor(
            store.fenced("old", keeper.epoch or 0),
            driver,
            store.get_cluster("local").spec,
            calls=calls,
            guard=keeper.guard,
        )
        with pytest.raises(LeaseLost):
            await actor.execute(Cancel("x", (("tag", 0),), (1,), "Deleted"), {})

    anyio.run(main)
    assert driver.calls == []
    assert keeper.epoch is None


def test_the_keeper_renews_on_its_own_timer_and_a_standby_waits(store: Store) -> None:
    calls = StoreCalls(patience=1)
    keeper = LeaseKeeper(store, "leader", None, calls, ttl=0.6)
    taken: list[int] = []

    async def main() -> None:
        assert await keeper.acquire()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(keeper.keep, scope)
                # a long pass: 3 TTLs of work while the keeper renews
                for _ in range(12):
                    await anyio.sleep(0.15)
                    taken.append(store.try_acquire_lease("standby", ttl=0.6))
                tg.cancel_scope.cancel()

    anyio.run(main)
    assert taken == [0] * 12, "a standby took the lease from a holder that renews it"
    assert keeper.epoch is not None
