"""How a reconcile pass scales with the number of work units (1k, 10k, 100k), on SQLite and
PostgreSQL, side by side.

A Slurm stand-in accepts job arrays and reports their tasks as it is told (no processes): its
``squeue`` prints one line per task as Slurm does, anew on every call, and lxr's Slurm driver
parses it as it parses a real one. Printing that text is the scheduler's time, measured apart
and left out of ``lxr's own``; parsing it is lxr's. Per size:

- apply:    writing the experiment and its work units
- submit:   the first pass (records intents, "submits" arrays of <= 10k tasks)
- started:  the pass that sees every task start (every work unit changes)
- steady:   a pass where nothing changed (every task still running), the median of 5
- one line: a pass where squeue prints one line differently from the pass before (one running
            task's restart count goes up), the median of 3
- finish:   a pass where every task has succeeded (every work unit changes)
- rss:      the controller process's peak resident memory (each size runs in its own process;
            the experiment is applied by another one, ``apply`` its whole process)

Also ``record_intent`` of one 10k-task array on each backend, and the cycle of a controller
with 10k tasks in flight (the ``steady`` pass at 10k).

Run: ``uv run python benchmarks/reconcile_scale.py`` (PostgreSQL from
``LXR_TEST_POSTGRES_URL``, as ``deploy/dev-cluster/env.sh`` sets it; writes
benchmarks/RESULTS-reconcile-scale.md).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import anyio

from lxr.api.phases import AttemptPhase, WorkUnitPhase
from lxr.api.resources import Cluster, ClusterSpec, Experiment, ObjectMeta
from lxr.reconciler.controller import Controller
from lxr.schedulers.base import ArrayJob
from lxr.schedulers.slurm.driver import SlurmDriver
from lxr.schedulers.transport import CommandResult, LocalTransport
from lxr.store import Store

SIZES = (1_000, 10_000, 100_000)
_APPLY = (
    "import sys; from lxr.api.resources import Experiment; from lxr.store import Store; "
    "Store().apply(Experiment.model_validate_json(sys.stdin.read()))"
)
PASSES = ("submit", "started", "steady", "one_line", "finish")


#: what ``squeue -O SQUEUE_FORMAT`` prints for one array task (JobArrayID, ArrayJobID,
#: ArrayTaskID, JobID, State, Reason, RestartCnt, exit_code, SubmitTime, EligibleTime,
#: StartTime, EndTime, TimeLimit, Partition, Name, Comment), as captured from Slurm 22.05 in
#: tests/fixtures/slurm/
_SQUEUE_LINE = (
    "{job}_{index}|{job}|{index}|{task_id}|{state}|None|{restarts}|0|{submit}|{start}|{start}|{end}|"
    "UNLIMITED|batch|lxr-{tag}|lxr:{experiment}:{tag}"
)


def _slurm_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


class StandInSlurm(LocalTransport):
    """A Slurm that runs nothing: answers the driver's setup commands and ``squeue``, which
    prints every task of the arrays submitted with the state it is set to, anew on every call
    (its time is the scheduler's, counted apart in ``seconds``)."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, tuple[str, str, list[int]]] = {}  # job id -> tag, experiment, indexes
        self.state = "RUNNING"
        self.restarts: dict[tuple[str, int], int] = {}  # (job id, index) -> RestartCnt, if not 0
        self.seconds = 0.0  # time spent printing squeue's output (the scheduler's, not lxr's)
        self.start = time.time()

    async def _run(self, argv: tuple[str, ...], input: bytes | None) -> CommandResult:
        if argv[0] == "squeue":
            started = time.perf_counter()
            out = self.squeue()
            self.seconds += time.perf_counter() - started
        elif argv[:2] == ("scontrol", "show"):
            out = "MaxArraySize = 10000\nAccountingStorageType = accounting_storage/slurmdbd\n"
        elif argv[0] == "sh":
            out = "/home/bench +0000\n"
        else:
            raise AssertionError(f"the stand-in does not run {argv}")
        return CommandResult(argv, 0, out, "", 0.0)

    def squeue(self) -> str:
        """squeue's output for the arrays and state as they are now, printed anew."""
        finished = self.state != "RUNNING"
        submit = _slurm_time(self.start)
        # tasks start over a minute, and (finished) end over the next
        starts = [_slurm_time(self.start + s) for s in range(60)]
        ends = [_slurm_time(self.start + 60 + s) if finished else "NONE" for s in range(60)]
        lines = []
        restarts = self.restarts
        task_id = 1_000_000
        for job, (tag, experiment, indexes) in self.jobs.items():
            for index in indexes:
                task_id += 1
                lines.append(
                    _SQUEUE_LINE.format(
                        job=job,
                        index=index,
                        task_id=task_id,
                        state=self.state,
                        restarts=restarts.get((job, index), 0) if restarts else 0,
                        submit=submit,
                        start=starts[index % 60],
                        end=ends[index % 60],
                        tag=tag,
                        experiment=experiment,
                    )
                )
        return "\n".join(lines) + "\n"


class StandInDriver(SlurmDriver):
    """lxr's Slurm driver over :class:`StandInSlurm`: its submissions are remembered (no
    files, no sbatch), its observations are the driver's own parse of squeue's output."""

    def __init__(self) -> None:
        self.slurm = StandInSlurm()
        super().__init__("bench", self.slurm, "/nonexistent")
        self.counter = 0

    @property
    def jobs(self) -> dict[str, tuple[str, str, list[int]]]:
        return self.slurm.jobs

    @property
    def observe_seconds(self) -> float:
        """Time spent in the scheduler stand-in (left out of lxr's own)."""
        return self.slurm.seconds

    def restart(self, job_id: str, index: int) -> None:
        """One more restart of one task, in what squeue prints from now on."""
        key = (job_id, index)
        self.slurm.restarts[key] = self.slurm.restarts.get(key, 0) + 1

    def set_state(self, state: str) -> None:
        """What squeue says of every task from now on (RUNNING, COMPLETED)."""
        self.slurm.state = state

    async def submit(self, job: ArrayJob) -> str:
        self.counter += 1
        job_id = str(self.counter)
        indexes = [t.array_index for t in job.tasks]
        self.jobs[job_id] = (job.tag, job.experiment, indexes)
        return job_id

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        return None


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file, or a PostgreSQL schema of its own (dropped after)."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{secrets.token_hex(4)}.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ["LXR_TEST_POSTGRES_URL"]
    schema = f"bench_{secrets.token_hex(4)}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def measure(backend: str, n: int, workdir: Path) -> dict[str, float]:
    """Every pass at ``n`` work units: seconds in all, and lxr's own (without observe)."""
    out: dict[str, float] = {}
    with database(backend, workdir) as url:
        store = Store(url)
        store.apply(Cluster(metadata=ObjectMeta(name="bench"), spec=ClusterSpec(scheduler="slurm")))
        exp = Experiment.model_validate(
            {
                "metadata": {"name": f"scale-{n}"},
                "spec": {
                    "cluster": "bench",
                    "executable": {"command": ["true"]},
                    "sweep": {"grid": {"x": list(range(n))}},
                },
            }
        )
        # applied by another process, as `lxr apply` does: the peak RSS below is the
        # controller's alone
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", _APPLY],
            input=exp.model_dump_json(by_alias=True),
            text=True,
            env={**os.environ, "LXR_DATABASE_URL": url},
            check=True,
        )
        out["apply"] = time.perf_counter() - t

        ctl = Controller(store)
        driver = StandInDriver()
        ctl.drivers["bench"] = (driver, store.get_cluster("bench").spec)
        anyio.run(ctl.acquire_lease)

        def one_pass() -> tuple[float, float]:
            before = driver.observe_seconds
            start = time.perf_counter()
            anyio.run(ctl.reconcile, "bench")
            took = time.perf_counter() - start
            return took, took - (driver.observe_seconds - before)

        out["submit"], out["submit_own"] = one_pass()
        assert sum(len(v[2]) for v in driver.jobs.values()) == n
        # the first observation of the new jobs (the cache took the new attempts in from what
        # the submission wrote: nothing is read back)
        out["reload"], out["reload_own"] = one_pass()
        out["started"], out["started_own"] = out["reload"], out["reload_own"]
        steady = [one_pass() for _ in range(5)]
        out["steady"] = statistics.median(s[0] for s in steady)
        out["steady_own"] = statistics.median(s[1] for s in steady)
        one_line = []
        for _ in range(3):
            driver.restart(next(iter(driver.jobs)), 0)
            one_line.append(one_pass())
        out["one_line"] = statistics.median(s[0] for s in one_line)
        out["one_line_own"] = statistics.median(s[1] for s in one_line)
        driver.set_state("COMPLETED")
        out["finish"], out["finish_own"] = one_pass()
        phase = store.get_experiment(f"scale-{n}").status.phase.value
        assert phase == "Succeeded", phase
        out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        store.close()
    return out


def intent_of(store: Store, n: int) -> Callable[[], object]:
    """A fresh experiment of ``n`` work units applied to ``store``, and the call that records
    the intent of one ``n``-task array for it (to be timed)."""
    store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": "intent"},
                "spec": {
                    "cluster": "local",
                    "executable": {"command": ["true"]},
                    "sweep": {"grid": {"x": list(range(n))}},
                },
            }
        )
    )
    (rec,) = store.load_desired("local")
    entries = [(wu.id, 1, i + 1, None) for i, wu in enumerate(rec.work_units)]
    return functools.partial(
        store.record_intent,
        rec.uid,
        "local",
        "tag-1",
        entries,
        phase=WorkUnitPhase.PENDING,
        attempt_phase=AttemptPhase.PENDING,
    )


def record_intent_seconds(backend: str, n: int, workdir: Path) -> float:
    """``record_intent`` of one ``n``-task array (a fresh experiment)."""
    with database(backend, workdir) as url:
        store = Store(url)
        record = intent_of(store, n)
        t = time.perf_counter()
        record()
        took = time.perf_counter() - t
        store.close()
    return took


def _child(args: list[str]) -> None:
    what, backend, n = args[0], args[1], int(args[2])
    with tempfile.TemporaryDirectory() as tmp:
        if what == "pass":
            print(json.dumps(measure(backend, n, Path(tmp))))
        else:
            print(json.dumps({"record_intent": record_intent_seconds(backend, n, Path(tmp))}))


def _run(*args: str) -> dict[str, float]:
    res = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("LXR_TEST_POSTGRES_URL") else [])
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    rows: dict[tuple[str, int], dict[str, float]] = {}
    for backend in backends:
        for n in SIZES:
            rows[backend, n] = _run("pass", backend, str(n))
            print(backend, n, {k: round(v, 3) for k, v in rows[backend, n].items()}, flush=True)
    intents = {b: _run("intent", b, "10000")["record_intent"] for b in backends}
    print("record_intent", intents, flush=True)
    write(rows, intents, started, load_before, os.getloadavg(), backends)


def write(
    rows: dict[tuple[str, int], dict[str, float]],
    intents: dict[str, float],
    started: datetime.datetime,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    backends: list[str],
    note: str = "",
) -> None:
    """benchmarks/RESULTS-reconcile-scale.md from the measured rows."""
    cols = ("apply", "submit", "started", "steady", "one_line", "finish")
    lines = [
        "# Reconcile pass cost by number of work units",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC by `uv run python benchmarks/reconcile_scale.py` on "
        f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (a machine shared with other work: the ratios hold better "
        "than the seconds). A Slurm stand-in (no processes) whose squeue prints every task "
        "anew on every call, parsed by lxr's Slurm driver; `own` leaves the printing out. "
        "One process per size (peak RSS per size); `steady` is the median of 5 passes, "
        "`one line` (squeue prints one running task's restart count up) of 3. "
        "`started` is the first pass after the submission (the cache took the new attempts "
        "in from what the submission wrote, none is read back); `finish` is a pass where every "
        "unit changes." + note,
        "",
        "| backend | work units | "
        + " | ".join(f"{c.replace('_', ' ')} (s)" for c in cols)
        + " | steady own (s) | one line own (s) | started own (s) | finish own (s)"
        " | peak RSS (MiB) |",
        "|---|---:|" + "---:|" * (len(cols) + 5),
    ]
    for (backend, n), row in rows.items():
        lines.append(
            f"| {backend} | {n:,} | "
            + " | ".join(f"{row[c]:.3f}" for c in cols)
            + f" | {row['steady_own']:.3f} | {row['one_line_own']:.3f} | "
            f"{row['started_own']:.3f} | {row['finish_own']:.3f} | {row['rss_mib']:.0f} |"
        )
    lines += ["", "`record_intent` of one 10,000-task array:", ""]
    for backend, seconds in intents.items():
        lines.append(f"- {backend}: {seconds:.3f} s")
    if "postgresql" in intents:
        lines.append(
            f"- PostgreSQL / SQLite: {intents['postgresql'] / intents['sqlite']:.2f}x "
            "(target: within 2x)"
        )
    lines += [
        "",
        "Targets (issue 13 item 4) at 100,000 work units: steady <= 0.1 s on both backends, and "
        "a pass where one squeue line changed <= 0.1 s of lxr's own; a pass where every unit "
        "changes (started, finish) <= 1.5 s; RSS <= 300 MiB; a cycle at "
        "10,000 tasks in flight (steady at 10k) <= 0.2 s.",
        "",
    ]
    for backend in backends:
        big, ten = rows[backend, SIZES[-1]], rows[backend, 10_000]
        lines.append(
            f"- {backend}: steady {big['steady']:.3f} s (own {big['steady_own']:.3f} s); one "
            f"line {big['one_line']:.3f} s (own {big['one_line_own']:.3f} s); "
            f"started {big['started']:.3f} s, finish {big['finish']:.3f} s; RSS "
            f"{big['rss_mib']:.0f} MiB; 10k in flight {ten['steady']:.3f} s"
        )
    lines.append("")
    Path(__file__).with_name("RESULTS-reconcile-scale.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
    else:
        main()
