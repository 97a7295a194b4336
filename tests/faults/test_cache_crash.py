"""The controller's cache is only a cache: a controller killed -9 between a cache refresh and
the writes of the plan made from it, 20 times over, submits no work unit twice."""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from lxr.store import Store
from lxr.testing import finished
from tests.conftest import controller_logs, start_controller, wait_for
from tests.test_local_cluster import experiment, starts

pytestmark = pytest.mark.slow

ROUNDS = 20


def test_kill_9_between_cache_refresh_and_plan_writes_never_submits_twice(
    state_home: Path, store: Store, tmp_path: Path
) -> None:
    rng = random.Random(1313)
    names: list[str] = []
    killed = 0
    for round_ in range(ROUNDS):
        # new work each round, so every controller has cycles to be killed in
        name = f"crash{round_}"
        marks = tmp_path / f"{name}.jsonl"
        store.apply(experiment(name, marks, [{"sleep": 1.5}, {"sleep": 0.2}, {}]))
        names.append(name)
        nth = rng.randint(1, 4)  # the Nth refresh of this controller's life
        proc = start_controller(state_home, LXR_TEST_CRASH_AT=f"cache-refreshed:{nth}")
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # every experiment finished before the Nth refresh
            proc.terminate()
            proc.wait(timeout=30)
        killed += proc.returncode == -9
    assert killed >= ROUNDS - 2, f"only {killed} of {ROUNDS} controllers were killed"
    assert controller_logs(state_home).count("cache-refreshed") >= killed
    # a controller that is not killed finishes the work
    final = start_controller(state_home)
    try:
        for name in names:
            wait_for(lambda n=name: finished(store, n), 120, f"{name} to finish")
    finally:
        final.terminate()
        final.wait(timeout=30)
    for name in names:
        exp = store.get_experiment(name)
        assert exp.status is not None and exp.status.phase.value == "Succeeded", name
        runs = Counter(starts(tmp_path / f"{name}.jsonl"))
        # each work unit ran exactly once, as its first attempt: nothing was submitted twice
        assert runs == {("0", "1"): 1, ("1", "1"): 1, ("2", "1"): 1}, (name, runs)
        for wu in store.list_work_units(name):
            assert wu.status is not None and len(wu.status.attempts) == 1, (name, wu.status)
