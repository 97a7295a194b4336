"""``lxr logs`` like ``kubectl logs``, as a table of forms, plus -f ending with the task."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli, start_controller, wait_for

PROGRAM = r"""
import os, sys, time
idx, attempt = int(os.environ["LXR_WORK_UNIT"]), int(os.environ["LXR_ATTEMPT"])
if idx == 0:
    for i in range(1, 6):
        print("line", i)
elif idx == 1:
    print("attempt", attempt)
    print("err of attempt", attempt, file=sys.stderr)
    sys.exit(0 if attempt > 1 else 3)
else:
    for i in range(1, 5):
        print("tick", i, flush=True)
        time.sleep(1)
"""

EXPERIMENT = f"""\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {{name: lg}}
spec:
  executable:
    command: [{sys.executable}, -c, {json.dumps(PROGRAM)}]
  workUnits: [{{args: {{}}}}, {{args: {{}}}}, {{args: {{}}}}]
  backoff: {{initialSeconds: 0, jitter: 0}}
"""


def lxr(state: Path, *args: str, stdin: str | None = None, timeout: float = 120):
    return run_cli(state, *args, stdin=stdin, timeout=timeout)


def _unit(state: Path, name: str) -> dict:
    res = lxr(state, "get", "wu", name, "-o", "json")
    return json.loads(res.stdout)["items"][0]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("logs") / "state"
    controller = start_controller(state)
    try:
        assert lxr(state, "apply", "-f", "-", stdin=EXPERIMENT).returncode == 0
        wait_for(lambda: _unit(state, "lg-2")["status"]["phase"] == "Running", 60, "lg-2 running")
        yield state
    finally:
        controller.terminate()
        controller.wait(30)


def test_follow_ends_when_the_task_ends(state: Path) -> None:
    started = time.monotonic()
    res = lxr(state, "logs", "workunit", "lg-2", "-f", timeout=60)
    took = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"tick {i}" for i in range(1, 5)]
    assert took < 30, took


@pytest.fixture(scope="module")
def finished(state: Path) -> Path:
    res = lxr(state, "wait", "experiment", "lg", "--for=condition=Finished", "--timeout", "90")
    assert res.returncode == 0, res.stderr
    return state


def lines(text: str) -> list[str]:
    return text.splitlines()


CASES = [
    (["logs", "workunit", "lg-0"], 0, lambda o: lines(o) == [f"line {i}" for i in range(1, 6)]),
    (["logs", "wu/lg-0"], 0, lambda o: lines(o)[0] == "line 1"),
    (["logs", "wu", "lg-0", "--tail", "2"], 0, lambda o: lines(o) == ["line 4", "line 5"]),
    (["logs", "wu", "lg-0", "--tail", "0"], 0, lambda o: o == ""),
    (["logs", "experiment", "lg", "--wu", "0"], 0, lambda o: lines(o)[-1] == "line 5"),
    (["logs", "exp", "lg", "--wu", "lg-0", "--tail", "1"], 0, lambda o: lines(o) == ["line 5"]),
    (["logs", "exp/lg", "--wu", "1"], 0, lambda o: lines(o) == ["attempt 2"]),
    (["logs", "exp", "lg", "--wu", "1", "--previous"], 0, lambda o: lines(o) == ["attempt 1"]),
    (["logs", "exp", "lg", "--wu", "1", "--attempt", "1"], 0, lambda o: lines(o) == ["attempt 1"]),
    (
        ["logs", "exp", "lg", "--wu", "1", "-p", "--stderr"],
        0,
        lambda o: lines(o) == ["err of attempt 1"],
    ),
    (["logs", "exp", "lg", "--wu", "0", "--previous"], 1, None),
    (["logs", "exp", "lg", "--wu", "1", "--attempt", "7"], 1, None),
    (["logs", "exp", "lg", "--wu", "9"], 1, None),
    (["logs", "exp", "lg"], 2, None),
    (["logs", "exp", "lg", "--wu", "1", "--attempt", "1", "--previous"], 2, None),
    (
        ["logs", "-l", "experiment=lg,index in (0,1)", "--tail", "1"],
        0,
        lambda o: sorted(lines(o)) == ["[workunit/lg-0] line 5", "[workunit/lg-1] attempt 2"],
    ),
    (
        ["logs", "exp", "lg", "-l", "index=2"],
        0,
        lambda o: lines(o) == [f"tick {i}" for i in range(1, 5)],
    ),
    (
        ["logs", "exp", "lg", "--wu", "0", "--wu", "2", "--tail", "1"],
        0,
        lambda o: sorted(lines(o)) == ["[workunit/lg-0] line 5", "[workunit/lg-2] tick 4"],
    ),
    (["logs", "-l", "experiment=lg", "--since", "1h"], 0, lambda o: len(lines(o)) == 5 + 1 + 4),
    (
        ["logs", "-l", "experiment=lg", "--since", "1h", "--no-prefix", "--tail", "1"],
        0,
        lambda o: "[" not in o,
    ),
    (["logs", "-l", "experiment=lg", "--since", "soon"], 2, None),
    (["logs", "-l", "experiment=nope"], 1, None),
    (["logs", "cluster", "local"], 2, None),
    (["logs"], 2, None),
]


@pytest.mark.parametrize(("argv", "code", "check"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_logs_forms(finished: Path, argv: list[str], code: int, check) -> None:
    res = lxr(finished, *argv)
    assert res.returncode == code, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    if code:
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    if check is not None:
        assert check(res.stdout), res.stdout


def test_no_attempt_yet_is_worded_properly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert lxr(state, "apply", "-f", "-", stdin=EXPERIMENT).returncode == 0
    res = lxr(state, "logs", "workunit", "lg-0")
    assert res.returncode == 1
    assert res.stderr.strip() == "error: work unit lg-0 has no attempt yet (it is Pending)"
