"""A failing cluster is retried with a backoff that never exceeds its poll period, and a
wake-up or a success resets it: after a daemon comes back, the cluster recovers within two
poll periods (measured before: 54-151 s, as the backoff doubled to 300 s)."""

from __future__ import annotations

import sys
import time

import anyio
import pytest

import lxr.reconciler.controller as controller_module
from lxr.api.resources import Experiment
from lxr.reconciler.controller import Controller
from lxr.reconciler.wakeup import notify
from lxr.reconciler.workqueue import WorkQueue
from lxr.schedulers.transport import TransportError
from lxr.store import Store
from lxr.testing import finished

POLL = 2.0


def test_workqueue_backoff_is_capped_and_reset() -> None:
    q = WorkQueue()
    delays = [q.failed("c", 0.0, cap=POLL) for _ in range(8)]
    assert delays == [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    assert q.due(["c"], 1.0) == []
    q.reset()  # a wake-up
    assert q.due(["c"], 0.0) == ["c"] and q.errors("c") == 0
    assert [q.failed("c", 0.0) for _ in range(3)] == [1.0, 2.0, 4.0]  # uncapped: as before
    q.succeeded("c")
    assert q.errors("c") == 0


async def _until(predicate, seconds: float) -> None:
    with anyio.fail_after(seconds):
        while True:
            if predicate():
                return
            await anyio.sleep(0.01)


@pytest.mark.slow
def test_recovery_within_two_poll_periods_and_a_wakeup_resets_the_backoff(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": "outage"},
                "spec": {
                    "executable": {"command": [sys.executable, "-c", "import time; time.sleep(3)"]},
                    "workUnits": [{}],
                },
            }
        )
    )
    down = {"on": False}
    cycles: list[tuple[float, bool]] = []
    original = controller_module.make_driver

    def make_driver(cluster, spec, observer=None):
        driver = original(cluster, spec, observer=observer)
        observe = driver.observe

        async def failing(query):
            if down["on"]:
                cycles.append((time.monotonic(), False))
                raise TransportError("squeue: error: slurm_load_jobs: Unable to contact slurm")
            cycles.append((time.monotonic(), True))
            return await observe(query)

        driver.observe = failing
        return driver

    monkeypatch.setattr(controller_module, "make_driver", make_driver)
    ctl = Controller(store, interval=POLL, local_interval=POLL)
    marks: dict[str, float] = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctl.run)
            await _until(lambda: bool(cycles), 30)  # submitted and observed once
            down["on"] = True
            await anyio.sleep(12)  # 12 s of failures: the old backoff would be at 8-16 s
            failures = ctl.queue.errors("local")
            assert failures >= 4, failures
            # a wake-up resets the backoff and brings the next cycle at once
            before = len(cycles)
            woke = time.monotonic()
            notify(str(ctl.socket_path))
            await _until(lambda: len(cycles) > before, 5)
            marks["wakeup"] = cycles[-1][0] - woke
            await anyio.sleep(3)
            down["on"] = False
            back = time.monotonic()
            await _until(lambda: any(ok and t > back for t, ok in cycles), 4 * POLL)
            marks["recovery"] = next(t for t, ok in cycles if ok and t > back) - back
            await _until(lambda: finished(store, "outage"), 30)
            tg.cancel_scope.cancel()

    anyio.run(main)
    gaps = [b[0] - a[0] for a, b in zip(cycles, cycles[1:], strict=False) if not a[1]]
    print(
        f"recovery {marks['recovery']:.2f}s after the daemon returned (poll {POLL:.0f}s), "
        f"wake-up -> cycle {marks['wakeup']:.2f}s, retry gaps while down up to {max(gaps):.1f}s"
    )
    assert marks["recovery"] <= 2 * POLL
    assert marks["wakeup"] < 0.5 * POLL
    assert max(gaps) <= POLL + 0.5  # the backoff never exceeds a poll period


@pytest.mark.parametrize(
    ("interval", "periods"),
    [
        (2.0, {"slurm": 2.0, "sge": 2.0, "local": 0.5}),
        (60.0, {"slurm": 60.0, "sge": 60.0, "local": 0.5}),  # was 0.5 for Slurm and SGE
        (0.2, {"slurm": 0.2, "sge": 0.2, "local": 0.2}),
    ],
)
def test_a_busy_cluster_is_observed_every_interval_and_the_local_one_faster(
    store, interval: float, periods: dict[str, float]
) -> None:
    """``controller run --interval`` sets the period of Slurm and Grid Engine clusters, longer
    or shorter than their default; only the local cluster, cheap to poll, goes faster."""
    from lxr.api.resources import ClusterSpec

    ctl = Controller(store, interval=interval, local_interval=0.5)
    for kind in periods:
        spec = ClusterSpec(scheduler=kind, ssh={"host": "h"} if kind != "local" else None)
        ctl.drivers[kind] = (None, spec)  # type: ignore[assignment]  # only the spec is read
    assert {kind: ctl._period(kind) for kind in periods} == periods
