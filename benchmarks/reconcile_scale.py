"""How a reconcile pass scales with the number of work units (1k, 10k, 100k), side by side.

A scheduler stand-in accepts job arrays and reports their tasks as it is told (no processes),
so what is measured is lxr's own cost: the store, the planner and the actor. Per size:

- apply:   writing the experiment and its work units
- submit:  the first pass (records intents, "submits" arrays of <= 10k tasks)
- running: the pass that sees every task start (a status write per work unit)
- steady:  a pass where nothing changed (every task still running)
- finish:  a pass where every task has succeeded (a status write per work unit)

Run: ``uv run python benchmarks/reconcile_scale.py`` (writes benchmarks/RESULTS-reconcile-scale.md).
"""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from lxr.api.resources import Cluster, ClusterSpec, Experiment, ObjectMeta
from lxr.reconciler.controller import Controller
from lxr.schedulers.base import (
    ArrayJob,
    Driver,
    ObserveQuery,
    Snapshot,
    TaskObservation,
    TaskPhase,
)
from lxr.schedulers.transport import LocalTransport
from lxr.store import Store

SIZES = (1_000, 10_000, 100_000)


class StandInDriver(Driver):
    """Remembers submitted arrays; reports every task with the phase it is set to."""

    scheduler = "slurm"

    def __init__(self) -> None:
        super().__init__("bench", LocalTransport(), "/nonexistent")
        self.jobs: dict[str, list[int]] = {}
        self.phase = TaskPhase.RUNNING
        self.counter = 0

    async def submit(self, job: ArrayJob) -> str:
        self.counter += 1
        job_id = str(self.counter)
        self.jobs[job_id] = [t.array_index for t in job.tasks]
        return job_id

    async def observe(self, query: ObserveQuery) -> Snapshot:
        state = "RUNNING" if self.phase is TaskPhase.RUNNING else "COMPLETED"
        tasks = {
            (job, i): TaskObservation(job, i, self.phase, state, exit_code=0)
            for job, indexes in self.jobs.items()
            for i in indexes
        }
        return Snapshot(self.cluster, time.time(), tasks, {})

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        return None


def measure(n: int, workdir: Path) -> dict[str, float]:
    store = Store(f"sqlite:///{workdir / f'bench-{n}.db'}")
    store.apply(Cluster(metadata=ObjectMeta(name="bench"), spec=ClusterSpec(scheduler="slurm")))
    exp = Experiment.model_validate(
        {
            "metadata": {"name": f"scale-{n}"},
            "spec": {
                "cluster": "bench",
                "executable": {"command": ["train"]},
                "sweep": {"grid": {"x": list(range(n))}},
            },
        }
    )
    out: dict[str, float] = {}
    t = time.perf_counter()
    store.apply(exp)
    out["apply"] = time.perf_counter() - t

    ctl = Controller(store)
    driver = StandInDriver()
    ctl.drivers["bench"] = (driver, store.get_cluster("bench").spec)

    def one_pass() -> float:
        start = time.perf_counter()
        anyio.run(ctl.reconcile, "bench")
        return time.perf_counter() - start

    out["submit"] = one_pass()
    assert sum(len(v) for v in driver.jobs.values()) == n
    out["running"] = one_pass()
    out["steady"] = one_pass()
    driver.phase = TaskPhase.SUCCEEDED
    out["finish"] = one_pass()
    phase = store.get_experiment(f"scale-{n}").status.phase.value
    assert phase == "Succeeded", phase
    store.close()
    return out


def main() -> None:
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            rows[n] = measure(n, Path(tmp))
            print(n, {k: round(v, 3) for k, v in rows[n].items()}, flush=True)
    cols = ("apply", "submit", "running", "steady", "finish")
    lines = [
        "# Reconcile pass cost by number of work units",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        "`uv run python benchmarks/reconcile_scale.py` on "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        "SQLite, a scheduler stand-in (no processes), one run per size.",
        "",
        "| work units | " + " | ".join(f"{c} (s)" for c in cols) + " | steady per 1k units (ms) |",
        "|---:|" + "---:|" * (len(cols) + 1),
    ]
    for n, row in rows.items():
        per_k = row["steady"] / (n / 1000) * 1000
        lines.append(
            f"| {n:,} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + f" | {per_k:.1f} |"
        )
    base = rows[SIZES[0]]
    big = rows[SIZES[-1]]
    lines += [
        "",
        f"Ratio {SIZES[-1]:,} / {SIZES[0]:,} work units: "
        + ", ".join(f"{c} {big[c] / base[c]:.0f}x" for c in cols)
        + f" (for {SIZES[-1] // SIZES[0]}x the work units).",
        "",
    ]
    Path(__file__).with_name("RESULTS-reconcile-scale.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
