"""From process spawn to every task in ``squeue``: ``lxr apply`` to a running controller, beside
submitit's and lxm3's whole processes and the ``ssh sbatch`` floor, with and without ``.pyc``.

Every figure is a whole process, imports included: the clock starts when the command is
spawned and stops when the local ``squeue`` (polled every few milliseconds) lists every task
of the sweep. All jobs are submitted held (``--hold``) and cancelled at the end.

- ``lxr apply (ssh)``: ``lxr apply -f sweep.yaml`` while ``lxr controller run`` (another
  process, ``--interval 60``, so only the wake-up explains a fast pick-up) leads, already
  connected to the dev cluster's Slurm over SSH; the apply hands the file to it over its
  request socket, it writes the experiment, records the intent and submits. ``lxr apply
  (login node)``: the same on a cluster without ``ssh`` (sbatch runs on this machine, as
  submitit's does). ``lxr apply in-process (ssh)``: the same command applying the file in its
  own process and waking the controller (what it did before it handed files over; typer's
  path, ``main(fast=False)``), for comparison in the same run.
- ``lxr apply, no controller (login node)``: a user's first apply: no controller runs, so the
  command starts the store's background controller and hands it the file (a fresh store each
  run, the daemon stopped after it). ``..., in-process``: the command applies the file itself,
  then starts the daemon (typer's path, as it did before it handed the file to the daemon).
- ``submitit``: a script doing ``AutoExecutor.map_array`` (local ``sbatch``; submitit has no
  SSH), in benchmarks/.venv-peers.
- ``lxm3``: an lxm3 launch script (``ArrayJob`` of a ``UniversalPackage``) over SSH, in
  benchmarks/.venv-peers.
- ``ssh sbatch``: ``ssh lxr-dev sbatch --array=...``, what any SSH-based tool pays at least.

``.pyc``: "with" is the environment as installed (bytecode compiled by ``uv sync
--compile-bytecode``, written on first import); "without" sets ``PYTHONDONTWRITEBYTECODE=1``
and an empty ``PYTHONPYCACHEPREFIX``, so no module, the standard library's included, has
bytecode to read: the worst case.

    uv venv benchmarks/.venv-peers && uv pip install --python benchmarks/.venv-peers submitit lxm3
    . deploy/dev-cluster/env.sh && uv run python benchmarks/apply_to_squeue.py
    # writes benchmarks/RESULTS-apply-to-squeue.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sweep_to_submitted import (  # noqa: E402
    LXM3,
    PEERS,
    SSH,
    cluster_yaml,
    experiment_yaml,
    lxm3_env,
    machine,
)

if TYPE_CHECKING:
    from lxr.store import Store

PREFIX = f"q{os.getpid() % 100000}"
#: the command applying the file itself, beside the same controller (for comparison)
HERE_TOOL = "lxr apply in-process (ssh)"
#: no controller running: the command starts the background controller (a first apply)
COLD_TOOL = "lxr apply, no controller (login node)"
#: the same, the command applying the file itself before it starts the daemon
COLD_HERE_TOOL = "lxr apply, no controller, in-process (login node)"
NO_DAEMON = "LXR_NO_DAEMON"

SUBMITIT = """
import sys
import submitit
n, folder = int(sys.argv[1]), sys.argv[2]
ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
ex.update_parameters(slurm_array_parallelism=n, timeout_min=5, cpus_per_task=1, mem_gb=0.1,
                     slurm_job_name=sys.argv[3], slurm_additional_parameters={"hold": True})
ex.map_array(abs, list(range(n)))
"""


def squeue_names() -> list[str]:
    """The job name of every array task Slurm knows (pending ones one line each, ``-r``)."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%j"], capture_output=True, text=True, check=False
    ).stdout
    return out.split()


#: the last run's seconds from the moment ``written()`` first held (lxr: the experiment is in
#: the store) to its last task in squeue
AFTER_WRITE = [0.0]
#: the last run's seconds from spawn until the command exited (or None: after its tasks
#: were listed)
EXITED: list[float | None] = [None]


def until_visible(
    argv: list[str],
    env: dict[str, str],
    name: str,
    n: int,
    written: Callable[[], bool] | None = None,
    **kw: object,
) -> float:
    """Spawn ``argv``; seconds until ``squeue`` lists ``n`` tasks whose job name contains
    ``name``. With ``written``, notes (:data:`AFTER_WRITE`) how much of that came after it
    first held."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kw,  # type: ignore[call-overload]
    )
    wrote = None
    EXITED[0] = None
    while True:
        if written is not None and wrote is None and written():
            wrote = time.perf_counter() - t0
        if EXITED[0] is None and proc.poll() is not None:
            EXITED[0] = time.perf_counter() - t0
        seen = sum(name in job for job in squeue_names())
        if seen >= n:
            took = time.perf_counter() - t0
            break
        if time.perf_counter() - t0 > 120:
            proc.kill()
            raise RuntimeError(f"{argv[:3]}: {seen} of {n} tasks after 120 s")
        code = proc.poll()
        if code not in (None, 0):
            raise RuntimeError(f"{argv[:3]} exited {code}: {proc.stderr.read()[-800:]}")
        time.sleep(0.002)
    proc.wait(timeout=120)
    AFTER_WRITE[0] = took - (took if wrote is None else wrote)
    return took


def env_for(pyc: bool, cache: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.pop("LXR_DATABASE_URL", None)
    if pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(cache)  # empty: no bytecode anywhere
    return env


def apply_argv(path: Path, here: bool) -> list[str]:
    """``lxr apply -f path``; ``here``: through typer's path (``main(fast=False)``), which
    applies the file in the command's own process, never handing it to a controller."""
    if here:
        main = "from lxr.cli.main import main; main(fast=False)"
        return [sys.executable, "-c", main, "apply", "-f", str(path)]
    return [sys.executable, "-m", "lxr.cli", "apply", "-f", str(path)]


class LxrController:
    """``lxr controller run`` on a fresh store, leading, connected, warmed up."""

    def __init__(self, tmp: Path, ssh: bool) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self._store: Store | None = None
        self.env = {**os.environ, "XDG_STATE_HOME": str(self.state), "LXR_NO_DAEMON": "1"}
        self.env.pop("LXR_DATABASE_URL", None)
        tmp.mkdir(parents=True, exist_ok=True)
        warm = tmp / "warm.yaml"
        name = f"{PREFIX}w{'s' if ssh else 'l'}"
        warm.write_text(cluster_yaml(ssh, tmp / "staging") + "---\n" + experiment_yaml(name, 1))
        subprocess.run(
            [sys.executable, "-m", "lxr.cli", "apply", "-f", str(warm)],
            env=self.env, check=True, capture_output=True,
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lxr.cli", "controller", "run", "--interval", "60"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while sum(name in job for job in squeue_names()) < 1:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the controller did not start")
            time.sleep(0.05)
        time.sleep(1.0)  # its cycle over: it sleeps until woken

    def apply(self, name: str, n: int, pyc: bool, cache: Path, here: bool = False) -> float:
        """``lxr apply -f`` of a sweep of ``n``; ``here``: applied in the command's own
        process (typer's path), not handed to the controller."""
        path = self.tmp / f"{name}.yaml"
        path.write_text(experiment_yaml(name, n))
        env = env_for(pyc, cache, XDG_STATE_HOME=str(self.state), LXR_NO_DAEMON="1")
        argv = apply_argv(path, here)

        def written() -> bool:  # the apply's transaction committed
            return bool(self.stored(name))

        return until_visible(argv, env, name, n, written)

    def remove(self, name: str) -> None:
        """``lxr delete experiment NAME`` and wait until the controller cancelled its tasks and
        finished it: the next run's pass has nothing of this one left to do."""
        subprocess.run(
            [sys.executable, "-m", "lxr.cli", "delete", "experiment", name],
            env=self.env, check=True, capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        next_wake = 0.0
        while time.monotonic() < deadline:
            if not any(name in job for job in squeue_names()):  # lxr cancelled its tasks
                if self.stored(name) == 0:
                    return
                # the pass that sees the tasks gone finishes it: now, not in 60 s
                if time.monotonic() >= next_wake:
                    self.wake()
                    next_wake = time.monotonic() + 2.0
            time.sleep(0.2)
        raise RuntimeError(f"experiment {name} was not deleted within 60 s")

    def stored(self, name: str) -> int | None:
        """How many experiments named ``name`` the controller's store holds (None: it could
        not be read just now)."""
        db = self.state / "lxr" / "lxr.db"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            q = "select count(*) from experiments where name = ?"
            return int(con.execute(q, (name,)).fetchone()[0])
        except sqlite3.Error:
            return None
        finally:
            con.close()

    def wake(self) -> None:
        """Wake the controller (a pass now), as a command that changed desired state does."""
        from lxr.reconciler.wakeup import wake_controller
        from lxr.store import Store

        if self._store is None:  # one store for every wake-up, not one each
            self._store = Store(f"sqlite:///{self.state / 'lxr' / 'lxr.db'}")
        wake_controller(self._store)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self._store is not None:
            self._store.close()


class ColdLxr:
    """``lxr apply -f`` with no controller running: the command starts this store's background
    controller (what a user's first apply does). Every run has a store of its own, with the
    cluster applied beforehand (untimed), and its daemon is stopped after it. ``here``: the
    command applies the file itself and then starts the daemon (typer's path,
    ``main(fast=False)``), for comparison in the same run."""

    def __init__(self, tmp: Path, ssh: bool) -> None:
        self.tmp, self.ssh = tmp, ssh
        self.runs = 0

    def apply(self, name: str, n: int, pyc: bool, cache: Path, here: bool = False) -> float:
        self.runs += 1
        base = self.tmp / f"run{self.runs}"
        base.mkdir(parents=True)
        state = base / "state"
        env = env_for(pyc, cache, XDG_STATE_HOME=str(state))
        env.pop(NO_DAEMON, None)
        cluster = base / "cluster.yaml"
        cluster.write_text(cluster_yaml(self.ssh, base / "staging"))
        subprocess.run(
            [sys.executable, "-m", "lxr.cli", "apply", "-f", str(cluster), "--no-daemon"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        path = base / f"{name}.yaml"
        path.write_text(experiment_yaml(name, n))
        argv = apply_argv(path, here)
        try:
            return until_visible(argv, env, name, n)
        finally:
            subprocess.run(
                [sys.executable, "-m", "lxr.cli", "controller", "stop"],
                env=env, capture_output=True, timeout=60,
            )  # fmt: skip
            cancel_ours(name)


def submitit(name: str, n: int, pyc: bool, cache: Path, tmp: Path) -> float:
    argv = [str(PEERS), "-c", SUBMITIT, str(n), str(tmp / "submitit"), name]
    return until_visible(argv, env_for(pyc, cache), name, n)


def lxm3(name: str, n: int, pyc: bool, cache: Path, tmp: Path) -> float:
    env, pkg = lxm3_env(tmp)
    argv = [str(PEERS), "-c", LXM3, str(n), name, str(pkg)]
    return until_visible(argv, env_for(pyc, cache, HOME=env["HOME"], LXM_CONFIG=env["LXM_CONFIG"]),
                         name, n, cwd=pkg)  # fmt: skip


def ssh_sbatch(name: str, n: int, pyc: bool, cache: Path, tmp: Path) -> float:
    cmd = f"sbatch --parsable --hold --array=0-{n - 1} -J {name} -o /dev/null --wrap true"
    return until_visible([*SSH, cmd], dict(os.environ), name, n)


PEER_TOOLS: dict[str, Callable[[str, int, bool, Path, Path], float]] = {
    "ssh sbatch": ssh_sbatch,
    "submitit": submitit,
    "lxm3": lxm3,
}


def cancel_ours(pattern: str = PREFIX) -> None:
    """Cancel every job this run submitted (by name: those whose name holds ``pattern``), here
    and over SSH."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%A %j %u"], capture_output=True, text=True, check=False
    ).stdout
    for user in ("root", "lxr"):
        ids = [f[0] for f in (line.split() for line in out.splitlines()) if pattern in f[1]
               and f[2] == user]  # fmt: skip
        if not ids:
            continue
        if user == "lxr":
            subprocess.run([*SSH, "scancel " + " ".join(ids)], check=False, capture_output=True)
        else:
            subprocess.run(["scancel", *ids], check=False, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="10,1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--skip", default="", help="comma-separated: lxm3,submitit,login,here,cold,cold-here"
    )
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-apply-to-squeue.md")
    args = ap.parse_args()
    sizes = [int(x) for x in args.n.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    names = {
        "login": "lxr apply (login node)",
        "here": HERE_TOOL,
        "cold": COLD_TOOL,
        "cold-here": COLD_HERE_TOOL,
    }
    skip = {names.get(s, s) for s in skip}
    results: dict[tuple[str, int, bool], list[float]] = {}
    after: dict[tuple[str, int, bool], list[float]] = {}
    exited: dict[tuple[str, int, bool], list[float]] = {}
    errors: dict[str, str] = {}
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    runs = 0
    with tempfile.TemporaryDirectory(prefix="lxr-squeue-") as d:
        tmp = Path(d)
        cache = tmp / "no-pycache"
        cache.mkdir()
        controllers = {"lxr apply (ssh)": LxrController(tmp / "ssh", ssh=True)}
        if "lxr apply (login node)" not in skip:
            controllers["lxr apply (login node)"] = LxrController(tmp / "login", ssh=False)
        cold = ColdLxr(tmp / "cold", ssh=False)
        tools = [*controllers, HERE_TOOL, COLD_TOOL, COLD_HERE_TOOL, "ssh sbatch", "submitit"]
        try:
            for n in sizes:
                for _rep in range(args.repeat):
                    for pyc in (True, False):
                        for tool in [*tools, "lxm3"]:
                            if tool in errors or tool in skip:
                                continue
                            runs += 1
                            name = f"{PREFIX}r{runs}"
                            try:
                                if tool in controllers:
                                    seconds = controllers[tool].apply(name, n, pyc, cache)
                                elif tool == HERE_TOOL:
                                    ssh = controllers["lxr apply (ssh)"]
                                    seconds = ssh.apply(name, n, pyc, cache, here=True)
                                elif tool in (COLD_TOOL, COLD_HERE_TOOL):
                                    here = tool == COLD_HERE_TOOL
                                    seconds = cold.apply(name, n, pyc, cache, here=here)
                                else:
                                    seconds = PEER_TOOLS[tool](name, n, pyc, cache, tmp)
                            except Exception as exc:  # report it, keep measuring the others
                                errors[tool] = str(exc)[-600:]
                                print(f"{tool}: {exc}", flush=True)
                                continue
                            results.setdefault((tool, n, pyc), []).append(seconds)
                            if tool not in (COLD_TOOL, COLD_HERE_TOOL):  # no write to see
                                after.setdefault((tool, n, pyc), []).append(AFTER_WRITE[0])
                            if EXITED[0] is not None:
                                exited.setdefault((tool, n, pyc), []).append(EXITED[0])
                            print(
                                f"{tool:>24} n={n:<5} pyc={pyc!s:<5} {seconds:7.3f} s", flush=True
                            )
                            # every run starts from the same queue and an idle controller:
                            # the tasks of the runs before would make each squeue poll longer,
                            # and a controller would end them in the next run's pass
                            if tool in controllers:
                                controllers[tool].remove(name)
                            elif tool == HERE_TOOL:
                                controllers["lxr apply (ssh)"].remove(name)
                            elif tool in (COLD_TOOL, COLD_HERE_TOOL):
                                pass  # its daemon stopped, its tasks cancelled
                            else:  # not the controllers' warm-up jobs
                                cancel_ours(f"{PREFIX}r")
        finally:
            for ctl in controllers.values():
                ctl.stop()
            cancel_ours()
    load_after = os.getloadavg()
    write(
        args.out,
        results,
        after,
        exited,
        errors,
        sizes,
        started,
        load_before,
        load_after,
        args.repeat,
    )


def lxr_medians(figures: dict[tuple[str, int, bool], list[float]]) -> list[str]:
    """A line per lxr tool, size and .pyc mode: the median of ``figures``."""
    return [
        f"- {tool}, {n:,} tasks, {'with' if pyc else 'without'} .pyc: "
        f"{statistics.median(values):.3f} s"
        for (tool, n, pyc), values in figures.items()
        if tool.startswith("lxr")
    ]


def write(
    out: Path,
    results: dict[tuple[str, int, bool], list[float]],
    after: dict[tuple[str, int, bool], list[float]],
    exited: dict[tuple[str, int, bool], list[float]],
    errors: dict[str, str],
    sizes: list[int],
    started: datetime.datetime,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    repeat: int,
) -> None:
    tools = list(dict.fromkeys(t for t, _, _ in results))
    med = {k: statistics.median(v) for k, v in results.items()}
    lines = [
        "# From spawn to every task in squeue",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC by `uv run python benchmarks/apply_to_squeue.py` on "
        f"{platform.node()} ({machine()}); load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after, on a machine shared with other work (the ratios hold "
        f"better than the seconds). Median of {repeat} runs each, whole processes from spawn, "
        "imports included; jobs held, and cancelled after each run (lxr's experiments deleted "
        "through lxr, the controller idle again), so every run starts from the same queue.",
        "",
        "| tool | .pyc | " + " | ".join(f"{n:,} tasks (s)" for n in sizes) + " |",
        "|---|---|" + "---:|" * len(sizes),
    ]
    for tool in tools:
        for pyc in (True, False):
            cells = [f"{med[tool, n, pyc]:.3f}" if (tool, n, pyc) in med else "-" for n in sizes]
            lines.append(f"| {tool} | {'with' if pyc else 'without'} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Of which after `lxr apply` had committed the experiment (the running controller's "
        "part: wake-up, intent, sbatch, until squeue lists the tasks), median:",
        "",
    ]
    lines += lxr_medians(after)
    lines += [
        "",
        "The `lxr apply` process itself, from spawn to its exit (median; tasks may be listed "
        "before it exits):",
        "",
    ]
    lines += lxr_medians(exited)
    lines += ["", "Ratios to submitit's whole process (same .pyc mode, same size):", ""]
    for tool in tools:
        if tool == "submitit":
            continue
        parts = []
        for n in sizes:
            for pyc in (True, False):
                a, b = med.get((tool, n, pyc)), med.get(("submitit", n, pyc))
                if a is not None and b:
                    parts.append(f"{n:,} {'with' if pyc else 'without'} .pyc {a / b:.2f}x")
        if parts:
            lines.append(f"- {tool}: " + ", ".join(parts))
    lines += [
        "",
        "Targets (issue 13 item 2): with a running controller, `lxr apply` of 10 tasks in "
        "squeue within 0.35 s of spawn, 1000 tasks within 0.5 s. (The rows with no "
        "controller have no target: they include starting the background controller.)",
        "",
    ]
    for n, target in ((10, 0.35), (1000, 0.5)):
        for tool in tools:
            timed = tool.startswith("lxr") and tool not in (HERE_TOOL, COLD_TOOL, COLD_HERE_TOOL)
            if timed and (tool, n, True) in med:
                got = med[tool, n, True]
                verdict = "met" if got <= target else "not met"
                lines.append(f"- {tool}, {n:,} tasks, with .pyc: {got:.3f} s ({verdict})")
    if errors:
        lines += ["", "Not measured:", ""] + [f"- {t}: {e}" for t, e in errors.items()]
    lines.append("")
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
