"""A toy scheduler: a submission runs its tasks in the background on this machine at once, one
after another; observing reads the exit codes the task launcher wrote."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from lxr.schedulers.base import ArrayJob, Driver, ObserveQuery, Snapshot, TaskObservation, TaskPhase
from lxr.schedulers.jobscript import LAUNCHER, job_files

__all__ = ["EchoDriver"]


def _run_all(job_dir: str, indexes: Iterable[int]) -> None:
    Path(job_dir, "logs").mkdir(exist_ok=True)
    runs = "; ".join(
        f'bash "$0/{LAUNCHER}" "$0" {i} >"$0/logs/{i}.out" 2>"$0/logs/{i}.err"' for i in indexes
    )
    subprocess.Popen(["sh", "-c", runs, job_dir], start_new_session=True)


def _observe(job_dir: str, job: str, idx: int) -> TaskObservation:
    exit_file = Path(job_dir, "exit", str(idx))
    if not exit_file.exists():
        return TaskObservation(job, idx, TaskPhase.RUNNING, "RUNNING")
    code = int(exit_file.read_text())
    phase = TaskPhase.SUCCEEDED if code == 0 else TaskPhase.FAILED
    return TaskObservation(job, idx, phase, "DONE", exit_code=code)


def _indexes(job_dir: str) -> list[int] | None:
    meta = Path(job_dir, "echo.json")
    return json.loads(meta.read_text())["indexes"] if meta.exists() else None


class EchoDriver(Driver):
    """Runs every task of a job, in order, in one detached shell."""

    scheduler = "echo"

    async def submit(self, job: ArrayJob) -> str:
        job_dir = self.job_dir(job.tag)
        meta = {
            "greeting": getattr(self.spec.options, "greeting", None),
            "color": getattr(job.resources.section("echo"), "color", None),
            "indexes": [t.array_index for t in job.tasks],
        }
        files = job_files(job, job_dir, {f"{job_dir}/echo.json": json.dumps(meta).encode()})
        await self.transport.write_files(files)
        _run_all(job_dir, meta["indexes"])
        return job.tag

    async def observe(self, query: ObserveQuery) -> Snapshot:
        wanted = {(job, i) for job, indexes in query.jobs.items() for i in indexes}
        tags = {}
        for tag in query.intents:
            indexes = _indexes(self.job_dir(tag))
            if indexes is not None:  # submitted: adopt it
                tags[tag] = tag
                wanted |= {(tag, i) for i in indexes}
        tasks = {(job, i): _observe(self.job_dir(job), job, i) for job, i in wanted}
        return Snapshot(self.cluster, time.time(), tasks, tags)

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        pass  # tasks here are too quick to cancel
