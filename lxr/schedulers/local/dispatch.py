"""The local cluster's scheduler: starts queued tasks while slots are free, enforces time limits
and ends cancelled tasks that ignore SIGTERM. It runs on a thread of its own beside the
controller (as slurmctld runs beside it on a cluster), so observing the cluster never starts or
kills anything, and a task that ends frees its slot at once, not one controller cycle later.

Starting a task records first and spawns second: ``started/<i>`` is written before the
process exists, and the process (``local-start.sh``) claims ``pid/<i>`` with one ``link(2)``
before the program runs. A record that cannot be written (a full disk) means "not started":
nothing runs, and :attr:`Dispatcher.error` names the path and errno, which fails the cluster's
cycle until it clears. Two starters racing for one task (a controller killed right after a
spawn, then restarted) cannot both run it: only one link succeeds.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from lxr.schedulers.local.tasks import JobFiles, read_pid, task_alive
from lxr.schedulers.taskenv import task_environment
from lxr.schedulers.transport import write_atomic

__all__ = ["KILL_AFTER_SECONDS", "STARTER", "Dispatcher"]

log = logging.getLogger("lxr.local")

#: a cancelled task still alive this long after SIGTERM gets SIGKILL
KILL_AFTER_SECONDS = 10.0
#: the task starter each job directory holds
STARTER = "local-start.sh"
#: the starter's exit code when it could not claim its task (lost the race, or a full disk)
_NOT_CLAIMED = 75
#: how long after a start that could not be recorded the dispatcher tries again
_RETRY_SECONDS = 2.0
#: a full rescan at least this often (tasks started by an earlier controller end unseen)
_RESCAN_SECONDS = 1.0


class Dispatcher:
    """Starts, times out and kills the tasks of one local cluster (its own thread)."""

    def __init__(
        self,
        root: Path,
        max_parallel: int,
        crash_hook: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self.max_parallel = max_parallel
        self.crash_hook = crash_hook
        #: why tasks cannot be started right now (path and errno), None when they can
        self.error: str | None = None
        #: tasks this dispatcher started
        self.starts = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._meta: dict[str, dict] = {}
        self._children: dict[int, tuple[str, int]] = {}  # pid -> task, spawned here
        # task -> a pidfd that becomes readable when it ends (None where there are none)
        self._running: dict[tuple[str, int], int | None] = {}
        # queued tasks per job, oldest job first, lowest index first (from the last scan)
        self._queues: list[tuple[str, deque[int]]] = []
        self._throttle: dict[str, int | None] = {}
        self._retry_at = 0.0

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Run on a thread of its own (again, if it was stopped)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="lxr-local", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """Something changed on disk (a submission, a cancel): rescan now."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"k")

    def stop(self) -> None:
        """Stop the thread (running tasks go on: they are detached)."""
        self._stopping = True
        self.kick()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for fd in self._running.values():
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._running.clear()

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        rescan = True
        last_scan = 0.0
        while not self._stopping:
            timeout: float | None = None
            try:
                self._reap()
                now = time.time()
                if rescan or now - last_scan >= _RESCAN_SECONDS:
                    timeout = self._scan(now)
                    last_scan = now
                self._fill(now)
            except Exception as exc:  # the thread must not die: the cycle fails
                self.error = _describe(exc)
                log.warning("local cluster: %s", self.error)
                self._retry_at = time.time() + _RETRY_SECONDS
                timeout = _RETRY_SECONDS
            if self._running or any(q for _, q in self._queues) or self.error:
                timeout = min(timeout or _RESCAN_SECONDS, _RESCAN_SECONDS)
            if None in self._running.values():  # no pidfds here: poll for ends
                timeout = min(timeout or 0.05, 0.05)
            rescan = self._wait(timeout)

    def _wait(self, timeout: float | None) -> bool:
        """Sleep until a task ends, a kick, or ``timeout``; True when kicked."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        by_fd = {fd: task for task, fd in self._running.items() if fd is not None}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        events = poller.poll(None if timeout is None else max(1, int(timeout * 1000)))
        kicked = False
        for fd, _ in events:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
                kicked = True
            elif fd in by_fd:
                os.close(fd)
                del self._running[by_fd[fd]]
        return kicked

    def _reap(self) -> None:
        """Collect the exit status of tasks started here; a starter that could not claim its
        task (no ``pid`` file: the disk is full) is an error, not a task to spawn again."""
        for pid, (job, idx) in list(self._children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if not done:
                continue
            del self._children[pid]
            fd = self._running.pop((job, idx), None)
            if fd is not None:
                os.close(fd)
            pid_file = self.root / job / "pid" / str(idx)
            if os.waitstatus_to_exitcode(status) == _NOT_CLAIMED and read_pid(pid_file) is None:
                self.error = (
                    f"task {idx} of job {job} could not record its start in {pid_file} "
                    "(the disk may be full); not started"
                )
                self._retry_at = time.time() + _RETRY_SECONDS

    def _scan(self, now: float) -> float | None:
        """Read every unfinished job: what runs (time limits, kills due), what waits."""
        queues: list[tuple[float, str, deque[int]]] = []
        deadline: float | None = None
        running: set[tuple[str, int]] = set()
        for meta_file in sorted(self.root.glob("*/local.json")):
            path = meta_file.parent
            if (path / "done").exists():
                continue
            name = path.name
            try:
                job = JobFiles.read(path, self._meta.get(name))
            except FileNotFoundError:
                continue  # removed while being read
            self._meta[name] = job.meta
            self._throttle[name] = job.meta.get("throttle")
            for idx in job.running():
                if not task_alive(job.marker("pid", idx)):
                    continue
                running.add((name, idx))
                due = self._enforce(job, idx, now)
                if due is not None and (deadline is None or due < deadline):
                    deadline = due
            pending = deque(i for i in job.queued() if (name, i) not in self._running)
            if pending:
                queues.append((job.meta["submitted"], name, pending))
            elif not any(t[0] == name for t in running) and not any(
                t[0] == name for t in self._running
            ):
                (path / "done").touch(mode=0o600)  # every task finished: skipped from now on
        # tasks that run without a watch (started by an earlier controller): watch them too;
        # ones that ended unseen (no pidfds here, not started by this process) free their slot
        for task in running - set(self._running):
            self._watch(*task)
        for task in set(self._running) - running:
            if task not in self._children.values() and self._running[task] is None:
                del self._running[task]
        queues.sort(key=lambda q: (q[0], q[1]))
        self._queues = [(name, q) for _, name, q in queues]
        return None if deadline is None else max(0.05, deadline - now)

    def _enforce(self, job: JobFiles, idx: int, now: float) -> float | None:
        """Time limit and kill escalation of one running task; when to look again."""
        start = job.start_time(idx)
        limit = job.meta.get("timeLimitSeconds")
        timed_out = job.marker("timeout", idx)
        due: float | None = None
        if limit and start:
            if now - start > limit and not timed_out.exists():
                write_atomic(timed_out, b"", 0o600)
                signal_task(job.marker("pid", idx), signal.SIGTERM)
            else:
                due = start + limit
        for marker in (job.marker("cancelled", idx), timed_out):
            if marker.exists():
                since = marker.stat().st_mtime
                if now - since > KILL_AFTER_SECONDS:
                    signal_task(job.marker("pid", idx), signal.SIGKILL)
                else:
                    due = min(due or since + KILL_AFTER_SECONDS, since + KILL_AFTER_SECONDS)
        return due

    def _fill(self, now: float) -> None:
        """Start queued tasks, oldest job first and lowest index first, within both limits
        (``maxParallel`` for the cluster, each job's ``parallelism``)."""
        if now < self._retry_at:
            return
        self.error = None
        per_job: dict[str, int] = {}
        for name, _ in self._running:
            per_job[name] = per_job.get(name, 0) + 1
        for name, queue in self._queues:
            throttle = self._throttle.get(name)
            path = self.root / name
            while queue and len(self._running) < self.max_parallel:
                if throttle is not None and per_job.get(name, 0) >= throttle:
                    break
                idx = queue.popleft()
                if (path / "cancelled" / str(idx)).exists() or (path / "pid" / str(idx)).exists():
                    continue  # cancelled meanwhile, or started by another starter
                self._start(path, idx)
                per_job[name] = per_job.get(name, 0) + 1
            if len(self._running) >= self.max_parallel:
                break

    def _start(self, path: Path, idx: int) -> None:
        """Record, then spawn. An OSError from the record means the task was not started."""
        write_atomic(path / "started" / str(idx), f"{time.time()}\n".encode(), 0o600)
        if self.crash_hook:
            self.crash_hook("local-recorded")
        logs = path / "logs"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        # posix_spawn, not Popen: the task must outlive this process (its own session, so it
        # is also killable as a group), and a Popen object would outlive nothing but warnings
        pid = os.posix_spawnp(
            "bash",
            ["bash", str(path / STARTER), str(path), str(idx)],
            task_environment(os.environ),
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(logs / f"{idx}.out"), append, 0o600),
                (os.POSIX_SPAWN_OPEN, 2, str(logs / f"{idx}.err"), append, 0o600),
            ],
        )
        self._children[pid] = (path.name, idx)
        self._running[(path.name, idx)] = _pidfd(pid)
        self.starts += 1
        if self.crash_hook:
            self.crash_hook("local-spawned")

    def _watch(self, name: str, idx: int) -> None:
        found = read_pid(self.root / name / "pid" / str(idx))
        if found is None:
            return
        fd = _pidfd(found[0])
        # opened, then checked: the pid cannot be reused for another process meanwhile
        if task_alive(self.root / name / "pid" / str(idx)):
            self._running[(name, idx)] = fd
        elif fd is not None:
            os.close(fd)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` ends (Linux >= 5.3); None where there
    is none (then the dispatcher polls)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def signal_task(pid_file: Path, sig: signal.Signals) -> None:
    """Signal the task's process group, if the task still runs."""
    found = read_pid(pid_file)
    if found is None or not task_alive(pid_file):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(found[0], sig)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" {exc.filename}:" if exc.filename else ""
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"cannot start tasks:{where} [Errno {exc.errno} {name}] {exc.strerror}"
    return f"cannot start tasks: {type(exc).__name__}: {exc}"
