"""What a user waits for when listing, describing and deleting 100k work units.

Seeds one experiment of N work units (a scheduler stand-in "runs" them, so each has an
attempt with a job id, then succeeds), then times the real ``lxr`` commands as separate
processes, from spawn: whole command to /dev/null, the first row on a pipe, ``| head``,
and the peak RSS of the process. ``delete`` is timed in process with the same stand-in
(tombstone, cancel, and the controller's cleanup until the experiment is gone).
Startup (``lxr get experiments`` on an empty store) is timed with and without ``.pyc``, beside
``python -c pass`` and (when ``benchmarks/.venv-peers`` has it) ``lxm3 --help``, with ratios:
the machine is shared, so ratios say more than seconds.

With ``--postgres URL`` the whole-list listings are timed on PostgreSQL too (the experiment is
seeded there when the database has none of that name).

Run: ``uv run python benchmarks/cli_scale.py [--db PATH] [--postgres URL]`` (writes
benchmarks/RESULTS-cli-scale.md).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_scale import StandInDriver

from lxr.api.resources import Cluster, ClusterSpec, Experiment, ObjectMeta
from lxr.reconciler.controller import Controller
from lxr.store import Store

REPO = Path(__file__).resolve().parents[1]
N = 100_000
NAME = "scale"
#: the whole-list listings timed (``--sort-by`` is ordered in SQL)
LISTINGS = [
    ("-o", "table"),
    ("-o", "wide"),
    ("-o", "json"),
    ("-o", "yaml"),
    ("-o", "name"),
    ("--sort-by", ".status.phase"),
]


def reconcile(ctl: Controller, cluster: str) -> None:
    """One pass of the controller as its leader (it submits and cancels only under the lease)."""

    async def leading() -> None:
        assert await ctl.acquire_lease()
        await ctl.reconcile(cluster)

    anyio.run(leading)


def seed(url: str, n: int, name: str = NAME) -> float:
    """An experiment of ``n`` work units, submitted, run and succeeded; returns seconds."""
    t = time.perf_counter()
    store = Store(url)
    store.apply(Cluster(metadata=ObjectMeta(name="bench"), spec=ClusterSpec(scheduler="slurm")))
    store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": name, "labels": {"team": "bench"}},
                "spec": {
                    "cluster": "bench",
                    "executable": {"command": ["true"]},
                    "sweep": {"grid": {"lr": [0.1, 0.01], "seed": list(range(n // 2))}},
                },
            }
        )
    )
    ctl = Controller(store)
    driver = StandInDriver()
    ctl.drivers["bench"] = (driver, store.get_cluster("bench").spec)
    reconcile(ctl, "bench")
    reconcile(ctl, "bench")
    driver.set_state("COMPLETED")
    reconcile(ctl, "bench")
    store.close()
    return time.perf_counter() - t


def _env(url: str, pyc: Path | None) -> dict[str, str]:
    env = {**os.environ, "LXR_DATABASE_URL": url}
    # no .pyc: a cache prefix with nothing in it (and nothing is written there)
    env["PYTHONPYCACHEPREFIX"] = str(pyc) if pyc else tempfile.mkdtemp(prefix="no-pyc-")
    return env


def lxr_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "lxr.cli", *args]


CPU: dict[str, float] = {}  # the CPU seconds (user + system) of the last run_full


def run_full(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn to exit, and peak RSS in MiB, stdout to /dev/null (the CPU seconds
    in ``CPU["last"]``: on a loaded machine wall time is mostly waiting for a core)."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(args, stdout=null, stderr=subprocess.PIPE, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    CPU["last"] = usage.ru_utime + usage.ru_stime
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, (args, err)
    return took, usage.ru_maxrss / 1024


def first_row(args: list[str], env: dict[str, str]) -> float:
    """Seconds from spawn to the first data line (after the header) on a pipe."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.readline()
    took = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return took


def head(args: list[str], env: dict[str, str]) -> float:
    """Seconds from spawn until ``cmd | head -n 10`` has returned (the shell's view); the
    command must end quietly when ``head`` closes the pipe (no BrokenPipe traceback)."""
    line = " ".join(f"'{a}'" for a in args) + " | head -n 10 > /dev/null"
    start = time.perf_counter()
    res = subprocess.run(["bash", "-c", line], env=env, check=True, capture_output=True, text=True)
    took = time.perf_counter() - start
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr
    return took


def delete_in_process(url: str, name: str) -> tuple[float, float]:
    """Seconds to tombstone (``delete_experiment``), and until the controller removed it."""
    store = Store(url)
    ctl = Controller(store)
    driver = StandInDriver()
    driver.slurm.jobs = {}  # cancelled: squeue shows none of them
    ctl.drivers["bench"] = (driver, store.get_cluster("bench").spec)
    t = time.perf_counter()
    store.delete_experiment(name)
    tomb = time.perf_counter() - t
    for _ in range(20):
        reconcile(ctl, "bench")
        if not [e for e in store.list_experiments() if e.metadata.name == name]:
            break
    gone = time.perf_counter() - t
    assert not [e for e in store.list_experiments() if e.metadata.name == name]
    store.close()
    return tomb, gone


def compile_pyc(prefix: Path) -> None:
    """Byte-compile lxr and the environment into ``prefix`` (PYTHONPYCACHEPREFIX)."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}
    paths = [str(REPO / "lxr"), *[p for p in sys.path if p.endswith("site-packages")]]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *paths],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", os.path.dirname(os.__file__)],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )


def median_of(k: int, fn) -> float:
    return statistics.median(fn() for _ in range(k))


def write(
    rows: list[tuple[str, str, str]], n: int, seeded: float | None, postgres: bool = False
) -> None:
    """The results file, with machine, date and load."""
    load = os.getloadavg()
    lines = [
        "# CLI at scale: listing, describing and deleting 100k work units",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        "`uv run python benchmarks/cli_scale.py` on "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"SQLite{' and PostgreSQL' if postgres else ''}, load {load[0]:.1f} {load[1]:.1f} "
        f"{load[2]:.1f} (at the end); {n:,} work units in one "
        "experiment, each with one attempt (a scheduler stand-in ran them)"
        + (f"; seeding took {seeded:.0f} s." if seeded else "."),
        "Times are from process spawn (`python -m lxr.cli`), with .pyc unless said otherwise.",
        "",
        "| what | measured | target |",
        "|---|---:|---|",
        *[f"| {w} | {v} | {t} |" for w, v, t in rows],
        "",
    ]
    Path(__file__).with_name("RESULTS-cli-scale.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", help="reuse (or create) this SQLite file")
    parser.add_argument("-n", type=int, default=N)
    parser.add_argument("--postgres", help="also time the listings on this database URL")
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.seed_only:
        seed(opts.db if "://" in opts.db else f"sqlite:///{opts.db}", opts.n)
        return
    tmp = Path(tempfile.mkdtemp(prefix="lxr-cli-scale-"))
    db = Path(opts.db) if opts.db else tmp / "scale.db"
    url = f"sqlite:///{db}"
    seeded = None
    if not db.exists():
        # in a child: a forked child's peak RSS (wait4) counts the parent's pages until it
        # execs, so this process must stay small
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--seed-only", "--db", str(db), "-n", str(opts.n)],
            check=True,
        )
        seeded = time.perf_counter() - t
        print(f"seeded {opts.n} work units in {seeded:.1f}s", flush=True)
    pyc = tmp / "pyc"
    compile_pyc(pyc)
    env = _env(url, pyc)
    rows: list[tuple[str, str, str]] = []

    def add(what: str, value: str, target: str) -> None:
        rows.append((what, value, target))
        print(f"{what}: {value} (target {target})", flush=True)
        # after each row: a run cut short still leaves its rows
        write(rows, opts.n, seeded, bool(opts.postgres))

    def whole_lists(env: dict[str, str], where: str) -> None:
        for args in LISTINGS:
            took, rss = run_full(lxr_cmd("get", "workunits", NAME, *args), env)
            add(
                f"`get workunits {' '.join(args)}`, whole list{where}",
                f"{took:.2f} s ({CPU['last']:.2f} s CPU), {rss:.0f} MiB",
                "≤ 3 s, ≤ 150 MiB",
            )

    whole_lists(env, "")
    took = median_of(5, lambda: first_row(lxr_cmd("get", "workunits", NAME), env))
    add("`get workunits`: first row on a pipe (median of 5)", f"{took:.3f} s", "≤ 0.3 s")
    took = median_of(5, lambda: head(lxr_cmd("get", "workunits", NAME), env))
    add("`get workunits \\| head` (median of 5)", f"{took:.3f} s", "instant")
    took = median_of(5, lambda: run_full(lxr_cmd("describe", "experiment", NAME), env)[0])
    add("`describe experiment` (median of 5)", f"{took:.3f} s", "≤ 0.5 s")
    if opts.postgres:
        pg = opts.postgres
        if subprocess.run(lxr_cmd("get", "experiment", NAME), env=_env(pg, pyc)).returncode:
            subprocess.run(
                [sys.executable, __file__, "--seed-only", "--db", pg, "-n", str(opts.n)],
                check=True,
            )
        whole_lists(_env(pg, pyc), " (PostgreSQL)")

    tomb, gone = delete_in_process(url, NAME)
    add("`delete` of the experiment: tombstone", f"{tomb:.3f} s", "≤ 10 s to tombstone and cancel")
    add(
        "`delete`: until the controller removed it (stand-in scheduler)",
        f"{gone:.2f} s",
        "cleanup may go on",
    )

    # the floors under the same load: the interpreter, a peer's CLI, and the libraries the
    # full command line imports (what a read cost before it had a path of its own)
    floors: dict[str, float] = {}
    for label, code in (
        ("`python -c pass` (floor)", "pass"),
        (
            "`python -c 'import sqlalchemy.orm, pydantic, typer'`",
            "import sqlalchemy.orm, pydantic, typer",
        ),
    ):
        took = median_of(10, lambda code=code: run_full([sys.executable, "-c", code], env)[0])
        floors[code] = took
        add(f"{label}, with .pyc (median of 10)", f"{took:.3f} s", "(calibration)")
    lxm3 = REPO / "benchmarks" / ".venv-peers" / "bin" / "lxm3"
    if lxm3.exists():  # see benchmarks/sweep_to_submitted.py for the peers' environment
        took = median_of(10, lambda: run_full([str(lxm3), "--help"], dict(os.environ))[0])
        floors["lxm3"] = took
        add("`lxm3 --help` (a peer's CLI), median of 10", f"{took:.3f} s", "(calibration)")

    empty = f"sqlite:///{tmp / 'empty.db'}"
    Store(empty).close()
    for label, e in (("with .pyc", _env(empty, pyc)), ("without .pyc", _env(empty, None))):
        run_full(lxr_cmd("get", "experiments"), e)
        took = median_of(10, lambda e=e: run_full(lxr_cmd("get", "experiments"), e)[0])
        ratios = f"{took / floors['pass']:.1f}x `python -c pass`"
        if "lxm3" in floors:
            ratios += f", {took / floors['lxm3']:.2f}x `lxm3 --help`"
        add(
            f"`get experiments`, empty store, {label} (median of 10)",
            f"{took:.3f} s ({ratios})",
            "≤ 0.3 s with .pyc",
        )

    print(Path(__file__).with_name("RESULTS-cli-scale.md").read_text())


if __name__ == "__main__":
    main()
