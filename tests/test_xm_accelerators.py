"""A cluster's accelerator table (spec.accelerators): launch-script names -> the site's gres
or complex; gpu=/GPU= any GPU; unknown names fail at launch naming the table's keys. And a
request the scheduler refuses (A100=1 where the dev Slurm has no such gres) fails the work unit
at the first submission, with sbatch's words: one sbatch call."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("xmanager")

from lxr import (
    xm,
    xm_cluster,
)
from lxr.api.loader import load_objects
from lxr.api.resources import Cluster, ClusterSpec
from lxr.schedulers.sge.render import qsub_options
from lxr.schedulers.slurm.driver import SlurmDriver
from lxr.schedulers.slurm.render import sbatch_options
from lxr.store import Store
from lxr.testing import converge
from lxr.xm_cluster.accelerators import resolve_accelerator
from lxr.xm_cluster.requirements import requirements_to_resources
from tests.test_xm_signatures import _job

REPO = Path(__file__).resolve().parents[1]
SLURM = ClusterSpec.model_validate(
    {
        "scheduler": "slurm",
        "accelerators": {"a100": "gpu:a100_80gb", "any": "gpu", "t4": "shard:t4"},
    }
)
SGE = ClusterSpec.model_validate(
    {
        "scheduler": "sge",
        "accelerators": {"a100": "gpu_a100", "any": "gpu", "v100": "gpu,gputype=v100"},
    }
)


def _lines(req: object, spec: ClusterSpec) -> list[str]:
    res = resolve_accelerator(requirements_to_resources(req), spec, "site")
    job = _job(xm_cluster.Local())
    job = job.__class__(**{**job.__dict__, "resources": res})
    if spec.scheduler == "slurm":
        return sbatch_options(job, "/j")
    opts = qsub_options(job, "/j", spec.options)  # type: ignore[arg-type]
    return [f"{a} {b}" for a, b in zip(opts, opts[1:], strict=False) if a == "-l"]


@pytest.mark.parametrize(
    ("req", "spec", "expected"),
    [
        (xm_cluster.JobRequirements(A100=2), SLURM, "--gres=gpu:a100_80gb:2"),
        (xm.JobRequirements(a100=1), SLURM, "--gres=gpu:a100_80gb:1"),
        (xm_cluster.JobRequirements(gpu=1), SLURM, "--gres=gpu:1"),
        (xm_cluster.JobRequirements(GPU=3), SLURM, "--gres=gpu:3"),
        (xm_cluster.JobRequirements(t4=1), SLURM, "--gres=shard:t4:1"),
        (xm_cluster.JobRequirements(a100=2), SGE, "-l gpu_a100=2"),
        (xm_cluster.JobRequirements(gpu=1), SGE, "-l gpu=1"),
        (xm_cluster.JobRequirements(V100=1), SGE, "-l gputype=v100"),
    ],
)
def test_accelerator_table(req: object, spec: ClusterSpec, expected: str) -> None:
    lines = _lines(req, spec)
    assert expected in lines, lines


def test_sge_model_asks_for_the_gpu_complex_and_its_type() -> None:
    lines = _lines(xm_cluster.JobRequirements(V100=2), SGE)
    assert "-l gpu=2" in lines and "-l gputype=v100" in lines, lines


def test_unknown_accelerator_fails_at_launch_with_the_tables_keys(store: Store) -> None:
    store.apply(
        Cluster.model_validate(
            {"metadata": {"name": "site"}, "spec": SLURM.model_dump(by_alias=True)}
        )
    )
    spec = xm_cluster.PythonPackage(
        path=str(REPO / "examples/xm/py_package"), entrypoint=xm_cluster.ModuleName("m")
    )
    with pytest.raises(ValueError, match=r"cluster site has no accelerator 'l40s'.*a100, any, t4"):
        with xm_cluster.create_experiment("acc", store=store, quiet=True) as experiment:
            [exe] = experiment.package(
                [xm.Packageable(spec, executor_spec=xm_cluster.Slurm.Spec())]
            )
            experiment.add(
                xm.Job(exe, xm_cluster.Slurm(xm_cluster.JobRequirements(L40S=1), cluster="site"))
            )
    assert store.list_experiments() == []


def test_without_a_table_a_model_passes_through() -> None:
    bare = ClusterSpec(scheduler="slurm")
    assert "--gres=gpu:a100:1" in _lines(xm_cluster.JobRequirements(A100=1), bare)


@pytest.mark.integration
@pytest.mark.slow
def test_a_refused_gres_fails_at_the_first_submission(
    dev_cluster: dict[str, str], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for loaded in load_objects(REPO / "examples" / "slurm" / "cluster.yaml"):
        store.apply(loaded.obj)
    calls: list[int] = []
    real = SlurmDriver.submit

    async def counting(self: SlurmDriver, job: object) -> str:
        calls.append(1)
        return await real(self, job)  # type: ignore[arg-type]

    monkeypatch.setattr(SlurmDriver, "submit", counting)
    spec = xm_cluster.PythonPackage(
        path=str(REPO / "examples/xm/py_package"),
        entrypoint=xm_cluster.ModuleName("sweep_demo.train"),
    )
    with xm_cluster.create_experiment("a100", store=store, quiet=True) as experiment:
        [exe] = experiment.package([xm.Packageable(spec, executor_spec=xm_cluster.Slurm.Spec())])
        executor = xm_cluster.Slurm(xm.JobRequirements(A100=1), walltime=60, cluster="dev-slurm")
        experiment.add(xm.Job(exe, executor))
    [exp] = store.list_experiments()
    converge(store, [exp.metadata.name], timeout=120)
    [unit] = store.list_work_units(exp.metadata.name)
    assert unit.status.phase.value == "Failed"
    assert len(unit.status.attempts) == 1 and calls == [1]
    message = (unit.status.attempts[0].message or "") + (unit.status.message or "")
    assert "sbatch" in message and "gres" in message.lower(), message
