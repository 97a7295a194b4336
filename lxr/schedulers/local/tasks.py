"""The local cluster's files, read: what state each task of a job is in.

Each job is a directory ``<stagingDir>/jobs/<tag>/`` holding ``local.json`` (indexes, throttle,
time limit, submission time) and one directory per marker, each file named by a task index:

- ``started/<i>``: the dispatcher's record that it is starting the task (its start time),
  written *before* the task's process is spawned;
- ``pid/<i>``: ``PID STARTTIME`` of the task's process, written by the task's own starter with
  one ``link(2)`` before the program runs: the task ran (or runs) if and only if it exists;
- ``exit/<i>``: the exit code, written by the launcher when the program ended;
- ``cancelled/<i>``, ``timeout/<i>``: lxr asked it to stop / its time limit passed;
- ``done``: every task of the job finished.

Reading never changes anything: observing the local cluster only observes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxr.api.resources import FailureReason
from lxr.schedulers.base import TaskObservation, TaskPhase

__all__ = ["JobFiles", "proc_start", "task_alive"]


def proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def read_pid(path: Path) -> tuple[int, str] | None:
    """``(pid, start time)`` from a ``pid/<i>`` file, None if there is none."""
    try:
        pid_s, _, started = path.read_text().strip().partition(" ")
        return int(pid_s), started
    except (OSError, ValueError):
        return None


def task_alive(path: Path) -> bool:
    """True when the process a ``pid/<i>`` file names still runs (the same process: its start
    time matches, so a reused pid is not mistaken for it)."""
    found = read_pid(path)
    if found is None:
        return False
    current = proc_start(found[0])
    return current is not None and (not found[1] or current == found[1])


def _indexes(directory: Path) -> set[int]:
    try:
        return {int(n) for n in os.listdir(directory) if n.isdigit()}
    except FileNotFoundError:
        return set()


def _float(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class JobFiles:
    """One job's marker directories, each listed once (one ``listdir`` per marker, not one
    ``stat`` per task: a job of 100k tasks reads in a few directory listings)."""

    path: Path
    meta: dict[str, Any]
    pids: set[int] = field(default_factory=set)
    exits: set[int] = field(default_factory=set)
    cancelled: set[int] = field(default_factory=set)
    timeouts: set[int] = field(default_factory=set)
    claims: set[int] = field(default_factory=set)

    @classmethod
    def read(cls, path: Path, meta: dict[str, Any] | None = None) -> JobFiles:
        """List ``path``'s markers (``meta``: its ``local.json``, if already read)."""
        if meta is None:
            meta = json.loads((path / "local.json").read_text())
        return cls(
            path,
            meta,
            _indexes(path / "pid"),
            _indexes(path / "exit"),
            _indexes(path / "cancelled"),
            _indexes(path / "timeout"),
            _indexes(path / "started"),
        )

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def indexes(self) -> list[int]:
        return list(self.meta["indexes"])

    def marker(self, kind: str, idx: int) -> Path:
        return self.path / kind / str(idx)

    def start_time(self, idx: int) -> float | None:
        return _float(self.marker("started", idx))

    def queued(self) -> Iterable[int]:
        """Tasks not started (no ``pid``), not finished and not cancelled, in index order."""
        skip = self.pids | self.exits | self.cancelled
        return (i for i in self.indexes if i not in skip)

    def running(self) -> Iterable[int]:
        """Tasks that were started and have no exit code yet (alive or not)."""
        return (i for i in sorted(self.pids - self.exits))

    def observe(self, idx: int) -> TaskObservation:
        """Task ``idx`` as its files say."""
        name = self.name
        start = self.start_time(idx) if idx in self.claims else None
        if idx in self.exits or (
            # ended between the listing and now (the exit file is written before the
            # process ends): read it rather than call the task lost
            idx in self.pids
            and not task_alive(self.marker("pid", idx))
            and self.marker("exit", idx).exists()
        ):
            return self._finished(idx, start)
        if idx not in self.pids:
            if idx in self.cancelled:
                return TaskObservation(name, idx, TaskPhase.CANCELLED, "CANCELLED")
            # a "started" record without a pid: being started now, or its start was cut
            # short (then the dispatcher starts it again): not running yet either way
            return TaskObservation(name, idx, TaskPhase.QUEUED, "PENDING")
        if task_alive(self.marker("pid", idx)):
            return TaskObservation(name, idx, TaskPhase.RUNNING, "RUNNING", start_time=start)
        if self.marker("exit", idx).exists():
            # it was alive at the first look and ended since: its exit code is there now
            return self._finished(idx, start)
        # the launcher died without writing an exit code (killed, or the machine rebooted)
        if idx in self.cancelled:
            return TaskObservation(name, idx, TaskPhase.CANCELLED, "CANCELLED", start_time=start)
        if idx in self.timeouts:
            return TaskObservation(
                name,
                idx,
                TaskPhase.FAILED,
                "TIMEOUT",
                FailureReason.TIMEOUT,
                None,
                "time limit reached",
                start,
            )
        return TaskObservation(
            name,
            idx,
            TaskPhase.FAILED,
            "LOST",
            FailureReason.LOST,
            None,
            "the task's process ended without recording an exit code",
            start,
        )

    def _finished(self, idx: int, start: float | None) -> TaskObservation:
        name = self.name
        exit_file = self.marker("exit", idx)
        code = int(exit_file.read_text().strip() or "255")
        end = exit_file.stat().st_mtime
        if idx in self.timeouts or self.marker("timeout", idx).exists():
            return TaskObservation(
                name,
                idx,
                TaskPhase.FAILED,
                "TIMEOUT",
                FailureReason.TIMEOUT,
                code,
                "time limit reached",
                start,
                end,
            )
        if idx in self.cancelled or self.marker("cancelled", idx).exists():
            return TaskObservation(
                name, idx, TaskPhase.CANCELLED, "CANCELLED", None, code, None, start, end
            )
        if code == 0:
            return TaskObservation(
                name, idx, TaskPhase.SUCCEEDED, "COMPLETED", None, 0, None, start, end
            )
        return TaskObservation(
            name, idx, TaskPhase.FAILED, "FAILED", FailureReason.ERROR, code, None, start, end
        )
