"""The local cluster: tasks run as detached processes of this machine.

The local cluster is its own small scheduler, kept in files so it survives a controller
restart: each job is a directory under ``<stagingDir>/jobs/<tag>/``; a task is *queued* until
it has a ``pid/<index>`` file, *running* while that process lives, and *finished* once its
launcher wrote ``exit/<index>``. Observing the cluster also starts queued tasks while slots are
free (``maxParallel``, default: the CPU count; each job's ``parallelism`` as a throttle).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from lxr.api.resources import ClusterSpec, FailureReason
from lxr.paths import make_private_dir
from lxr.schedulers.base import (
    ArrayJob,
    Driver,
    ObserveQuery,
    Snapshot,
    TaskObservation,
    TaskPhase,
)
from lxr.schedulers.jobscript import LAUNCHER, job_files
from lxr.schedulers.taskenv import task_environment
from lxr.schedulers.transport import Transport, write_atomic

__all__ = ["KILL_AFTER_SECONDS", "LocalDriver"]

#: a cancelled task still alive this long after SIGTERM gets SIGKILL
KILL_AFTER_SECONDS = 10.0


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19]


class LocalDriver(Driver):
    """Runs tasks on this machine."""

    scheduler = "local"

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        spec: ClusterSpec | None = None,
    ) -> None:
        super().__init__(cluster, transport, staging_dir, spec)
        self.max_parallel = self.spec.max_parallel or os.cpu_count() or 1
        self._children: set[int] = set()

    @property
    def root(self) -> Path:
        return Path(self.staging_dir) / "jobs"

    async def prepare(self) -> None:
        make_private_dir(self.root)

    async def submit(self, job: ArrayJob) -> str:
        job_dir = self.job_dir(job.tag)
        meta = {
            "throttle": job.throttle,
            "timeLimitSeconds": job.resources.time_limit_seconds,
            "indexes": [t.array_index for t in job.tasks],
            "submitted": time.time(),
        }
        files = job_files(job, job_dir)
        files[f"{job_dir}/local.json"] = json.dumps(meta).encode()
        await self.transport.write_files(files, mode=0o600)  # the task table holds env values
        return job.tag

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        for job_id, index in targets:
            job = self.root / job_id
            if not job.is_dir():
                continue
            indexes = [index] if index is not None else self._meta(job)["indexes"]
            for idx in indexes:
                marker = job / "cancelled" / str(idx)
                if not marker.exists():
                    write_atomic(marker, f"{time.time()}\n".encode(), 0o600)
                self._signal(job, idx, signal.SIGTERM)

    async def observe(self, query: ObserveQuery) -> Snapshot:
        now = time.time()
        self._reap()
        tasks: dict[tuple[str, int], TaskObservation] = {}
        queued: list[tuple[float, Path, int, int | None]] = []
        running = 0
        running_per_job: dict[str, int] = {}
        tags: dict[str, str] = {}
        wanted = set(query.jobs) | set(query.intents)
        for job in sorted(self.root.glob("*/local.json")):
            job = job.parent
            if (job / "done").exists() and job.name not in wanted:
                continue
            meta = self._meta(job)
            tags[job.name] = job.name
            all_done = True
            for idx in meta["indexes"]:
                obs = self._task(job, idx, meta, now)
                tasks[(job.name, idx)] = obs
                if obs.phase is TaskPhase.RUNNING:
                    running += 1
                    running_per_job[job.name] = running_per_job.get(job.name, 0) + 1
                elif obs.phase is TaskPhase.QUEUED:
                    queued.append((meta["submitted"], job, idx, meta.get("throttle")))
                all_done &= obs.phase.finished
            if all_done:
                (job / "done").touch(mode=0o600)

        # schedule: oldest job first, lowest index first, within both limits
        for _, job, idx, throttle in sorted(queued, key=lambda q: (q[0], q[1].name, q[2])):
            if running >= self.max_parallel:
                break
            if throttle is not None and running_per_job.get(job.name, 0) >= throttle:
                continue
            start = self._start(job, idx)
            tasks[(job.name, idx)] = TaskObservation(
                job.name, idx, TaskPhase.RUNNING, "RUNNING", start_time=start
            )
            running += 1
            running_per_job[job.name] = running_per_job.get(job.name, 0) + 1
        return Snapshot(self.cluster, now, tasks, tags)

    # ------------------------------------------------------------------ task files

    @staticmethod
    def _meta(job: Path) -> dict:
        return json.loads((job / "local.json").read_text())

    def _task(self, job: Path, idx: int, meta: dict, now: float) -> TaskObservation:
        name = job.name
        exit_file = job / "exit" / str(idx)
        cancelled = job / "cancelled" / str(idx)
        timed_out = job / "timeout" / str(idx)
        pid_file = job / "pid" / str(idx)
        start = _float(job / "started" / str(idx))
        if exit_file.exists():
            code = int(exit_file.read_text().strip() or "255")
            end = exit_file.stat().st_mtime
            if timed_out.exists():
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
            if cancelled.exists():
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
        if not pid_file.exists():
            if cancelled.exists():
                return TaskObservation(name, idx, TaskPhase.CANCELLED, "CANCELLED")
            return TaskObservation(name, idx, TaskPhase.QUEUED, "PENDING")
        if self._alive(job, idx):
            limit = meta.get("timeLimitSeconds")
            if limit and start and now - start > limit and not timed_out.exists():
                write_atomic(timed_out, b"", 0o600)
                self._signal(job, idx, signal.SIGTERM)
            for marker in (cancelled, timed_out):
                if marker.exists() and now - marker.stat().st_mtime > KILL_AFTER_SECONDS:
                    self._signal(job, idx, signal.SIGKILL)
            return TaskObservation(name, idx, TaskPhase.RUNNING, "RUNNING", start_time=start)
        # the launcher died without writing an exit code (killed, or the machine rebooted)
        if cancelled.exists():
            return TaskObservation(name, idx, TaskPhase.CANCELLED, "CANCELLED", start_time=start)
        if timed_out.exists():
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

    def _start(self, job: Path, idx: int) -> float:
        logs = job / "logs"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        # posix_spawn, not Popen: the task must outlive this process (its own session, so it
        # is also killable as a group), and a Popen object would outlive nothing but warnings
        pid = os.posix_spawnp(
            "bash",
            ["bash", str(job / LAUNCHER), str(job), str(idx)],
            task_environment(os.environ),
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(logs / f"{idx}.out"), append, 0o600),
                (os.POSIX_SPAWN_OPEN, 2, str(logs / f"{idx}.err"), append, 0o600),
            ],
        )
        self._children.add(pid)
        write_atomic(job / "started" / str(idx), f"{now}\n".encode(), 0o600)
        write_atomic(job / "pid" / str(idx), f"{pid} {_proc_start(pid) or ''}\n".encode(), 0o600)
        return now

    def _alive(self, job: Path, idx: int) -> bool:
        try:
            pid_s, _, started = (job / "pid" / str(idx)).read_text().strip().partition(" ")
        except OSError:
            return False
        current = _proc_start(int(pid_s))
        return current is not None and (not started or current == started)

    def _signal(self, job: Path, idx: int, sig: signal.Signals) -> None:
        if not self._alive(job, idx):
            return
        pid = int((job / "pid" / str(idx)).read_text().split()[0])
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        """Collect exit statuses of tasks this process started (no zombies pile up); what
        they exited with is read from their exit files, written by the launcher."""
        for pid in list(self._children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._children.discard(pid)


def _float(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None
