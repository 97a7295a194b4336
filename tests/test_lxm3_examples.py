"""lxm3's ten example launch scripts (tests/fixtures/lxm3_examples, only their imports switched
from lxm3 to lxr) run unchanged: those needing no container runtime and no docker build to
Succeeded on the local cluster; container ones as far as the runtime, which neither this
machine nor the dev cluster has (Singularity): the controller's preflight holds their work units
with RuntimeMissing instead of letting each task exit 127; the Slurm one on the dev Slurm, its
cluster chosen by the default-cluster mechanism (LXR_CLUSTER), not by the script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xmanager")

from lxr.store import Store
from lxr.testing import converge
from tests.conftest import FIXTURES, require

EXAMPLES = FIXTURES / "lxm3_examples"
REPO = Path(__file__).resolve().parents[1]

#: need neither a container runtime nor a docker build: Succeeded on the local cluster
SUCCEED = [
    "basic/launcher.py",
    "basic/batch_launcher.py",
    "universal_package/launch.py",
    "pex_binary/launcher.py",
]


def _lxr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from lxr.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env or os.environ,
        timeout=400,
        check=False,
    )


def _first_attempts_ended(store: Store) -> bool:
    units = store.list_work_units(selector={})
    return bool(units) and all(u.status.attempts and u.status.attempts[0].end_time for u in units)


def _first_attempt(store: Store, names: list[str]) -> list[tuple[int | None, str]]:
    """Run until each unit's first attempt ended: its exit code and stderr."""
    converge(store, names, timeout=240, until=lambda: _first_attempts_ended(store))
    out = []
    for unit in store.list_work_units(selector={}):
        name = unit.metadata["labels"]["experiment"]
        idx = unit.metadata["labels"]["index"]
        logs = _lxr("logs", "experiment", name, "--wu", str(idx), "--attempt", "1", "--stderr")
        out.append((unit.status.attempts[0].exit_code, logs.stdout + logs.stderr))
    return out


def _held(store: Store, names: list[str]) -> list[str]:
    """Run until every unit is held for a missing program: the messages saying which."""

    def held() -> bool:
        units = store.list_work_units(selector={})
        return bool(units) and all(u.status.reason == "RuntimeMissing" for u in units)

    converge(store, names, timeout=120, until=held)
    units = store.list_work_units(selector={})
    assert all(u.status.attempts == [] for u in units)  # nothing was submitted
    return [u.status.message or "" for u in units]


@pytest.mark.slow
@pytest.mark.parametrize("script", SUCCEED)
def test_example_runs_to_succeeded_on_local(script: str, store: Store) -> None:
    res = _lxr("launch", str(EXAMPLES / script), "--wait", "--timeout", "240")
    assert res.returncode == 0, res.stdout + res.stderr
    exps = store.list_experiments()
    assert exps and all(e.status.phase.value == "Succeeded" for e in exps)


def test_array_job_example_is_one_array_with_per_task_args_and_env(store: Store) -> None:
    res = _lxr("launch", str(EXAMPLES / "basic" / "batch_launcher.py"))
    assert res.returncode == 0, res.stdout + res.stderr
    [exp] = store.list_experiments()
    units = store.list_work_units(exp.metadata.name)
    assert [(u.spec.args, u.spec.env) for u in units] == [
        ({"seed": 0}, {"TASK": "foo_0"}),
        ({"seed": 1}, {"TASK": "foo_1"}),
    ]
    assert len({u.status.attempts[0].job_id for u in units if u.status.attempts}) <= 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "flags"),
    [
        ("jax_gpu/launcher.py", ["--container=docker://python:3.11-slim"]),
        ("pdm_project/launcher.py", []),
        ("python_container/launcher.py", []),
    ],
)
def test_container_example_gets_as_far_as_the_runtime(
    script: str, flags: list[str], store: Store
) -> None:
    res = _lxr("launch", str(EXAMPLES / script), "--", *flags)
    assert res.returncode == 0, res.stdout + res.stderr
    names = [e.metadata.name for e in store.list_experiments()]
    # this machine has no Singularity/Apptainer: held exactly there, before any task exits 127
    [message] = _held(store, names)
    assert message == "singularity not found on this machine (cluster local)", message
    spec = store.list_experiments()[0].spec
    assert spec.executable.command[:2] == ["singularity", "exec"]


@pytest.mark.slow
def test_example_needing_jax_runs_until_the_import(store: Store) -> None:
    res = _lxr("launch", str(EXAMPLES / "jax_gpu" / "batch_launcher.py"))
    assert res.returncode == 0, res.stdout + res.stderr
    names = [e.metadata.name for e in store.list_experiments()]
    attempts = _first_attempt(store, names)
    assert len(attempts) == 2
    for code, stderr in attempts:
        assert code == 1 and "No module named 'jax'" in stderr, stderr


def test_examples_failing_before_a_task_say_why_and_write_nothing(store: Store) -> None:
    # its default --container is a jax-cuda.sif the example does not ship
    res = _lxr("launch", str(EXAMPLES / "jax_gpu" / "launcher.py"))
    assert res.returncode == 1 and "no container image at" in res.stderr, res.stderr
    assert "jax-cuda.sif" in res.stderr
    # docker buildx with no Docker daemon: the script's own subprocess.run fails
    res = _lxr("launch", str(EXAMPLES / "jax_gpu" / "launcher_docker.py"))
    assert res.returncode == 1 and "docker" in res.stderr, res.stderr
    assert store.list_experiments() == []


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--batch"]])
def test_slurm_example_on_the_default_cluster(
    flags: list[str], dev_cluster: dict[str, str], store: Store
) -> None:
    applied = _lxr("apply", "-f", str(REPO / "examples" / "slurm" / "cluster.yaml"))
    require(applied.returncode == 0, applied.stderr)
    env = {**os.environ, "LXR_CLUSTER": "dev-slurm"}
    res = _lxr(
        "launch",
        str(EXAMPLES / "jax_gpu" / "launcher_slurm.py"),
        "--",
        "--container=docker://python:3.11-slim",
        *flags,
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    exps = store.list_experiments()
    assert {e.spec.cluster for e in exps} == {"dev-slurm"}
    assert exps[0].spec.resources.time_limit_seconds == 600  # walltime=10 * xm.Min
    messages = _held(store, [e.metadata.name for e in exps])
    assert len(messages) == (2 if flags else 1)
    # the dev cluster has no Singularity either: held at the runtime, nothing submitted
    assert set(messages) == {"singularity not found on login node of cluster dev-slurm"}
