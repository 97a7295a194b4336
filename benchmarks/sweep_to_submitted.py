"""Sweep-to-submitted on the dev cluster's Slurm: how long until every task of an N-task sweep
is known to Slurm, for lxr and its peers, side by side in one run.

Measured (all jobs are submitted held, ``--hold``, and cancelled at the end):

- ``floor local``: one plain ``sbatch --array=0-(N-1)`` on this machine (the login node).
- ``floor ssh``: the same through a fresh ``ssh`` (what any SSH-based tool pays at least once).
- ``lxr cold``: in-process ``lxr apply`` (cluster + experiment into a fresh SQLite store) and one
  reconcile cycle with a new controller: SSH connect, read the Slurm config, one squeue, record
  the intent, one exec that writes the job files (tar on stdin) and runs sbatch. Ends when every
  work unit has a job id.
- ``lxr pickup``: an already running ``lxr controller run`` (separate process, ``--interval 60``
  so only a wake-up can explain a fast pick-up, already connected) and an apply that wakes it:
  time to the first intent recorded (pick-up) and until every task has a job id.
- ``submitit``: ``AutoExecutor.map_array`` (local ``sbatch``: submitit has no SSH), in
  benchmarks/.venv-peers.
- ``lxm3``: ``ArrayJob`` launch of a ``Command`` executable over SSH (fabric), if it can be
  configured here (benchmarks/.venv-peers).

Python imports are excluded for everyone (each tool is imported before its clock starts).

    uv venv benchmarks/.venv-peers && uv pip install --python benchmarks/.venv-peers submitit lxm3
    uv run python benchmarks/sweep_to_submitted.py            # writes benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / ".venv-peers" / "bin" / "python"
SSH_CONFIG = "/var/lib/lxr-dev/ssh_config"
SSH = ["ssh", "-F", SSH_CONFIG, "lxr-dev"]
PREFIX = f"bench{os.getpid()}"


def cluster_yaml(ssh: bool, staging: Path) -> str:
    """The benchmark's cluster: the dev Slurm over SSH as lxr, or on this machine directly."""
    where = (
        "ssh: {host: 127.0.0.1, port: 2222, user: lxr, identityFile: /var/lib/lxr-dev/id_ed25519,"
        " knownHosts: /var/lib/lxr-dev/known_hosts}"
        if ssh
        else f"stagingDir: {staging}"
    )
    return f"""
apiVersion: lxr.dev/v1alpha1
kind: Cluster
metadata: {{name: bench-slurm}}
spec:
  scheduler: slurm
  {where}
  defaults: {{cpus: 1, memory: 100Mi, extra: {{hold: ""}}}}
"""


def experiment_yaml(name: str, n: int) -> str:
    return f"""
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  cluster: bench-slurm
  executable: {{command: ["true"]}}
  sweep: {{grid: {{i: {list(range(n))}}}}}
"""


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kw)  # type: ignore[call-overload]


def sh_verbose(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """``sh`` whose failure message carries the command's stderr tail (peers fail deep inside)."""
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


# ---------------------------------------------------------------------------- floors


def floor_local(n: int) -> tuple[float, str]:
    argv = ["sbatch", "--parsable", "--hold", f"--array=0-{n - 1}", "-J", f"{PREFIX}-floor"]
    argv += ["-o", "/dev/null", "--wrap", "true"]
    t0 = time.perf_counter()
    out = sh(argv).stdout
    return time.perf_counter() - t0, out.strip()


def floor_ssh(n: int) -> tuple[float, str]:
    cmd = f"sbatch --parsable --hold --array=0-{n - 1} -J {PREFIX}-floor -o /dev/null --wrap true"
    t0 = time.perf_counter()
    out = sh([*SSH, cmd]).stdout
    return time.perf_counter() - t0, out.strip()


# ---------------------------------------------------------------------------- lxr


def lxr_env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state")}
    env.pop("LXR_DATABASE_URL", None)
    return env


def lxr_cold(n: int, tmp: Path, ssh: bool = True) -> tuple[float, list[str], dict[str, float]]:
    """In-process: apply, then one reconcile cycle of a brand-new controller."""
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")
    import anyio
    import yaml

    # what the controller imports lazily, imported here so no tool's clock includes imports
    import lxr.schedulers.slurm
    import lxr.schedulers.ssh  # noqa: F401
    from lxr.api.loader import load_objects
    from lxr.reconciler.controller import Controller
    from lxr.store import Store

    name = f"{PREFIX}-cold-{n}"
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{name}.yaml"
    path.write_text(cluster_yaml(ssh, tmp / "staging") + "---\n" + experiment_yaml(name, n))
    list(yaml.safe_load_all(path.read_text()))  # warm the YAML parser outside the clock
    marks: dict[str, float] = {}
    # the database exists (created and migrated) as it does after a user's first lxr command
    t = time.perf_counter()
    Store().close()
    marks["create db"] = time.perf_counter() - t
    t0 = time.perf_counter()
    store = Store()
    for item in sorted(load_objects(path), key=lambda i: i.obj.kind != "Cluster"):
        store.apply(item.obj)
    marks["applied"] = time.perf_counter() - t0
    ctl = Controller(store)

    async def cycle() -> None:
        await ctl.run_once()
        for driver, _ in ctl.drivers.values():
            await driver.close()

    anyio.run(cycle)
    elapsed = time.perf_counter() - t0
    units = store.list_work_units(name)
    jobs = sorted({a.job_id for wu in units for a in wu.status.attempts if a.job_id})
    assert len(units) == n and all(wu.status.attempts[-1].job_id for wu in units), "not submitted"
    store.release_lease(ctl.holder)
    store.close()
    return elapsed, jobs, marks


def lxr_pickup(n: int, tmp: Path) -> tuple[float, float, float, list[str]]:
    """A running controller (another process), woken by an apply."""
    from lxr.api.loader import load_objects
    from lxr.reconciler.wakeup import notify
    from lxr.store import Store

    tmp.mkdir(parents=True, exist_ok=True)
    env = lxr_env(tmp)
    os.environ["XDG_STATE_HOME"] = env["XDG_STATE_HOME"]
    store = Store()
    warm = tmp / "warm.yaml"
    warm.write_text(cluster_yaml(True, tmp) + "---\n" + experiment_yaml(f"{PREFIX}-warm-{n}", 1))
    for item in sorted(load_objects(warm), key=lambda i: i.obj.kind != "Cluster"):
        store.apply(item.obj)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from lxr.cli.main import main; main()"]
        + ["controller", "run", "--interval", "60"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = Path(env["XDG_STATE_HOME"]) / "lxr" / "lxr.db"
    try:
        # wait until it leads and has submitted the warm-up (so it is connected and prepared)
        deadline = time.monotonic() + 60
        while not _all_submitted(db, f"{PREFIX}-warm-{n}", 1):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the controller did not start")
            time.sleep(0.05)
        name = f"{PREFIX}-pickup-{n}"
        path = tmp / f"{name}.yaml"
        path.write_text(experiment_yaml(name, n))
        (obj,) = [i.obj for i in load_objects(path)]
        t0 = time.perf_counter()
        store.apply(obj)
        lease = store.lease()
        assert lease is not None
        notify(lease[1])  # what `lxr apply` does after writing
        woken = time.perf_counter()
        picked = None
        while True:
            intents, submitted = _progress(db, name)
            if picked is None and intents:
                picked = time.perf_counter() - t0
            if submitted == n:
                break
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("pick-up timed out")
            time.sleep(0.002)
        done = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(30)
    units = store.list_work_units(name) + store.list_work_units(f"{PREFIX}-warm-{n}")
    jobs = sorted({a.job_id for wu in units for a in wu.status.attempts if a.job_id})
    store.close()
    return picked or done, (picked or done) - (woken - t0), done, jobs


def _progress(db: Path, name: str) -> tuple[int, int]:
    """(attempts recorded, attempts with a job id) of experiment ``name``, read directly."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        row = con.execute(
            "select count(a.id), count(s.job_id) from attempts a "
            "join submissions s on s.id = a.submission_id "
            "join work_units w on w.id = a.work_unit_id "
            "join experiments e on e.uid = w.experiment_uid where e.name = ?",
            (name,),
        ).fetchone()
        return int(row[0]), int(row[1])
    except sqlite3.Error:
        return 0, 0
    finally:
        con.close()


def _all_submitted(db: Path, name: str, n: int) -> bool:
    return db.exists() and _progress(db, name)[1] == n


# ---------------------------------------------------------------------------- peers

SUBMITIT = """
import json, sys, time
import submitit
n, folder = int(sys.argv[1]), sys.argv[2]
ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
ex.update_parameters(slurm_array_parallelism=n, timeout_min=5, cpus_per_task=1, mem_gb=0.1,
                     slurm_job_name=sys.argv[3], slurm_additional_parameters={"hold": True})
t0 = time.perf_counter()
jobs = ex.map_array(abs, list(range(n)))
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "jobs": sorted({j.job_id.split("_")[0] for j in jobs})}))
"""


def submitit(n: int, tmp: Path) -> tuple[float, list[str]]:
    out = sh([str(PEERS), "-c", SUBMITIT, str(n), str(tmp / "submitit"), f"{PREFIX}-submitit"])
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["seconds"], data["jobs"]


LXM3 = """
import json, os, sys, time
from absl import flags
flags.FLAGS(["lxm3"])
from lxm3 import xm
from lxm3 import xm_cluster
n = int(sys.argv[1])
with xm_cluster.create_experiment(experiment_title=sys.argv[2]) as experiment:
    [executable] = experiment.package([xm.Packageable(
        executable_spec=xm_cluster.UniversalPackage(path=sys.argv[3], build_script="build.sh",
                                                    entrypoint=["true"]),
        executor_spec=xm_cluster.Slurm.Spec())])
    t0 = time.perf_counter()
    experiment.add(xm_cluster.ArrayJob(
        executable=executable,
        executor=xm_cluster.Slurm(extra_directives=["--hold"]),
        args=[{"i": i} for i in range(n)],
    ))
# add() only queues the launch: leaving the experiment waits for it (job script upload + sbatch)
t = time.perf_counter() - t0
print(json.dumps({"seconds": t}))
"""


def lxm3(n: int, tmp: Path) -> tuple[float, list[str]]:
    """lxm3 over SSH: a private HOME whose ~/.ssh/config points fabric at the dev sshd."""
    env, pkg = lxm3_env(tmp)
    out = sh_verbose([str(PEERS), "-c", LXM3, str(n), f"{PREFIX}-lxm3", str(pkg)], env=env, cwd=pkg)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["seconds"], []


def lxm3_env(tmp: Path) -> tuple[dict[str, str], Path]:
    """lxm3's environment (a private HOME and config pointing at the dev cluster) and its
    package directory, written under ``tmp``."""
    home = tmp / "lxm3-home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "config").write_text(
        "Host 127.0.0.1\n  Port 2222\n  User lxr\n  IdentityFile /var/lib/lxr-dev/id_ed25519\n"
        "  UserKnownHostsFile /var/lib/lxr-dev/known_hosts\n"
    )
    pkg = tmp / "lxm3-pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "build.sh").write_text('#!/bin/sh\nmkdir -p "$BUILDDIR" && echo ok > "$BUILDDIR/ok"\n')
    (pkg / "build.sh").chmod(0o755)
    cfg = tmp / "lxm3.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            project = "{PREFIX}"
            [local.storage]
            staging = "{tmp}/lxm3-local"
            [[clusters]]
            name = "dev"
            server = "127.0.0.1"
            user = "lxr"
            ssh_private_key = "/var/lib/lxr-dev/id_ed25519"
            # lxm3's SFTP artifact store (fsspec/paramiko) takes no port: reach sshd's 2222
            # through a plain TCP relay (its documented ``proxycommand``), no extra SSH hop
            proxycommand = "socat - TCP:127.0.0.1:2222"
            [clusters.storage]
            staging = "/home/lxr/lxm3-staging"
            """
        )
    )
    return {**os.environ, "HOME": str(home), "LXM_CONFIG": str(cfg)}, pkg


# ---------------------------------------------------------------------------- main


def machine() -> str:
    mem = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    slurm = sh(["sbatch", "--version"]).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs (nproc), {int(mem) / 1024 / 1024:.1f} GiB RAM, "
        f"kernel {platform.release()}, Python {platform.python_version()}, {slurm}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="10,100,1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--skip", default="", help="comma-separated: lxm3,submitit,pickup")
    args = ap.parse_args()
    sizes = [int(x) for x in args.n.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, dict[int, list[float]]] = {}
    extra: dict[str, dict[int, list[float]]] = {}
    errors: dict[str, str] = {}
    local_jobs: list[str] = []
    remote_jobs: list[str] = []

    def record(tool: str, n: int, seconds: float, into: dict = results) -> None:
        into.setdefault(tool, {}).setdefault(n, []).append(seconds)
        print(f"{tool:>22} N={n:<5} {seconds * 1000:9.1f} ms", flush=True)

    try:
        for n in sizes:
            for rep in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix="lxr-bench-") as d:
                    tmp = Path(d)
                    t, job = floor_local(n)
                    local_jobs.append(job)
                    record("floor local sbatch", n, t)
                    t, job = floor_ssh(n)
                    remote_jobs.append(job)
                    record("floor ssh sbatch", n, t)
                    t, jobs, marks = lxr_cold(n, tmp / f"cold{rep}")
                    remote_jobs += jobs
                    record("lxr cold (ssh)", n, t)
                    record("lxr cold: of which apply", n, marks["applied"], extra)
                    t, jobs, marks = lxr_cold(n, tmp / f"local{rep}", ssh=False)
                    local_jobs += jobs
                    record("lxr cold (local, no ssh)", n, t)
                    if "pickup" not in skip:
                        picked, after_wake, done, jobs = lxr_pickup(n, tmp / f"pickup{rep}")
                        remote_jobs += jobs
                        record("lxr pickup: first intent", n, picked, extra)
                        record("lxr pickup: wake-up -> first intent", n, after_wake, extra)
                        record("lxr running controller (ssh)", n, done)
                    for tool, fn, jobs_list in (
                        ("submitit (local sbatch)", submitit, local_jobs),
                        ("lxm3 (ssh)", lxm3, remote_jobs),
                    ):
                        key = tool.split()[0]
                        if key in skip or key in errors:
                            continue
                        try:
                            t, jobs = fn(n, tmp)
                        except Exception as exc:  # report, keep measuring others
                            err = getattr(exc, "stderr", "") or str(exc)
                            errors[key] = err.strip().splitlines()[-1] if err.strip() else repr(exc)
                            print(f"{tool}: failed: {errors[key]}", flush=True)
                            continue
                        jobs_list += jobs
                        record(tool, n, t)
    finally:
        # cancel everything the benchmark submitted (held jobs never run)
        if local_jobs:
            subprocess.run(["scancel", *local_jobs], check=False)
        subprocess.run(["scancel", "-n", f"{PREFIX}-submitit"], check=False)
        names = sh([*SSH, "squeue --me -h -o '%A %j'"]).stdout.split("\n")
        remote = {ln.split()[0] for ln in names if len(ln.split()) == 2 and PREFIX in ln}
        remote |= set(remote_jobs)
        if remote:
            subprocess.run([*SSH, "scancel " + shlex.join(sorted(remote))], check=False)
    write_results(args.out, sizes, results, extra, errors)


def write_results(out, sizes, results, extra, errors) -> None:
    def cell(values: list[float] | None) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values) * 1000:.0f} (min {min(values) * 1000:.0f})"

    lines = [
        "# Sweep-to-submitted benchmark",
        "",
        f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by "
        "`uv run python benchmarks/sweep_to_submitted.py` on the dev cluster "
        "(deploy/dev-cluster: Slurm and sshd on this machine).",
        "",
        f"Machine: {machine()}.",
        "",
        "Milliseconds from the start of the submission until every task is known to Slurm, "
        "median of the repeats (min in parentheses). Jobs are submitted held and cancelled after.",
        "",
        "| tool | " + " | ".join(f"N={n}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for tool, per_n in {**results, **extra}.items():
        lines.append(f"| {tool} | " + " | ".join(cell(per_n.get(n)) for n in sizes) + " |")
    for base_name in ("lxr cold (ssh)", "lxr running controller (ssh)"):
        base = results.get(base_name, {})
        if not base:
            continue
        title = f"Ratios: median of the tool / median of {base_name} (> 1: lxr is faster):"
        lines += ["", title, ""]
        lines.append("| tool | " + " | ".join(f"N={n}" for n in sizes) + " |")
        lines.append("|---|" + "---|" * len(sizes))
        for tool, per_n in results.items():
            cells = []
            for n in sizes:
                if per_n.get(n) and base.get(n):
                    cells.append(f"{statistics.median(per_n[n]) / statistics.median(base[n]):.2f}")
                else:
                    cells.append("-")
            lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    if errors:
        lines += ["", "Not measured:", ""]
        lines += [f"- {tool}: `{msg}`" for tool, msg in errors.items()]
    lines += ["", "Raw seconds:", "", "```", json.dumps({**results, **extra}, indent=1), "```", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
