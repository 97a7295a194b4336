"""Split brain on the local cluster: a leader paused past its lease's TTL, a standby takes
over, the leader resumes. Fencing must keep the stale leader from acting: one job per tag,
every work unit run once, no attempt row moving backwards.

The deterministic case pauses the leader right after it recorded a submission intent (the
moment that produced duplicate jobs before fencing); the random case pauses whichever
controller leads, 20 times, at random moments of a stream of experiments with retries.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lxr.api.resources import Experiment
from lxr.reconciler.wakeup import wake_controller
from lxr.store import Store
from lxr.testing import finished
from tests.faults.harness import (
    AttemptMonitor,
    ControllerProcess,
    holder_pid,
    is_stopped,
    wait_until,
)

pytestmark = pytest.mark.slow

TTL = 3.0

# a task that records each start (experiment, work unit, attempt), sleeps, maybe fails
TASK = r"""
import json, os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
with open(os.environ["MARKS"], "a") as fh:
    fh.write(json.dumps([os.environ["LXR_EXPERIMENT"], os.environ["LXR_WORK_UNIT"],
                         os.environ["LXR_ATTEMPT"]]) + "\n")
time.sleep(float(args.get("sleep", "0")))
if int(os.environ["LXR_ATTEMPT"]) <= int(args.get("fail_until", "0")):
    sys.exit(3)
"""


def experiment(name: str, marks: Path, units: list[dict]) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "executable": {
                    "command": [sys.executable, "-c", TASK],
                    "env": {"MARKS": str(marks)},
                },
                "workUnits": [{"args": a} for a in units],
                "backoffLimitPerIndex": 3,
                "backoff": {"initialSeconds": 0.3, "factor": 1, "jitter": 0},
            },
        }
    )


def starts(marks: Path) -> Counter[tuple[str, int, int]]:
    if not marks.exists():
        return Counter()
    lines = [json.loads(line) for line in marks.read_text().splitlines() if line.strip()]
    return Counter((e, int(w), int(a)) for e, w, a in lines)


def test_leader_paused_after_intent_does_nothing_once_the_standby_took_over(
    state_home: Path, store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    env = {"LXR_LEASE_TTL": str(TTL)}
    leader = ControllerProcess(state_home, "leader", {**env, "LXR_TEST_STOP_AT": "intent-recorded"})
    standby = ControllerProcess(state_home, "standby", env)
    try:
        leader.start()
        wait_until(lambda: holder_pid(store) == leader.pid, 30, "the leader to take the lease")
        standby.start()
        time.sleep(1.0)
        store.apply(experiment("brain", marks, [{"sleep": 0.5}] * 6))
        wake_controller(store)
        wait_until(lambda: is_stopped(leader.pid), 30, "the leader to stop after its intent")
        took_over = wait_until(
            lambda: holder_pid(store) == standby.pid, 6 * TTL, "the standby to take over"
        )
        wait_until(
            lambda: any(e.reason in ("Submitted", "Adopted") for e in store.list_events("brain")),
            30,
            "the standby to submit the intent",
        )
        time.sleep(TTL)  # the leader stays stalled well past the TTL
        leader.resume()
        wait_until(lambda: finished(store, "brain"), 60, "the experiment to finish")
        time.sleep(2 * TTL)  # whatever the old leader would still do, it has done by now
        assert leader.proc is not None and leader.proc.poll() is None, "the old leader exited"
    finally:
        leader.stop()
        standby.stop()
    print(f"standby took over {took_over:.1f}s after the leader stopped (TTL {TTL:.0f}s)")
    runs = starts(marks)
    assert sorted(runs) == [("brain", i, 1) for i in range(6)], runs
    assert set(runs.values()) == {1}, f"work units ran twice: {runs}"
    units = store.list_work_units("brain")
    assert all(u.status.phase.value == "Succeeded" for u in units)
    assert all(len(u.status.attempts) == 1 for u in units)
    jobs = os.listdir(state_home / "lxr" / "clusters" / "local" / "jobs")
    assert len(jobs) == 1, f"one job per tag, one tag: {jobs}"
    assert "lost the lease" in leader.output(), leader.output()


def test_random_pauses_of_the_leader_run_no_unit_twice(
    state_home: Path, store: Store, tmp_path: Path
) -> None:
    seed = int(os.environ.get("LXR_FAULT_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    marks = tmp_path / "marks"
    env = {"LXR_LEASE_TTL": str(TTL)}
    a = ControllerProcess(state_home, "a", env)
    b = ControllerProcess(state_home, "b", env)
    by_pid: dict[int, ControllerProcess] = {}
    names = [f"pause-{i:02d}" for i in range(20)]
    # one retry per experiment, so intents keep being recorded throughout
    units = [{"sleep": 0.4}, {"sleep": 0.8, "fail_until": 1}, {"sleep": 0.1}]
    pauses: list[float] = []
    holders: list[int] = []
    with AttemptMonitor(store.url) as monitor:
        try:
            for proc in (a, b):
                proc.start()
                by_pid[proc.pid] = proc
            wait_until(lambda: holder_pid(store) is not None, 30, "a leader")
            for name in names:
                store.apply(experiment(name, marks, units))
                wake_controller(store)
                time.sleep(rng.uniform(0.0, 1.5))
                pid = holder_pid(store)
                if pid is None or pid not in by_pid:
                    continue
                holders.append(pid)
                seconds = rng.uniform(0.5, 2.5 * TTL)
                pauses.append(seconds)
                by_pid[pid].pause()
                time.sleep(seconds)
                by_pid[pid].resume()
            wait_until(
                lambda: all(finished(store, n) for n in names), 180, "every experiment to finish"
            )
            time.sleep(2 * TTL)
            assert all(p.proc is not None and p.proc.poll() is None for p in (a, b))
        finally:
            a.stop()
            b.stop()
    runs = starts(marks)
    duplicates = {k: n for k, n in runs.items() if n > 1}
    switches = sum(1 for x, y in zip(holders, holders[1:], strict=False) if x != y)
    print(
        f"seed {seed}: {len(pauses)} pauses ({sum(p > TTL for p in pauses)} past the TTL), "
        f"{switches} leader changes, {len(runs)} task starts, {len(duplicates)} duplicates, "
        f"{len(monitor.regressions)} regressions in {monitor.samples} samples"
    )
    assert len(pauses) >= 15, "most pauses must hit a leader"
    assert duplicates == {}, f"seed {seed}: units ran twice: {duplicates}"
    assert monitor.regressions == [], f"seed {seed}: {monitor.regressions}"
    for name in names:
        got = {u.spec.index: u for u in store.list_work_units(name)}
        assert [got[i].status.phase.value for i in range(3)] == ["Succeeded"] * 3, (seed, name)
        attempts = [len(got[i].status.attempts) for i in range(3)]
        assert attempts == [1, 2, 1], (seed, name, attempts)
        ran = [sum(1 for k in runs if k[:2] == (name, i)) for i in range(3)]
        assert ran == attempts, (seed, name, ran)
