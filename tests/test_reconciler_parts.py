"""Policy, backoff, work queue, status derivation, token bucket: pure parts, virtual time."""

from __future__ import annotations

import anyio
import pytest

from lxr.api.resources import Backoff, Condition, ExperimentSpec, FailureReason
from lxr.reconciler.policy import DEFAULT_ACTIONS, DISRUPTIONS, backoff_seconds, decide
from lxr.reconciler.status import derive_status, set_condition
from lxr.reconciler.workqueue import WorkQueue
from lxr.schedulers.ratelimit import TokenBucket


def test_every_reason_has_a_default_and_disruptions_are_ignored() -> None:
    assert set(DEFAULT_ACTIONS) == set(FailureReason)
    spec = ExperimentSpec.model_validate({"executable": {"command": ["x"]}})
    for reason in DISRUPTIONS:
        assert decide(spec, reason, None).value == "Ignore"
    assert decide(spec, FailureReason.ERROR, 1).value == "Count"
    assert decide(spec, FailureReason.CANCELLED, None).value == "FailIndex"


def test_backoff_is_exponential_capped_and_deterministic() -> None:
    b = Backoff(initial_seconds=10, factor=2, cap_seconds=60, jitter=0)
    assert [backoff_seconds(b, n, "s") for n in range(0, 6)] == [0, 10, 20, 40, 60, 60]
    j = Backoff(initial_seconds=10, factor=2, cap_seconds=60, jitter=0.5)
    values = {backoff_seconds(j, 1, f"seed{i}") for i in range(50)}
    assert all(5 <= v <= 15 for v in values) and len(values) > 40
    assert backoff_seconds(j, 1, "same") == backoff_seconds(j, 1, "same")


def test_workqueue_backs_off_per_key() -> None:
    q = WorkQueue(base_seconds=1, cap_seconds=8)
    assert q.due(["a", "b"], 0) == ["a", "b"]
    assert [q.failed("a", 0) for _ in range(5)] == [1, 2, 4, 8, 8]
    assert q.due(["a", "b"], 7) == ["b"]
    assert q.due(["a", "b"], 8) == ["a", "b"]
    q.succeeded("a")
    assert q.errors("a") == 0 and q.next_due() is None


def test_condition_transition_time_moves_only_with_status() -> None:
    from datetime import datetime, timezone

    t1, t2 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
    conds = set_condition([], Condition(type="Finished", status="False", message="a"), t1)
    conds = set_condition(conds, Condition(type="Finished", status="False", message="b"), t2)
    assert conds[0].last_transition_time == t1 and conds[0].message == "b"
    conds = set_condition(conds, Condition(type="Finished", status="True"), t2)
    assert conds[0].last_transition_time == t2


@pytest.mark.parametrize(
    ("counts", "never", "deleting", "failed_reason", "phase", "succeeded"),
    [
        ({"Pending": 3}, 3, False, None, "Pending", "Unknown"),
        ({"Pending": 1, "Running": 2}, 0, False, None, "Running", "Unknown"),
        ({"Succeeded": 3}, 0, False, None, "Succeeded", "True"),
        ({"Succeeded": 2, "Failed": 1}, 0, False, None, "Failed", "False"),
        ({"Succeeded": 2, "Running": 1, "Failed": 1}, 0, False, None, "Running", "False"),
        ({"Stopped": 2, "Running": 1}, 0, True, None, "Stopping", "Unknown"),
        ({"Stopped": 3}, 0, False, "FailJobRule", "Failed", "False"),
        ({"Succeeded": 1, "Stopped": 2}, 0, False, None, "Stopped", "False"),
    ],
)
def test_status_derivation(counts, never, deleting, failed_reason, phase, succeeded) -> None:
    st = derive_status(
        counts,
        [2] if counts.get("Failed") else [],
        never_submitted=never,
        deleting=deleting,
        failed_reason=failed_reason,
        failed_message="m",
        conditions=[],
        now=0,
    )
    conds = {c.type: c for c in st.conditions}
    assert (st.phase.value, conds["Succeeded"].status.value) == (phase, succeeded)
    if counts.get("Failed"):
        assert "indexes 2" in conds["Succeeded"].message


def test_token_bucket_limits_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert bucket.delay() == 0
    bucket._tokens = 0  # spent
    assert bucket.delay() == pytest.approx(0.5)
    now[0] = 0.25
    assert bucket.delay() == pytest.approx(0.25)

    async def take(n: int) -> float:
        real = TokenBucket(rate=50, burst=2)
        start = anyio.current_time()
        for _ in range(n):
            await real.acquire()
        return anyio.current_time() - start

    assert anyio.run(take, 2) < 0.02  # the burst is free
    assert anyio.run(take, 7) >= 5 / 50 * 0.9  # then 50 per second
