"""The one mapping table: xm.JobRequirements and executor options -> lxr Resources."""

from __future__ import annotations

import datetime

import pytest

pytest.importorskip("xmanager")

from xmanager import xm

from lxr.api.resources import RequeuePolicy
from lxr.xm_cluster import (
    GridEngine,
    Local,
    Slurm,
    executor_resources,
    requirements_to_resources,
)
from lxr.xm_cluster.executors import duration_seconds


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (xm.JobRequirements(), {}),
        (xm.JobRequirements(cpu=4), {"cpus": 4}),
        (xm.JobRequirements(cpu=0.5), {"cpus": 1}),
        (xm.JobRequirements(ram=8 * xm.GiB), {"memory": "8192Mi"}),
        (xm.JobRequirements(ram=1.5 * xm.MiB), {"memory": "2Mi"}),
        (xm.JobRequirements(a100=1), {"gpus": 1, "gpu_type": "a100"}),
        (xm.JobRequirements(h100=8, cpu=32), {"gpus": 8, "gpu_type": "h100", "cpus": 32}),
        (xm.JobRequirements({xm.ResourceType.V100: 2}), {"gpus": 2, "gpu_type": "v100"}),
        (xm.JobRequirements(local_gpu=2), {"gpus": 2}),
    ],
)
def test_job_requirements_table(req: xm.JobRequirements, expected: dict) -> None:
    assert requirements_to_resources(req).model_dump(exclude_none=True, exclude={"extra"}) == (
        expected
    )


def test_tpus_are_refused_and_replicas_are_ranks() -> None:
    with pytest.raises(ValueError, match="TPU"):
        requirements_to_resources(xm.JobRequirements(tpu_v3="2x2"))
    # replicas are the ranks of one work unit (issue 14): no longer refused
    res = requirements_to_resources(xm.JobRequirements(cpu=1, replicas=2))
    assert (res.nodes, res.tasks_per_node, res.cpus) == (1, 2, 1)
    with pytest.raises(ValueError, match="replicas"):
        requirements_to_resources(xm.JobRequirements(cpu=1, replicas=3), nodes=2)


def test_slurm_options() -> None:
    ex = Slurm(
        cluster="dev-slurm",
        partition="batch",
        account="lab",
        qos="high",
        time="1-02:00:00",
        requirements=xm.JobRequirements(cpu=2, a100=1),
        extra_directives=["--constraint=v100", "--exclusive"],
        requeue=True,
        signal="USR1@90",
    )
    cluster, res, requeue = executor_resources(ex)
    assert cluster == "dev-slurm" and requeue is RequeuePolicy.SCHEDULER
    assert (res.partition, res.account, res.qos, res.time_limit_seconds) == (
        "batch",
        "lab",
        "high",
        26 * 3600,
    )
    assert (res.cpus, res.gpus, res.gpu_type) == (2, 1, "a100")
    assert res.extra == {"constraint": "v100", "exclusive": "", "signal": "USR1@90", "requeue": ""}


def test_grid_engine_options() -> None:
    ex = GridEngine(
        cluster="dev-sge",
        queue="all.q",
        resources={"h_vmem": "2G"},
        walltime=datetime.timedelta(minutes=30),
        project="p1",
        requirements=xm.JobRequirements(cpu=4),
    )
    cluster, res, requeue = executor_resources(ex)
    assert (cluster, requeue) == ("dev-sge", RequeuePolicy.CONTROLLER)
    assert (res.queue, res.project, res.time_limit_seconds, res.cpus) == ("all.q", "p1", 1800, 4)
    assert res.extra == {"h_vmem": "2G"}


def test_local_defaults_to_the_local_cluster() -> None:
    assert executor_resources(Local())[0] == "local"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), ("30", 1800), ("1:30", 90), ("2:00:00", 7200), ("1-0", 86400), (None, None)],
)
def test_durations(value: object, seconds: int | None) -> None:
    assert duration_seconds(value) == seconds  # type: ignore[arg-type]
