"""In-process waiters (``apply --wait``, ``delete --wait``, ``wait``, ``launch --wait``) take
the lease over when its holder is gone, never while it renews it, and say truthfully whether
a controller continues when they time out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lxr.store import Store
from lxr.testing import finished
from tests.conftest import REPO

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "lxr.cli"]


def _yaml(path: Path, name: str, n: int, seconds: float) -> Path:
    path.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  executable: {{command: [{sys.executable}, -c, 'import time; time.sleep({seconds})']}}\n"
        f"  workUnits: [{', '.join(['{}'] * n)}]\n"
    )
    return path


def _pid(store: Store) -> int | None:
    lease = store.lease()
    return int(lease[0].split(":")[1]) if lease else None


def test_two_apply_wait_at_once_both_exit_0(state_home: Path, store: Store, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    first = subprocess.Popen(
        [*CLI, "apply", "-f", str(_yaml(tmp_path / "a.yaml", "first", 1, 2)), "--wait"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while _pid(store) != first.pid:
        assert time.monotonic() < deadline, "the first apply --wait never led"
        time.sleep(0.05)
    second = subprocess.Popen(
        [*CLI, "apply", "-f", str(_yaml(tmp_path / "b.yaml", "second", 3, 4)), "--wait"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    holders: list[tuple[int | None, bool]] = []  # (lease holder, first experiment finished)
    started = time.monotonic()
    while second.poll() is None:
        assert time.monotonic() - started < 120, "the second apply --wait hangs"
        holders.append((_pid(store), finished(store, "first")))
        time.sleep(0.1)
    out1, err1 = first.communicate(timeout=30)
    out2, err2 = second.communicate(timeout=30)
    took = time.monotonic() - started
    assert first.returncode == 0, err1.decode()
    assert second.returncode == 0, err2.decode()
    # the second led only once the first was done with its work and had given the lease up,
    # never while the first still renewed it; leadership passed once, from first to second
    assert all(done for pid, done in holders if pid == second.pid), holders
    sequence = [pid for pid, _ in holders if pid is not None]
    assert sequence == sorted(sequence, key=lambda pid: pid == second.pid), sequence
    assert any(pid == second.pid for pid, _ in holders), "the second never took over"
    print(f"second apply --wait exited 0 after {took:.1f}s")


def test_timeout_says_no_controller_runs_when_none_does(
    state_home: Path, store: Store, tmp_path: Path
) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    res = subprocess.run(
        [*CLI, "apply", "-f", str(_yaml(tmp_path / "t.yaml", "slowpoke", 1, 30)), "--wait",
         "--timeout", "3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "timed out" in res.stderr
    assert "work continues under" not in res.stderr, res.stderr
    assert "no controller is running" in res.stderr, res.stderr
    assert store.lease() is None  # the waiter gave its lease up
    info = store.lease_info()
    assert info is not None and not info.live()
    # apply without --wait: after a clean exit "no controller is running"; after a lease that
    # lapsed without being given up, it names the controller that stopped renewing it
    again = subprocess.run(
        [*CLI, "apply", "-f", str(tmp_path / "t.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0 and "no controller is running" in again.stderr, again.stderr
    assert store.try_acquire_lease("otherhost:1:ghost", ttl=0.2)
    time.sleep(0.3)
    lapsed = subprocess.run(
        [*CLI, "apply", "-f", str(tmp_path / "t.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "otherhost:1:ghost has not renewed its lease" in lapsed.stderr, lapsed.stderr
    # cancel what the timed-out waiter left behind
    subprocess.run([*CLI, "delete", "experiment", "slowpoke"], cwd=REPO, env=env, timeout=60)


def test_wait_for_a_condition_returns_once_it_holds_while_reconciling_here(
    state_home: Path, store: Store, tmp_path: Path
) -> None:
    """With no controller, ``wait --for=condition=Submitted`` reconciles here and returns as soon
    as the condition holds, long before the experiment converges (it used to reconcile on
    until the experiment converged or --timeout ran out)."""
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    path = _yaml(tmp_path / "r.yaml", "runner", 1, 120)
    subprocess.run([*CLI, "apply", "-f", str(path)], cwd=REPO, env=env, check=True, timeout=60)
    started = time.monotonic()
    res = subprocess.run(
        [*CLI, "wait", "experiment", "runner", "--for=condition=Submitted", "--timeout", "60"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    took = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert "experiment/runner condition met: Submitted" in res.stdout
    assert "timed out" not in res.stderr, res.stderr
    assert took < 30, f"wait took {took:.1f}s"
    assert store.lease() is None  # the waiter gave its lease up
    subprocess.run([*CLI, "delete", "experiment", "runner"], cwd=REPO, env=env, timeout=60)
