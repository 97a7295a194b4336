"""The local cluster under faults: a controller killed -9 around a task's start, a full disk.
Whatever happens, no work unit runs twice, and a start that cannot be recorded never runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from lxr.api.resources import Cluster, ClusterSpec, ObjectMeta, Resources
from lxr.reconciler.controller import Controller
from lxr.schedulers.base import ArrayJob, ObserveQuery, SchedulerError, TaskPhase, TaskSpec
from lxr.schedulers.local import LocalDriver
from lxr.schedulers.local.dispatch import STARTER
from lxr.schedulers.local.tasks import read_pid, task_alive
from lxr.schedulers.transport import LocalTransport
from lxr.store import Store
from lxr.testing import converge
from tests.conftest import controller_logs, require, start_controller, wait_for
from tests.test_local_cluster import experiment, read_marks, starts

pytestmark = pytest.mark.slow

# records its start, then waits for the file named by --go (if any) before it exits 0
WAITER = r"""
import json, os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
with open(os.environ["MARKS"], "a") as fh:
    fh.write(json.dumps({"wu": os.environ["LXR_WORK_UNIT"], "attempt": os.environ["LXR_ATTEMPT"],
                         "pid": os.getpid(), "start": time.time()}) + "\n")
while args.get("go") and not os.path.exists(args["go"]):
    time.sleep(0.05)
"""


def job(tag: str, marks: Path, n: int, go: Path | None = None) -> ArrayJob:
    args = [f"--go={go}"] if go else []
    return ArrayJob(
        tag=tag,
        experiment="faults",
        experiment_uid="u",
        tasks=[
            TaskSpec(
                i,
                [sys.executable, "-c", WAITER, *args],
                {"MARKS": str(marks), "LXR_WORK_UNIT": str(i), "LXR_ATTEMPT": "1"},
            )
            for i in range(1, n + 1)
        ],
        resources=Resources(),
    )


def driver(staging: Path, max_parallel: int = 4) -> LocalDriver:
    spec = ClusterSpec(scheduler="local", max_parallel=max_parallel)
    return LocalDriver("local", LocalTransport(), str(staging), spec)


def observe(d: LocalDriver, tag: str, n: int) -> dict[int, TaskPhase]:
    query = ObserveQuery({tag: frozenset(range(1, n + 1))})
    snap = anyio.run(d.observe, query)
    return {idx: obs.phase for (_, idx), obs in snap.tasks.items()}


def test_two_starters_racing_for_one_task_run_it_once(tmp_path: Path) -> None:
    """What a controller killed right after a spawn, then restarted, amounts to: two starters
    for one task. The pid claim is one link(2): one runs the program, the other exits 75."""
    d = driver(tmp_path / "staging")
    marks = tmp_path / "marks.jsonl"
    go = tmp_path / "go"
    d.root.mkdir(parents=True)
    d.dispatcher.start = lambda: None  # type: ignore[method-assign]  # only the starters run
    tag = anyio.run(d.submit, job("race", marks, 1, go))
    jd = d.root / tag
    starters = [
        subprocess.Popen(["bash", str(jd / STARTER), str(jd), "1"], start_new_session=True)
        for _ in range(4)
    ]
    wait_for(lambda: len(read_marks(marks)) >= 1, 30, "the task to start")
    time.sleep(0.5)
    go.touch()
    codes = sorted(p.wait(30) for p in starters)
    assert codes == [0, 75, 75, 75]
    assert len(read_marks(marks)) == 1
    assert (jd / "exit" / "1").read_text() == "0\n"


@pytest.mark.parametrize("point", ["local-recorded", "local-spawned"])
def test_kill_9_between_record_and_spawn_never_runs_a_unit_twice(
    point: str, state_home: Path, store: Store, tmp_path: Path
) -> None:
    """The controller dies right after recording a start (before the spawn) or right after
    the spawn (before anything else); the next controller starts what never ran, once."""
    marks = tmp_path / "marks.jsonl"
    store.apply(experiment(f"k-{point}", marks, [{"sleep": 0.3}] * 4))
    crashing = start_controller(state_home, LXR_TEST_CRASH_AT=point)
    assert crashing.wait(60) == -signal.SIGKILL, controller_logs(state_home)
    second = start_controller(state_home)
    try:
        wait_for(
            lambda: (
                [w.status.phase.value for w in store.list_work_units(f"k-{point}")]
                == ["Succeeded"] * 4
            ),
            90,
            "convergence after the kill",
        )
    finally:
        second.terminate()
        second.wait(10)
    assert sorted(starts(marks)) == [(str(i), "1") for i in range(4)], "each unit ran once"
    assert all(len(w.status.attempts) == 1 for w in store.list_work_units(f"k-{point}"))


# ------------------------------------------------------------------ a full disk


@contextlib.contextmanager
def small_disk(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (needs root)."""
    require(os.geteuid() == 0, "mounting a small tmpfs needs root")
    path.mkdir(parents=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    require(res.returncode == 0, f"cannot mount a tmpfs at {path}")
    try:
        yield path
    finally:
        # a test that failed half-way leaves tasks waiting: end them before the disk goes,
        # or they outlive the test run (each task leads its own session: kill the group)
        for pid_file in path.glob("jobs/*/pid/*"):
            found = read_pid(pid_file)
            if found is not None and task_alive(pid_file):
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        kill(found[0], signal.SIGKILL)
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the file to delete to free it again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 64, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_full_disk_before_start_fails_with_path_and_errno_and_starts_nothing(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks.jsonl"
    with small_disk(tmp_path / "disk") as disk:
        d = driver(disk / "staging")
        d.root.mkdir(parents=True)
        start = d.dispatcher.start
        d.dispatcher.start = lambda: None  # type: ignore[method-assign]
        tag = anyio.run(d.submit, job("full", marks, 3))  # while the disk has room
        filler = fill(disk)
        start()  # the dispatcher finds three tasks to start, and no room to record a start
        wait_for(lambda: d.dispatcher.error is not None, 30, "the start to fail")
        with pytest.raises(SchedulerError) as failed:
            observe(d, tag, 3)
        assert "Errno 28" in str(failed.value) and str(d.root / tag) in str(failed.value)
        time.sleep(1.0)
        assert not marks.exists(), "a start that could not be recorded ran"
        assert not list((d.root / tag).glob("pid/[0-9]*"))
        filler.unlink()
        wait_for(lambda: len(read_marks(marks)) == 3, 30, "the tasks to start once it has room")
        wait_for(
            lambda: observe(d, tag, 3) == dict.fromkeys((1, 2, 3), TaskPhase.SUCCEEDED),
            30,
            "success",
        )
        anyio.run(d.close)
    assert sorted(m["wu"] for m in read_marks(marks)) == ["1", "2", "3"]


def test_full_disk_fails_the_cycle_with_path_and_errno(store: Store, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        store.apply(
            Cluster(
                metadata=ObjectMeta(name="tiny"),
                spec=ClusterSpec(scheduler="local", staging_dir=str(disk)),
            )
        )
        marks = tmp_path / "marks.jsonl"
        store.apply(experiment("on-full", marks, [{}] * 2, cluster="tiny"))
        filler = fill(disk)
        ctl = Controller(store)
        anyio.run(ctl.run_once)
        (event,) = [e for e in store.list_events() if e.reason == "ReconcileError"]
        assert "Errno 28" in event.message and str(disk) in event.message
        assert not marks.exists()
        filler.unlink()
        converge(store, ["on-full"], controller=ctl, timeout=60)
        for driver_, _ in ctl.drivers.values():
            anyio.run(driver_.close)
    assert sorted(starts(marks)) == [("0", "1"), ("1", "1")]


def test_full_disk_after_start_waits_for_room_and_never_reruns(
    state_home: Path, store: Store, tmp_path: Path
) -> None:
    """Tasks end while the disk is full: their exit codes cannot be written. They are not
    lost (which would run them again): the launcher keeps trying, and once there is room they
    are recorded, each having run once."""
    with small_disk(tmp_path / "disk") as disk:
        store.apply(
            Cluster(
                metadata=ObjectMeta(name="tiny"),
                spec=ClusterSpec(scheduler="local", staging_dir=str(disk), max_parallel=3),
            )
        )
        marks = tmp_path / "marks.jsonl"
        go = tmp_path / "go"
        units = [{"go": str(go)}] * 3
        exp = experiment("fills", marks, units, cluster="tiny", backoffLimitPerIndex=0)
        # waits for --go instead of sleeping
        exp = exp.model_copy(
            update={
                "spec": exp.spec.model_copy(
                    update={
                        "executable": exp.spec.executable.model_copy(
                            update={"command": [sys.executable, "-c", WAITER]}
                        )
                    }
                )
            }
        )
        store.apply(exp)
        ctl = start_controller(state_home)
        try:
            wait_for(lambda: len(starts(marks)) == 3, 60, "the tasks to run")
            filler = fill(disk)
            go.touch()
            time.sleep(4)  # several cycles with the disk full
            phases = [w.status.phase.value for w in store.list_work_units("fills")]
            assert phases == ["Running"] * 3, phases
            filler.unlink()
            wait_for(
                lambda: (
                    [w.status.phase.value for w in store.list_work_units("fills")]
                    == ["Succeeded"] * 3
                ),
                60,
                "convergence once there is room",
            )
        finally:
            ctl.terminate()
            ctl.wait(10)
    assert sorted(starts(marks)) == [(str(i), "1") for i in range(3)]
    assert all(len(w.status.attempts) == 1 for w in store.list_work_units("fills"))


# ------------------------------------------------------------------ throughput


def test_starts_are_not_bounded_by_controller_cycles(tmp_path: Path) -> None:
    """A task that ends frees its slot at once: with no controller cycle at all, the
    dispatcher alone runs 200 short tasks through 16 slots at well over the 4 starts a second
    a start-per-cycle scheduler would give (benchmarks/local_throughput.py measures the rate:
    >= 50/s when slots are free)."""
    d = driver(tmp_path / "staging", max_parallel=16)
    anyio.run(d.prepare)
    tasks = [TaskSpec(i, ["true"]) for i in range(1, 201)]
    quick = ArrayJob("quick", "quick", "u", tasks, Resources())
    started = time.monotonic()
    anyio.run(d.submit, quick)
    exits = d.root / "quick" / "exit"
    wait_for(lambda: exits.exists() and len(os.listdir(exits)) == 200, 60, "200 tasks")
    rate = 200 / (time.monotonic() - started)
    anyio.run(d.close)
    assert d.dispatcher.starts == 200
    assert rate >= 20, f"{rate:.0f} starts/s"
