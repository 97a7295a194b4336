"""The controller survives its store going away: SQLite locked by another process for 60 s
(twice its busy timeout), and PostgreSQL restarted in the middle of a sweep. It stays up,
says what happens, and converges once the store is back: every unit once, nothing lost."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from lxr.store import Store
from lxr.testing import finished
from tests.faults.harness import ControllerProcess, wait_until
from tests.faults.test_split_brain_local import experiment, starts

pytestmark = pytest.mark.slow

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def running(store: Store, name: str) -> bool:
    return any(u.status.phase.value == "Running" for u in store.list_work_units(name) if u.status)


def test_sqlite_locked_for_60s(state_home: Path, store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    ctl = ControllerProcess(state_home, "locked").start()
    try:
        store.apply(experiment("locked", marks, [{"sleep": 4}] * 4))
        wait_until(lambda: running(store, "locked"), 60, "tasks to run")
        database = make_url(store.url).database
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(database), "60"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        holder.communicate(timeout=90)
        assert holder.returncode == 0
        released = time.monotonic()
        assert ctl.proc is not None and ctl.proc.poll() is None, ctl.output()
        recovered = wait_until(lambda: finished(store, "locked"), 90, "convergence after it")
        assert ctl.proc.poll() is None, ctl.output()
    finally:
        ctl.stop()
    print(f"converged {recovered:.1f}s after the 60 s lock was released")
    log = ctl.output()
    assert "database is locked" in log, log
    assert re.search(r"store available again after \d+", log), log
    units = store.list_work_units("locked")
    assert [u.status.phase.value for u in units] == ["Succeeded"] * 4
    assert all(len(u.status.attempts) == 1 for u in units)
    assert set(starts(marks).values()) == {1} and len(starts(marks)) == 4
    assert time.monotonic() - released < 90


@pytest.mark.integration
def test_postgres_restarted_mid_sweep(state_home: Path, postgres_url: str, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    store = Store(postgres_url)
    ctl = ControllerProcess(state_home, "pg", {"LXR_DATABASE_URL": postgres_url}).start()
    try:
        store.apply(experiment("pg-sweep", marks, [{"sleep": 3}] * 6))
        wait_until(lambda: running(store, "pg-sweep"), 60, "tasks to run")
        restarted = time.monotonic()
        subprocess.run(["pg_ctlcluster", "15", "main", "restart"], check=True, timeout=60)
        down_for = time.monotonic() - restarted
        recovered = wait_until(
            lambda: _quietly(lambda: finished(store, "pg-sweep")), 120, "convergence"
        )
        assert ctl.proc is not None and ctl.proc.poll() is None, ctl.output()
    finally:
        ctl.stop()
        store.close()
    print(f"PostgreSQL restart took {down_for:.1f}s; converged {recovered:.1f}s after it")
    store = Store(postgres_url)
    try:
        units = store.list_work_units("pg-sweep")
        assert [u.status.phase.value for u in units] == ["Succeeded"] * 6
        assert all(len(u.status.attempts) == 1 for u in units)
    finally:
        store.close()
    assert set(starts(marks).values()) == {1} and len(starts(marks)) == 6


def _quietly(check):
    try:
        return check()
    except Exception:
        return False
