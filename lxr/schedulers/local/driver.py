"""The local cluster: tasks run as detached processes of this machine.

The local cluster is its own small scheduler, kept in files so it survives a controller
restart (the layout: :mod:`lxr.schedulers.local.tasks`). Submitting writes a job directory and
cancelling writes markers and signals; a :class:`~lxr.schedulers.local.dispatch.Dispatcher` on
a thread of its own starts queued tasks while slots are free (``maxParallel``, default: the CPU
count; each job's ``parallelism`` as a throttle), enforces time limits and kills what ignores
a cancel. Observing only reads the files.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from lxr.api.resources import ClusterSpec
from lxr.paths import make_private_dir
from lxr.schedulers.base import (
    ArrayJob,
    Driver,
    ObserveQuery,
    SchedulerError,
    Snapshot,
    TaskObservation,
)
from lxr.schedulers.jobscript import job_files, render_template
from lxr.schedulers.local.dispatch import KILL_AFTER_SECONDS, STARTER, Dispatcher, signal_task
from lxr.schedulers.local.tasks import JobFiles
from lxr.schedulers.transport import Transport, write_atomic

__all__ = ["KILL_AFTER_SECONDS", "LocalDriver"]


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
        self.dispatcher = Dispatcher(self.root, self.max_parallel, _crash_hook())

    @property
    def root(self) -> Path:
        return Path(self.staging_dir) / "jobs"

    async def prepare(self) -> None:
        make_private_dir(self.root)
        self.dispatcher.start()

    async def submit(self, job: ArrayJob) -> str:
        job_dir = self.job_dir(job.tag)
        meta = {
            "throttle": job.throttle,
            "timeLimitSeconds": job.resources.time_limit_seconds,
            "indexes": [t.array_index for t in job.tasks],
            "submitted": time.time(),
        }
        files = job_files(job, job_dir)
        files[f"{job_dir}/{STARTER}"] = render_template(f"{STARTER}.j2").encode()
        # local.json last: a job directory without it is not a job yet
        files[f"{job_dir}/local.json"] = json.dumps(meta).encode()
        await self.transport.write_files(files, mode=0o600)  # the task table holds env values
        self.dispatcher.start()
        self.dispatcher.kick()
        return job.tag

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        for job_id, index in targets:
            path = self.root / job_id
            if not (path / "local.json").is_file():
                continue
            job = JobFiles.read(path)
            for idx in [index] if index is not None else job.indexes:
                marker = job.marker("cancelled", idx)
                if not marker.exists():
                    write_atomic(marker, f"{time.time()}\n".encode(), 0o600)
                signal_task(job.marker("pid", idx), signal.SIGTERM)
        self.dispatcher.kick()  # SIGKILL after KILL_AFTER_SECONDS is the dispatcher's

    async def observe(self, query: ObserveQuery) -> Snapshot:
        """The tasks of the jobs asked about, as their files say (nothing is started here)."""
        if self.dispatcher.error:
            raise SchedulerError(self.dispatcher.error)
        now = time.time()
        tasks: dict[tuple[str, int], TaskObservation] = {}
        tags: dict[str, str] = {}
        for name in sorted(set(query.jobs) | set(query.intents)):
            path = self.root / name
            if not (path / "local.json").is_file():
                continue
            tags[name] = name
            job = JobFiles.read(path)
            for idx in sorted(query.jobs.get(name) or job.indexes):
                tasks[(name, idx)] = job.observe(idx)
        return Snapshot(self.cluster, now, tasks, tags)

    async def close(self) -> None:
        self.dispatcher.stop()
        await super().close()


def _crash_hook():  # Callable[[str], None] | None
    """Tests kill this process at a named point of a task's start (``LXR_TEST_CRASH_AT``)."""
    point = os.environ.get("LXR_TEST_CRASH_AT", "")
    if not point.startswith("local-"):
        return None

    def crash(at: str) -> None:
        if at == point:
            os.kill(os.getpid(), signal.SIGKILL)

    return crash
