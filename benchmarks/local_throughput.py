"""How fast the local cluster starts queued tasks when slots are free.

One job array of ``true`` tasks is submitted to a local driver (its dispatcher thread, with no
controller cycle in between: starting is not per-cycle bounded); measured is the time from the
submission until every task has an exit code, for a few ``maxParallel`` values. Each start is
recorded first (``started/<i>``), then spawned, and the task's starter claims ``pid/<i>``
before the program runs, as in production.

Run: ``uv run python benchmarks/local_throughput.py`` (writes
benchmarks/RESULTS-local-throughput.md).
"""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import anyio

from lxr.api.resources import ClusterSpec, Resources
from lxr.schedulers.base import ArrayJob, TaskSpec
from lxr.schedulers.local import LocalDriver
from lxr.schedulers.transport import LocalTransport

TASKS = 1000
PARALLEL = (2, 16, 64)
TARGET = 50.0  # task starts per second (issue target)


def measure(max_parallel: int, tmp: Path) -> dict[str, float]:
    staging = tmp / f"p{max_parallel}"
    spec = ClusterSpec(scheduler="local", max_parallel=max_parallel)
    driver = LocalDriver("local", LocalTransport(), str(staging), spec)
    job = ArrayJob(
        tag=f"bench-{max_parallel}",
        experiment="bench",
        experiment_uid="u",
        tasks=[TaskSpec(i, ["true"]) for i in range(1, TASKS + 1)],
        resources=Resources(),
    )
    anyio.run(driver.prepare)
    exits = staging / "jobs" / job.tag / "exit"
    started = time.monotonic()
    anyio.run(driver.submit, job)
    first = None
    while True:
        done = len(os.listdir(exits)) if exits.exists() else 0
        if done and first is None:
            first = time.monotonic() - started
        if done >= TASKS:
            break
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    anyio.run(driver.close)
    return {"seconds": elapsed, "per_second": TASKS / elapsed, "first": first or elapsed}


def main() -> None:
    load_before = os.getloadavg()[0]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for p in PARALLEL:
            rows[p] = measure(p, Path(tmp))
            print(p, {k: round(v, 3) for k, v in rows[p].items()}, flush=True)
    lines = [
        "# Local cluster: task starts per second",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        "`uv run python benchmarks/local_throughput.py` on "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load_before:.1f} at the start (a shared machine), one run each.",
        "",
        f"{TASKS} `true` tasks in one array, submitted to a local driver; the dispatcher thread "
        "starts them as slots free up (no controller cycle involved). Target: "
        f">= {TARGET:.0f} starts/s.",
        "",
        "| maxParallel | all exited (s) | starts/s | first exit (s) | target met |",
        "|---:|---:|---:|---:|:--|",
    ]
    for p, row in rows.items():
        met = "yes" if row["per_second"] >= TARGET else "no"
        lines.append(
            f"| {p} | {row['seconds']:.2f} | {row['per_second']:.0f} | {row['first']:.3f} | {met} |"
        )
    lines.append("")
    Path(__file__).with_name("RESULTS-local-throughput.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
