"""XManager launch scripts on the real schedulers of the dev cluster (deploy/dev-cluster), over
SSH: ``lxr launch --wait`` runs examples/xm/launch_slurm.py and launch_sge.py to Succeeded,
content-addressed staging sends 0 bytes the second time (counted in the store, which is what
``lxr_staging_bytes_total`` exports), and ``Slurm(extra_directives=[...])`` flags without a
value reach sbatch as bare flags.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xmanager")

from xmanager import xm

from lxr import xm_cluster
from lxr.store import Store
from lxr.testing import converge
from tests.conftest import require

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
PKG = EXAMPLES / "xm" / "py_package"
RUN = secrets.token_hex(2)
STAGED = re.compile(r"staging: (\d+) artifacts, (\d+) bytes uploaded, (\d+) already present")

# (cluster file, Cluster name, launch script, probe command, flags for the script)
SCHEDULERS = {
    "slurm": ("slurm/cluster.yaml", "dev-slurm", "launch_slurm.py", "squeue --me -h", []),
    "sge": ("sge/cluster.yaml", "sge-dev", "launch_sge.py", "qstat -u lxr", []),
}


def _lxr(*args: str) -> subprocess.CompletedProcess[str]:
    """The lxr CLI in a subprocess, on this test's store (XDG_STATE_HOME is in os.environ)."""
    return subprocess.run(
        [sys.executable, "-c", "from lxr.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ,
        timeout=400,
        check=False,
    )


def _ssh(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", env["LXR_DEV_SSH_CONFIG"], "lxr-dev", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _scheduler_up(env: dict[str, str], probe: str, which: str) -> None:
    res = _ssh(env, probe)
    require(res.returncode == 0, f"{which} over ssh failed: {res.stderr.strip()!r}")


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_launch_script_runs_to_succeeded_and_restages_nothing(
    scheduler: str, dev_cluster: dict[str, str], store: Store
) -> None:
    cluster_file, cluster, script, probe, flags = SCHEDULERS[scheduler]
    _scheduler_up(dev_cluster, probe, scheduler)
    applied = _lxr("apply", "-f", str(EXAMPLES / cluster_file))
    assert applied.returncode == 0, applied.stderr

    launches = []
    for _ in range(2):  # the same unchanged code twice
        before = store.staged_bytes().get(cluster, 0)
        res = _lxr(
            "launch", str(EXAMPLES / "xm" / script), "--wait", "--timeout", "300", "--", *flags
        )
        assert res.returncode == 0, res.stdout + res.stderr
        [line] = [m.groups() for m in map(STAGED.search, res.stdout.splitlines()) if m]
        launches.append((store.staged_bytes().get(cluster, 0) - before, line))

    # the counter the controller exports moved by what each launch reported uploading...
    (first_bytes, first_line), (second_bytes, second_line) = launches
    assert first_bytes == int(first_line[1])
    # ...and the second launch found everything present on the cluster: 0 bytes
    assert second_bytes == 0
    assert second_line == (first_line[0], "0", first_line[0])

    exps = store.list_experiments()
    assert len(exps) == 2 and {e.spec.cluster for e in exps} == {cluster}
    for exp in exps:
        assert exp.status.phase.value == "Succeeded", (exp.metadata.name, exp.status)
        units = store.list_work_units(exp.metadata.name)
        assert len(units) >= 2
        assert all(len(u.status.attempts) == 1 and u.status.exit_code == 0 for u in units)
        # one array per launch: every unit's attempt carries the same job id
        assert len({u.status.attempts[0].job_id for u in units}) == 1


def test_slurm_extra_directive_without_value_is_a_bare_flag(
    dev_cluster: dict[str, str], store: Store
) -> None:
    _scheduler_up(dev_cluster, "squeue --me -h", "slurm")
    applied = _lxr("apply", "-f", str(EXAMPLES / "slurm" / "cluster.yaml"))
    assert applied.returncode == 0, applied.stderr
    # --no-kill: harmless on the one-node dev Slurm, and a flag sbatch takes without a value
    executor = xm_cluster.Slurm(
        cluster="dev-slurm",
        partition="batch",
        time="0:05:00",
        extra_directives=["--no-kill", "--mail-type=NONE"],
    )
    with xm_cluster.create_experiment(f"extra-{RUN}", store=store, quiet=True) as experiment:
        spec = xm_cluster.PythonPackage(
            path=str(PKG), entrypoint=xm_cluster.ModuleName("sweep_demo.train")
        )
        [exe] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])
        for seed in (1, 2):
            experiment.add(xm.Job(exe, executor, args={"seed": seed}))
    [exp] = store.list_experiments()
    assert exp.spec.resources.extra == {"no-kill": "", "mail-type": "NONE"}
    ctl = converge(store, [exp.metadata.name], timeout=180, interval=0.5)
    assert store.get_experiment(exp.metadata.name).status.phase.value == "Succeeded"

    _, tag, _, job_id = store.find_attempt(exp.metadata.name, 0)
    driver = ctl.drivers["dev-slurm"][0]
    script = _ssh(dev_cluster, f"cat {driver.job_dir(tag)}/job.sbatch")
    assert script.returncode == 0, script.stderr
    directives = [line for line in script.stdout.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --no-kill" in directives, directives
    assert "#SBATCH --mail-type=NONE" in directives, directives
    # sbatch refuses an option it does not know: the job ran, so Slurm accepted both
    assert job_id is not None


def test_container_with_podman_runs_the_staged_package_inside_the_image(
    dev_cluster: dict[str, str], store: Store
) -> None:
    """lxm3's ``SingularityContainer`` spelling with ``container_runtime="podman"``: the
    package's zip, staged to the cluster and bound read-only, runs under the image's python3."""
    _scheduler_up(dev_cluster, "podman image exists localhost/lxr-test-python:latest", "podman")
    applied = _lxr("apply", "-f", str(EXAMPLES / "slurm" / "cluster.yaml"))
    assert applied.returncode == 0, applied.stderr
    executor = xm_cluster.Slurm(cluster="dev-slurm", container_runtime="podman", time="0:05:00")
    with xm_cluster.create_experiment(f"podman-{RUN}", store=store, quiet=True) as experiment:
        package = xm_cluster.PythonPackage(
            path=str(PKG), entrypoint=xm_cluster.ModuleName("sweep_demo.train")
        )
        spec = xm_cluster.SingularityContainer(
            package, image_path="docker://localhost/lxr-test-python:latest"
        )
        [exe] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])
        experiment.add(xm.Job(exe, executor, args={"seed": 7, "lr": 0.5}))
    [exp] = store.list_experiments()
    assert exp.spec.executable.command[3] == "podman"  # bash -c OCI_SCRIPT podman ...
    converge(store, [exp.metadata.name], timeout=180, interval=0.5)
    [wu] = store.list_work_units(exp.metadata.name)
    logs = _lxr("logs", "experiment", exp.metadata.name, "--wu", "0")
    assert wu.status.phase.value == "Succeeded", (wu.status, logs.stdout, logs.stderr)
    assert "lr=0.5 seed=7" in logs.stdout, logs.stdout
