"""Container work units on the real dev cluster (deploy/dev-cluster: podman-up.sh), over SSH as
user ``lxr``: on Slurm and on Grid Engine a YAML ``executable.container`` runs inside rootless
podman, in the test image ``localhost/lxr-test-python`` (its ``/etc/os-release`` has
``VARIANT_ID=lxr-test``, the host's has not), with the task's working directory, arguments and
environment, and the image's own ``PATH``; a runtime the cluster lacks (Apptainer) holds the
work units with ``RuntimeMissing`` and submits nothing."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from lxr.api.resources import Cluster, Experiment
from lxr.schedulers.ssh import SSHTransport
from lxr.store import Store
from lxr.testing import converge
from tests.conftest import dev_ssh, require

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE = "localhost/lxr-test-python:latest"
CLI = [sys.executable, "-c", "from lxr.cli.main import main; main()"]
RUN = secrets.token_hex(2)

#: prints what the task sees, as one JSON line, from inside the image
PROBE = (
    "import json, os, sys; print(json.dumps({"
    "'os_release': open('/etc/os-release').read(), 'argv': sys.argv[1:], 'cwd': os.getcwd(), "
    "'wu': os.environ.get('LXR_WORK_UNIT'), 'greeting': os.environ.get('GREETING'), "
    "'path': os.environ.get('PATH'), 'python': sys.executable}))"
)


def _experiment(name: str, cluster: str, executable: dict, **spec: object) -> Experiment:
    return Experiment.model_validate(
        {"metadata": {"name": name}, "spec": {"cluster": cluster, "executable": executable, **spec}}
    )


def _cluster(name: str, scheduler: str, env: dict[str, str]) -> Cluster:
    return Cluster.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "scheduler": scheduler,
                "ssh": dev_ssh(env),
                "defaults": {"cpus": 1, "memory": "256Mi"},
            },
        }
    )


@pytest.mark.parametrize("scheduler", ["slurm", "sge"])
def test_container_work_unit_runs_in_the_image(
    scheduler: str, dev_cluster: dict[str, str], store: Store
) -> None:
    env = dev_cluster
    probe = subprocess.run(
        ["ssh", "-F", env["LXR_DEV_SSH_CONFIG"], "lxr-dev", f"podman image exists {IMAGE}"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    require(
        probe.returncode == 0,
        f"no {IMAGE} for lxr on the dev cluster: run deploy/dev-cluster/podman-up.sh as root",
    )
    assert "VARIANT_ID=lxr-test" not in Path("/etc/os-release").read_text()  # the host's
    cluster = f"ctr-{scheduler}"
    store.apply(_cluster(cluster, scheduler, env))
    name = f"it{RUN}-ctr-{scheduler}"
    executable = {
        "command": ["python3", "-c", PROBE],
        "env": {"GREETING": "hello from the host side"},
        "container": {"image": IMAGE},
    }
    # Grid Engine's h_vmem limits address space: podman (Go) reserves a few GiB of it at
    # start and dies below ~8 GiB ("failed to reserve page summary memory"); the RSS limit of
    # Slurm here does not mind
    memory = {"resources": {"memory": "8Gi"}} if scheduler == "sge" else {}
    units = [{"args": {"lr": 0.5, "name": "a b"}}]
    store.apply(_experiment(name, cluster, executable, workUnits=units, **memory))
    converge(store, [name], timeout=180, interval=0.5)
    [wu] = store.list_work_units(name)
    out = subprocess.run(
        [*CLI, "logs", "experiment", name, "--wu", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wu.status.phase.value == "Succeeded", (wu.status, out.stdout, out.stderr)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert "VARIANT_ID=lxr-test" in seen["os_release"]  # the image's, not the host's
    assert seen["argv"] == ["--lr=0.5", "--name=a b"]
    assert seen["wu"] == "0" and seen["greeting"] == "hello from the host side"
    assert seen["path"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert seen["python"] == "/usr/bin/python3"
    assert seen["cwd"] == "/home/lxr"  # the task's working directory, bound at its own path


def test_cluster_without_the_runtime_gets_runtime_missing_and_no_submission(
    dev_cluster: dict[str, str], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian 12 has no Apptainer: the work units are held, not sent off to exit 127."""
    commands: list[tuple[str, ...]] = []
    original = SSHTransport._run

    async def recording(self: SSHTransport, argv: tuple[str, ...], input: bytes | None):
        commands.append(argv)
        return await original(self, argv, input)

    monkeypatch.setattr(SSHTransport, "_run", recording)
    cluster = "ctr-noruntime"
    store.apply(_cluster(cluster, "slurm", dev_cluster))
    name = f"it{RUN}-ctr-noruntime"
    executable = {
        "command": ["python3", "-V"],
        "container": {"image": "/images/x.sif", "runtime": "apptainer"},
    }
    store.apply(_experiment(name, cluster, executable, sweep={"grid": {"i": [0, 1]}}))
    passes = [0]

    def three_passes() -> bool:
        passes[0] += 1
        return passes[0] > 3

    converge(store, [], timeout=60, until=three_passes, interval=0.2)
    message = f"apptainer not found on login node of cluster {cluster}"
    units = store.list_work_units(name)
    assert [(wu.status.phase.value, wu.status.reason) for wu in units] == [
        ("Pending", "RuntimeMissing")
    ] * 2
    assert all(wu.status.message == message and wu.status.attempts == [] for wu in units)
    status = store.get_experiment(name).status
    assert status is not None
    [cond] = [c for c in status.conditions if c.type == "RuntimeReady"]
    assert (cond.status.value, cond.reason, cond.message) == ("False", "RuntimeMissing", message)
    assert not any("sbatch" in " ".join(c) for c in commands), commands  # nothing submitted
    lookups = [c for c in commands if c[:2] == ("sh", "-c") and "command -v" in c[2]]
    assert len(lookups) == 1 and lookups[0][4:] == ("apptainer",)  # once, for every pass
