"""The local cluster end to end, with real processes: retries, backoff, argv, crashes, delete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lxr.api.resources import Experiment
from lxr.store import Store
from lxr.testing import converge
from tests.conftest import REPO, controller_logs, start_controller, wait_for

pytestmark = pytest.mark.slow

# a task that records each start, then does what its args say
TASK = r"""
import json, os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
with open(os.environ["MARKS"], "a") as fh:
    fh.write(json.dumps({"wu": os.environ["LXR_WORK_UNIT"], "attempt": os.environ["LXR_ATTEMPT"],
                         "pid": os.getpid(), "start": time.time(), "argv": sys.argv[1:]}) + "\n")
time.sleep(float(args.get("sleep", "0")))
fail_until = int(args.get("fail_until", "0"))
code = int(args.get("code", "0")) if int(os.environ["LXR_ATTEMPT"]) <= fail_until else 0
with open(os.environ["MARKS"], "a") as fh:
    fh.write(json.dumps({"wu": os.environ["LXR_WORK_UNIT"], "end": time.time(), "code": code}) + "\n")
sys.exit(code)
"""


def experiment(name: str, marks: Path, units: list[dict], **spec: object) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "executable": {
                    "command": [sys.executable, "-c", TASK],
                    "env": {"MARKS": str(marks)},
                },
                "workUnits": [{"args": a} for a in units],
                "backoff": {"initialSeconds": 0.5, "factor": 2, "jitter": 0},
                **spec,
            },
        }
    )


def read_marks(marks: Path) -> list[dict]:
    if not marks.exists():
        return []
    return [json.loads(line) for line in marks.read_text().splitlines() if line.strip()]


def starts(marks: Path) -> list[tuple[str, str]]:
    return [(m["wu"], m["attempt"]) for m in read_marks(marks) if "attempt" in m]


def test_failed_task_is_retried_with_backoff_then_fails_with_exit_code(
    store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.jsonl"
    units = [
        {"code": 0},  # succeeds at once
        {"code": 3, "fail_until": 99},  # always fails
        {"code": 5, "fail_until": 1},  # fails once, then succeeds
    ]
    store.apply(experiment("retry", marks, units, backoffLimitPerIndex=2))
    converge(store, ["retry"], timeout=90)

    wus = {w.spec.index: w for w in store.list_work_units("retry")}
    assert wus[0].status.phase.value == "Succeeded" and len(wus[0].status.attempts) == 1
    failed = wus[1].status
    assert failed.phase.value == "Failed"
    assert (failed.reason, failed.exit_code, failed.failures) == ("BackoffLimitExceeded", 3, 3)
    assert [a.exit_code for a in failed.attempts] == [3, 3, 3]
    assert all(a.reason == "Error" for a in failed.attempts)
    flaky = wus[2].status
    assert flaky.phase.value == "Succeeded" and [a.exit_code for a in flaky.attempts] == [5, 0]

    # backoff honoured: 0.5 s before the 2nd attempt, 1 s before the 3rd
    ends = [m["end"] for m in read_marks(marks) if m.get("wu") == "1" and "end" in m]
    begins = [m["start"] for m in read_marks(marks) if m.get("wu") == "1" and "start" in m]
    assert begins[1] - ends[0] >= 0.5 and begins[2] - ends[1] >= 1.0

    exp = store.get_experiment("retry")
    assert exp.status is not None and exp.status.phase.value == "Failed"
    cond = {c.type: c for c in exp.status.conditions}
    assert cond["Succeeded"].status.value == "False"
    assert "indexes 1" in cond["Succeeded"].message
    assert exp.status.failed_indexes == [1]


def test_args_reach_the_program_verbatim(store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks.jsonl"
    tricky = 'it\'s a "quoted" $(rm -rf /) `x` ; & | \n next line\t$HOME *'
    store.apply(experiment("argv", marks, [{"text": tricky, "flag": True, "off": False, "n": 3}]))
    converge(store, ["argv"], timeout=60)
    (first,) = [m for m in read_marks(marks) if "argv" in m]
    assert first["argv"] == [f"--text={tricky}", "--flag", "--nooff", "--n=3"]


def test_parallelism_is_honoured(store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks.jsonl"
    store.apply(experiment("par", marks, [{"sleep": 0.5}] * 3, parallelism=1))
    converge(store, ["par"], timeout=60)
    spans = {}
    for m in read_marks(marks):
        spans.setdefault(m["wu"], {}).update(m)
    intervals = sorted((s["start"], s["end"]) for s in spans.values())
    assert len(intervals) == 3
    assert all(b[0] >= a[1] for a, b in zip(intervals, intervals[1:], strict=False)), intervals


# ------------------------------------------------------------------ crashes


def phases(store: Store, name: str) -> list[str]:
    return [w.status.phase.value for w in store.list_work_units(name)]


def test_sigkill_controller_while_tasks_run_then_restart(
    state_home: Path, store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.jsonl"
    store.apply(experiment("crash", marks, [{"sleep": 1.5}] * 5))
    first = start_controller(state_home)
    try:
        wait_for(lambda: len(starts(marks)) >= 2, 60, "tasks to start")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    assert first.returncode == -signal.SIGKILL
    running_at_kill = len(starts(marks))
    second = start_controller(state_home)
    try:
        wait_for(
            lambda: phases(store, "crash") == ["Succeeded"] * 5, 90, "convergence after restart"
        )
    finally:
        second.terminate()
        second.wait(10)
    started = starts(marks)
    assert sorted(started) == [(str(i), "1") for i in range(5)], "every task started exactly once"
    assert running_at_kill >= 2
    assert all(len(w.status.attempts) == 1 for w in store.list_work_units("crash"))


@pytest.mark.parametrize("point", ["intent-recorded", "job-submitted"])
def test_crash_at_submit_point_never_submits_twice(
    point: str, state_home: Path, store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.jsonl"
    store.apply(experiment(f"sub-{point}", marks, [{"sleep": 0}] * 4))
    crashing = start_controller(state_home, LXR_TEST_CRASH_AT=point)
    assert crashing.wait(60) == -signal.SIGKILL, controller_logs(state_home)
    jobs_dir = state_home / "lxr" / "clusters" / "local" / "jobs"
    jobs_after_crash = sorted(p.name for p in jobs_dir.glob("*")) if jobs_dir.exists() else []
    assert len(jobs_after_crash) == (1 if point == "job-submitted" else 0)
    second = start_controller(state_home)
    try:
        wait_for(lambda: phases(store, f"sub-{point}") == ["Succeeded"] * 4, 60, "convergence")
    finally:
        second.terminate()
        second.wait(10)
    assert len(list(jobs_dir.glob("*"))) == 1, "one job for the one submission"
    assert sorted(starts(marks)) == [(str(i), "1") for i in range(4)]
    events = [e.reason for e in store.list_events(f"sub-{point}")]
    assert ("Adopted" in events) == (point == "job-submitted")


def test_delete_cancels_running_tasks(state_home: Path, store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks.jsonl"
    store.apply(experiment("doomed", marks, [{"sleep": 60}] * 3))
    ctl = start_controller(state_home)
    try:
        wait_for(lambda: len(starts(marks)) >= 2, 60, "tasks to start")
        pids = [m["pid"] for m in read_marks(marks) if "pid" in m]
        result = subprocess.run(
            [sys.executable, "-m", "lxr.cli", "delete", "experiment", "doomed", "--timeout", "60"],
            cwd=REPO,
            env={**os.environ, "XDG_STATE_HOME": str(state_home)},
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "experiment/doomed deleted" in result.stdout
    finally:
        ctl.terminate()
        ctl.wait(10)
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
    assert store.list_experiments() == []
    assert not any(m.get("code") == 0 for m in read_marks(marks)), (
        "no cancelled task ran to the end"
    )
