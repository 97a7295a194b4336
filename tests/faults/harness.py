"""Fault injection for the controller: separate controller processes on one store, paused
with SIGSTOP and resumed with SIGCONT, and a monitor that watches every attempt row.

What the tests built on it prove: a leader stalled past its lease's TTL never acts on its
stale plan once another controller took over (one job per tag, every unit run once), and no
attempt row ever moves backwards (``Succeeded`` -> ``Queued``, ``Running`` -> ``Pending``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from lxr.store import Store
from tests.conftest import REPO

__all__ = [
    "AttemptMonitor",
    "ControllerProcess",
    "SplitBrain",
    "holder_pid",
    "is_stopped",
    "split_brain",
    "wait_until",
]

#: how far along an attempt is; a row whose rank goes down has regressed
RANK = {"Pending": 0, "Queued": 1, "Running": 2}
TERMINAL_RANK = 3


def is_stopped(pid: int) -> bool:
    """True when the process is stopped (SIGSTOP: state T)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def holder_pid(store: Store) -> int | None:
    """The pid of the controller that holds a live lease, if any."""
    lease = store.lease()
    if lease is None:
        return None
    pid = lease[0].split(":")[1]
    return int(pid) if pid.isdigit() else None


@dataclass
class ControllerProcess:
    """``lxr controller run`` on the store of ``state``, with its own log file."""

    state: Path
    name: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.state / f"controller-{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *args: str) -> ControllerProcess:
        full = {**os.environ, "XDG_STATE_HOME": str(self.state)}
        full.pop("LXR_DATABASE_URL", None)  # the state dir's SQLite store, unless env says
        full.update(self.env)
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lxr.cli", "-v", "controller", "run", *args],
                cwd=REPO,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
            self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class AttemptMonitor:
    """Polls every attempt row of the store in a thread and records each regression."""

    def __init__(self, url: str, period: float = 0.1) -> None:
        self.engine = create_engine(url, connect_args={"timeout": 30} if "sqlite" in url else {})
        self.period = period
        self.ranks: dict[int, tuple[int, str]] = {}
        self.regressions: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> AttemptMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()  # the final state counts too
        self.engine.dispose()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a locked read is just skipped
                self.sample()
            self._stop.wait(self.period)

    def sample(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.id, a.phase, w.phase FROM attempts a "
                    "JOIN work_units w ON w.id = a.work_unit_id"
                )
            ).all()
        self.samples += 1
        for attempt_id, phase, unit_phase in rows:
            rank = RANK.get(phase, TERMINAL_RANK)
            before = self.ranks.get(attempt_id)
            if before is not None and (
                rank < before[0] or (before[0] == TERMINAL_RANK and phase != before[1])
            ):
                self.regressions.append(
                    f"attempt {attempt_id}: {before[1]} -> {phase} (work unit {unit_phase})"
                )
            self.ranks[attempt_id] = (rank, phase)


def wait_until(predicate, timeout: float, what: str, period: float = 0.1) -> float:
    """Poll ``predicate``; returns the seconds it took, fails naming ``what`` on timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(period)
    return time.monotonic() - started


@dataclass
class SplitBrain:
    """What :func:`split_brain` saw."""

    leader_log: str
    standby_log: str
    took_over_after: float
    leader_alive: bool


def split_brain(
    store: Store, state: Path, apply: Callable[[], str], ttl: float, *args: str
) -> SplitBrain:
    """The deterministic split-brain repro: a leader stops itself (SIGSTOP) right after it
    recorded the submission intent of the experiment ``apply()`` creates; a standby takes over
    and submits it; the leader is resumed a TTL later. Returns once the experiment finished
    and the old leader had two more TTLs to do whatever it would still do."""
    from lxr.reconciler.wakeup import wake_controller
    from lxr.testing import finished

    env = {"LXR_LEASE_TTL": str(ttl)}
    leader = ControllerProcess(state, "leader", {**env, "LXR_TEST_STOP_AT": "intent-recorded"})
    standby = ControllerProcess(state, "standby", env)
    try:
        leader.start(*args)
        wait_until(lambda: holder_pid(store) == leader.pid, 60, "the leader to take the lease")
        standby.start(*args)
        time.sleep(1.0)
        name = apply()
        wake_controller(store)
        wait_until(lambda: is_stopped(leader.pid), 60, "the leader to stop after its intent")
        took_over = wait_until(
            lambda: holder_pid(store) == standby.pid, 6 * ttl, "the standby to take over"
        )
        wait_until(
            lambda: any(e.reason in ("Submitted", "Adopted") for e in store.list_events(name)),
            60,
            "the standby to submit the intent",
        )
        time.sleep(ttl)  # the leader stays stalled well past the TTL
        leader.resume()
        wait_until(lambda: finished(store, name), 180, "the experiment to finish", period=0.5)
        time.sleep(2 * ttl)
        alive = leader.proc is not None and leader.proc.poll() is None
    finally:
        leader.stop()
        standby.stop()
    return SplitBrain(leader.output(), standby.output(), took_over, alive)
