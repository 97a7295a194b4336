"""The store's writes at scale, on their own: the status write of a pass where every unit
changes (100k attempts and 100k work units: every task started, then every task ended),
and ``record_intent`` of one 10k-task array, on SQLite and PostgreSQL side by side.

Each figure is the wall time of the call and the CPU it cost: this process's thread (the
driver and lxr's own code) and, on PostgreSQL, the server process serving the connection
(read from ``/proc``; its figures are in clock ticks, 10 ms). On a machine shared with other
work the wall time is mostly waiting for a core; the CPU seconds say what the write costs.

The patches are what a pass writes when a Slurm array of 10k tasks runs and ends (tasks
start over a minute and end over the next, one observation time for all): the store's
input, built here without a scheduler or a planner.

Run: ``uv run python benchmarks/status_writes.py [-n 100000] [--repeat 5]`` (PostgreSQL from
``LXR_TEST_POSTGRES_URL``, as ``deploy/dev-cluster/env.sh`` sets it; writes
benchmarks/RESULTS-status-writes.md).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_scale import database, intent_of

from lxr.api.phases import (
    AttemptPhase,
    SubmissionEvent,
    WorkUnitPhase,
    submission_transition,
)
from lxr.api.resources import Experiment
from lxr.reconciler.actions import AttemptPatch, UpdateStatus, WorkUnitPatch
from lxr.store import Store

ARRAY = 10_000  # tasks per array (Slurm's MaxArraySize on the dev cluster)
_TICK = os.sysconf("SC_CLK_TCK")


def _server_cpu(pid: int | None) -> float:
    """CPU seconds of a PostgreSQL server process so far (0 when not known)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _backend(store: Store) -> int | None:
    """The server process of the store's pooled connection (PostgreSQL), None on SQLite."""
    if store.is_sqlite:
        return None
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def timed(store: Store, call: Callable[[], Any]) -> dict[str, float]:
    """Wall seconds of ``call``, this thread's CPU and the server's."""
    pid = _backend(store)
    server, cpu, wall = _server_cpu(pid), time.thread_time(), time.perf_counter()
    call()
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.thread_time() - cpu,
        "server": _server_cpu(pid) - server,
    }


def _experiment(name: str, n: int) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "cluster": "local",
                "executable": {"command": ["true"]},
                "sweep": {"grid": {"x": list(range(n))}},
            },
        }
    )


def submitted(store: Store, n: int) -> tuple[str, list[tuple[int, int, int, str]]]:
    """An experiment of ``n`` work units, submitted in arrays of :data:`ARRAY` tasks: its uid
    and each unit's (work unit id, attempt id, array index, job id)."""
    store.apply(_experiment("writes", n))
    (rec,) = store.load_desired("local")
    units = []
    accepted = submission_transition("Intent", SubmissionEvent.ACCEPTED)
    for start in range(0, n, ARRAY):
        chunk = rec.work_units[start : start + ARRAY]
        entries = [(wu.id, 1, i, None) for i, wu in enumerate(chunk)]
        sid = store.record_intent(
            rec.uid,
            "local",
            f"writes-{start}",
            entries,
            phase=WorkUnitPhase.PENDING,
            attempt_phase=AttemptPhase.PENDING,
        )
        store.mark_submitted(sid, str(1000 + start // ARRAY), accepted)
    (rec,) = store.load_desired("local")
    for wu in rec.work_units:
        assert wu.active is not None and wu.active.job_id is not None
        units.append((wu.id, wu.active.id, wu.active.array_index, wu.active.job_id))
    return rec.uid, units


def patches(
    uid: str, units: list[tuple[int, int, int, str]], t0: float, *, ended: bool
) -> UpdateStatus:
    """Every task running (started over a minute) and every unit Running, or (``ended``)
    every task ended with exit code 0 (over the next minute) and every unit Succeeded."""
    seen = time.time()
    if ended:
        task: dict[str, Any] = {"phase": AttemptPhase.SUCCEEDED.value, "state": "COMPLETED"}
        outcome: dict[str, Any] = {"reason": "Completed", "exit_code": 0}
        unit: dict[str, Any] = {
            "phase": WorkUnitPhase.SUCCEEDED.value,
            "clear_active": True,
            **outcome,
        }
        task |= {**outcome, "final": True}
    else:
        task = {"phase": AttemptPhase.RUNNING.value, "state": "RUNNING"}
        unit = {"phase": WorkUnitPhase.RUNNING.value}
    attempts = tuple(
        AttemptPatch(
            id=aid,
            job_id=job,
            start_time=t0 + index % 60,
            end_time=t0 + 60 + index % 60 if ended else None,
            last_seen=seen,
            **task,
        )
        for _, aid, index, job in units
    )
    work_units = tuple(
        WorkUnitPatch(id=wid, index=i, **unit) for i, (wid, _, _, _) in enumerate(units)
    )
    return UpdateStatus(uid, work_units, attempts)


def status_writes(backend: str, n: int, workdir: Path) -> dict[str, dict[str, float]]:
    """The two status writes of ``n`` units on a fresh database."""
    out: dict[str, dict[str, float]] = {}
    with database(backend, workdir) as url:
        store = Store(url)
        uid, units = submitted(store, n)
        t0 = time.time()
        for name, ended in (("started", False), ("finish", True)):
            upd = patches(uid, units, t0, ended=ended)
            out[name] = timed(store, functools.partial(store.apply_update, upd, "local"))
        store.close()
    return out


def record_intent(backend: str, n: int, workdir: Path) -> dict[str, float]:
    """``record_intent`` of one ``n``-task array (a fresh experiment)."""
    with database(backend, workdir) as url:
        store = Store(url)
        took = timed(store, intent_of(store, n))
        store.close()
    return took


def _fmt(m: dict[str, float]) -> str:
    return f"{m['wall']:.3f} s wall, {m['cpu']:.3f} + {m['server']:.2f} s CPU"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="record_intent runs per backend")
    opts = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("LXR_TEST_POSTGRES_URL") else [])
    load = os.getloadavg()
    when = datetime.datetime.now(datetime.timezone.utc)
    writes: dict[str, dict[str, dict[str, float]]] = {}
    intents: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            writes[backend] = status_writes(backend, opts.n, Path(tmp))
            print(backend, {k: _fmt(v) for k, v in writes[backend].items()}, flush=True)
        for _ in range(opts.repeat):  # in turn, so both see the same load
            for backend in backends:
                intents[backend].append(record_intent(backend, 10_000, Path(tmp)))
    lines = [
        "# Status writes and record_intent at scale",
        "",
        f"Run {when:%Y-%m-%d %H:%M} UTC by `uv run python benchmarks/status_writes.py` on "
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after. CPU is this "
        "process's thread + the PostgreSQL server process (10 ms ticks); on a shared machine "
        "the wall time is mostly waiting for a core.",
        "",
        f"Status write of {opts.n:,} work units and their attempts (one `apply_update`):",
        "",
        "| backend | every task started | every task ended |",
        "|---|---|---|",
    ]
    for backend, row in writes.items():
        lines.append(f"| {backend} | {_fmt(row['started'])} | {_fmt(row['finish'])} |")
    lines += [
        "",
        f"`record_intent` of one 10,000-task array, {opts.repeat} runs each (in turn):",
        "",
    ]
    walls = {b: [m["wall"] for m in runs] for b, runs in intents.items()}
    for backend, runs in intents.items():
        lines.append(
            f"- {backend}: median {statistics.median(walls[backend]):.3f} s wall (runs "
            + ", ".join(f"{w:.3f}" for w in walls[backend])
            + f"); median CPU {statistics.median(m['cpu'] + m['server'] for m in runs):.3f} s"
        )
    if "postgresql" in walls:
        pairs = [p / s for p, s in zip(walls["postgresql"], walls["sqlite"], strict=True)]
        lines.append(
            "- PostgreSQL / SQLite, pair by pair: "
            + ", ".join(f"{r:.2f}x" for r in pairs)
            + f" (median {statistics.median(pairs):.2f}x, target: within 2x)"
        )
    lines.append("")
    Path(__file__).with_name("RESULTS-status-writes.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
