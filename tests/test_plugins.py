"""Schedulers are plugins: lxr finds its drivers through the ``lxr.schedulers`` entry points,
each with its own options, and a new scheduler is one package and no edit to lxr."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from lxr.api.loader import LoadError, parse_object
from lxr.api.resources import ClusterSpec, Experiment, Resources
from lxr.schedulers.plugins import ENTRY_POINT_GROUP, plugin, scheduler_names
from lxr.schedulers.registry import make_driver
from lxr.schedulers.sge import SGEDriver, SGEOptions
from lxr.store import Store
from tests.conftest import require

PLUGIN_DIR = Path(__file__).parent / "plugins" / "lxr-echo-scheduler"


def _cluster(spec: dict) -> object:
    doc = {"apiVersion": "lxr.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": "c"}}
    return parse_object({**doc, "spec": spec}, "c.yaml").obj


def test_lxr_schedulers_are_found_through_entry_points() -> None:
    assert {"local", "slurm", "sge"} <= set(scheduler_names())
    assert plugin("local").poll_interval < plugin("slurm").poll_interval
    driver = make_driver("g", ClusterSpec(scheduler="sge", sge={"parallelEnvironment": "mpi"}))
    assert isinstance(driver, SGEDriver) and driver.options.parallel_environment == "mpi"


def test_scheduler_options_are_validated_as_its_own_section() -> None:
    spec = _cluster({"scheduler": "sge", "sge": {"gpuResource": "gpu_card"}}).spec
    assert spec.options == SGEOptions(gpu_resource="gpu_card")
    dumped = spec.model_dump(mode="json", by_alias=True)
    assert dumped["sge"] == {"gpuResource": "gpu_card", "parallelEnvironment": "smp"}
    assert ClusterSpec.model_validate(dumped) == spec
    with pytest.raises(LoadError) as bad:
        _cluster({"scheduler": "sge", "sge": {"parallelEnvironment": 3, "pe": "x"}})
    assert bad.value.problems == [
        "c.yaml: spec.sge.parallelEnvironment: Input should be a valid string (got 3)",
        "c.yaml: spec.sge.pe: unknown field",
    ]
    with pytest.raises(LoadError) as other:  # another scheduler's section
        _cluster({"scheduler": "slurm", "sge": {}})
    assert other.value.problems == ["c.yaml: spec.sge: unknown field"]
    with pytest.raises(LoadError) as unknown:
        _cluster({"scheduler": "pbs"})
    (problem,) = unknown.value.problems
    assert "spec.scheduler" in problem and "unknown scheduler 'pbs'" in problem
    assert "installed: local, " in problem and ENTRY_POINT_GROUP in problem


def test_older_spellings_are_read_into_the_scheduler_section() -> None:
    spec = _cluster({"scheduler": "sge", "parallelEnvironment": "mpi"}).spec
    assert spec.options == SGEOptions(parallel_environment="mpi")
    assert "parallelEnvironment" not in spec.model_dump(by_alias=True)
    res = Resources.model_validate({"queue": "all.q", "sge": {"project": "ml"}, "cpus": 2})
    assert res.section("sge") is not None and (res.queue, res.project) == ("all.q", "ml")
    assert res.model_dump(exclude_none=True) == {
        "cpus": 2,
        "extra": {},
        "sge": {"queue": "all.q", "project": "ml"},
    }
    merged = Resources(sge={"queue": "gpu.q"}).merged_over(res)  # type: ignore[call-arg]
    assert (merged.queue, merged.project, merged.cpus) == ("gpu.q", "ml", 2)


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload]


@pytest.mark.slow
def test_a_scheduler_from_a_separate_package_runs_a_sweep_to_succeeded(tmp_path: Path) -> None:
    """tests/plugins/lxr-echo-scheduler (its own pyproject.toml and entry point) is installed
    into a fresh virtual environment that sees this lxr; the lxr CLI there runs a sweep on a
    Cluster with ``scheduler: echo`` to Succeeded. Nothing in lxr names the scheduler."""
    uv = shutil.which("uv")
    require(uv is not None, "uv is not on PATH")
    assert importlib.util.find_spec("lxr_echo_scheduler") is None, "installed here already"
    assert "echo" not in scheduler_names()

    venv = tmp_path / "venv"
    assert _run([uv, "venv", "-q", str(venv), "--python", sys.executable]).returncode == 0
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # this checkout's lxr and its dependencies, seen from the new environment
    here = sysconfig.get_paths()["purelib"]
    Path(purelib.stdout.strip(), "lxr-under-test.pth").write_text(
        f"import site; site.addsitedir({here!r})\n"
    )
    install = [uv, "pip", "install", "-q", "--python", str(python), "--no-deps", str(PLUGIN_DIR)]
    res = _run([*install, "--offline"])  # hatchling is in uv's cache: lxr builds with it
    if res.returncode != 0:
        res = _run(install)
    assert res.returncode == 0, res.stderr

    (tmp_path / "sweep.yaml").write_text(
        """\
apiVersion: lxr.dev/v1alpha1
kind: Cluster
metadata: {name: toy}
spec:
  scheduler: echo
  echo: {greeting: bonjour}
---
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {name: on-a-plugin}
spec:
  cluster: toy
  executable: {command: [sh, -c, 'echo "$0 $1"', task]}
  resources: {echo: {color: blue}}
  sweep: {grid: {x: [1, 2, 3]}}
"""
    )
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("LXR_DATABASE_URL", None)
    lxr = [str(python), "-m", "lxr.cli"]
    applied = _run([*lxr, "apply", "-f", "sweep.yaml", "--wait"], cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    got = _run([*lxr, "get", "workunits", "on-a-plugin", "-o", "json"], cwd=tmp_path, env=env)
    items = json.loads(got.stdout)["items"]
    assert [i["status"]["phase"] for i in items] == ["Succeeded"] * 3
    (job_dir,) = (tmp_path / "state" / "lxr" / "clusters" / "toy" / "jobs").iterdir()
    meta = json.loads((job_dir / "echo.json").read_text())
    assert (meta["greeting"], meta["color"]) == ("bonjour", "blue")  # its own options arrived
    outputs = sorted((job_dir / "logs" / f"{i}.out").read_text() for i in meta["indexes"])
    assert outputs == [f"task --x={x}\n" for x in (1, 2, 3)]


def test_an_experiment_stored_in_the_older_spelling_applies_again(store: Store) -> None:
    """An experiment stored before resources.queue moved to resources.sge.queue is the same
    experiment: applying it again is not a change of an immutable field."""
    from sqlalchemy import update

    from lxr.store.admission import spec_hash
    from lxr.store.tables import ExperimentRow

    doc = {
        "metadata": {"name": "old-spelling"},
        "spec": {"executable": {"command": ["true"]}, "resources": {"queue": "all.q"}},
    }
    store.apply(Experiment.model_validate(doc))
    with store.session() as s:
        row = s.query(ExperimentRow).one()
        old = dict(row.spec)
        resources = dict(old["resources"])
        sge = resources.pop("sge")  # as it was stored: queue, project at the top
        resources.update({k: sge.pop(k) for k in ("queue", "project")})
        if any(v is not None for v in sge.values()):  # fields added since stay in the section
            resources["sge"] = sge
        old["resources"] = resources
        s.execute(update(ExperimentRow).values(spec=old, spec_hash=spec_hash(old)))
    again = store.apply(Experiment.model_validate(doc))
    assert again.action in ("unchanged", "configured")
