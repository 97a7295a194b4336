"""lxm3's and xmanager-slurm's executor signatures (positional and keyword), each mapped to the
``#SBATCH`` lines / ``qsub`` options lxr submits: one table, through the real option builders."""

from __future__ import annotations

import datetime

import pytest

pytest.importorskip("xmanager")

from lxr import xm
from lxr import xm_cluster as xc
from lxr.contrib import ucl
from lxr.schedulers.base import ArrayJob, TaskSpec
from lxr.schedulers.sge.plugin import SGEOptions
from lxr.schedulers.sge.render import qsub_options
from lxr.schedulers.slurm.render import sbatch_options
from lxr.staging import Blob
from lxr.xm_cluster.commands import runtime_command
from lxr.xm_cluster.executors import executor_resources
from lxr.xm_cluster.packaging import ClusterExecutable

GiB = xm.GiB


def _job(executor: xm.Executor) -> ArrayJob:
    _, resources, requeue = executor_resources(executor)
    return ArrayJob(
        tag="t-0123456789",
        experiment="e",
        experiment_uid="uid",
        tasks=[TaskSpec(array_index=1, argv=["true"])],
        resources=resources,
        scheduler_requeue=requeue.value == "Scheduler",
    )


def _sbatch(executor: xm.Executor) -> list[str]:
    return sbatch_options(_job(executor), "/jobs/t")


def _qsub(executor: xm.Executor) -> list[str]:
    opts = qsub_options(_job(executor), "/jobs/t", SGEOptions())
    # pair each option with its values, as they would appear on a qsub command line
    out: list[str] = []
    for item in opts:
        if item.startswith("-") or not out:
            out.append(item)
        else:
            out[-1] += " " + item
    return out


SLURM = [
    # lxm3: Slurm(requirements, resources, walltime, ...) positional
    (
        xc.Slurm(
            xc.JobRequirements(cpu=2, ram=4 * GiB), {"constraint": "v100"}, 10 * xm.Min, cluster="c"
        ),
        ["--cpus-per-task=2", "--mem=4096M", "--constraint=v100", "--time=0-00:10:00"],
        [],
    ),
    # lxm3 keywords
    (
        xc.Slurm(walltime=2 * xm.Hr, partition="gpu", exclusive=True, cluster="c"),
        ["--time=0-02:00:00", "--partition=gpu", "--exclusive"],
        [],
    ),
    (
        xc.Slurm(extra_directives=["--qos=high", "#SBATCH -C v100"], cluster="c"),
        ["--qos=high", "-C v100"],
        [],
    ),
    (
        xc.Slurm(xc.JobRequirements(ram=1 * GiB), skip_directives=["--mem"], cluster="c"),
        [],
        ["--mem=1024M"],
    ),
    (xc.Slurm(walltime=datetime.timedelta(minutes=90), cluster="c"), ["--time=0-01:30:00"], []),
    # lxm3: JobRequirements(gpu=1) is any GPU
    (xc.Slurm(xc.JobRequirements(gpu=1), cluster="c"), ["--gres=gpu:1"], []),
    # XManager's own requirements with a model
    (
        xc.Slurm(xm.JobRequirements(a100=2, cpu=8), cluster="c"),
        ["--gres=gpu:a100:2", "--cpus-per-task=8"],
        [],
    ),
    # xmanager-slurm: JobRequirements(CPU=, RAM=, L40S=), time=timedelta, account/partition/qos
    (
        xc.Slurm(
            requirements=xc.JobRequirements(CPU=1, RAM=1 * GiB, L40S=2),
            time=datetime.timedelta(hours=1),
            account="lab",
            partition="main",
            qos="normal",
            cluster="c",
        ),
        [
            "--cpus-per-task=1",
            "--mem=1024M",
            "--gres=gpu:l40s:2",
            "--time=0-01:00:00",
            "--account=lab",
            "--partition=main",
            "--qos=normal",
        ],
        [],
    ),
    (xc.Slurm(xc.JobRequirements(GPU=4), cluster="c"), ["--gres=gpu:4"], []),
    (
        xc.Slurm(requeue=True, signal="USR2@90", cluster="c"),
        ["--requeue", "--signal=USR2@90"],
        ["--no-requeue"],
    ),
    (xc.Slurm(cluster="c"), ["--no-requeue"], ["--requeue"]),
]


@pytest.mark.parametrize(("executor", "present", "absent"), SLURM)
def test_slurm_signatures_to_sbatch_lines(
    executor: xm.Executor, present: list[str], absent: list[str]
) -> None:
    lines = _sbatch(executor)
    assert [p for p in present if p not in lines] == [], lines
    assert [a for a in absent if a in lines] == [], lines
    # lxr's own lines are always there, whatever was skipped
    assert lines[0].startswith("--job-name=") and lines[2].startswith("--output=")


SGE = [
    # lxm3: GridEngine(requirements, resources, parallel_environments, walltime, ...) positional
    (
        xc.GridEngine(None, {"h_vmem": "2G"}, {"smp": 4}, 3600, cluster="c"),
        ["-l h_vmem=2G", "-pe smp 4", "-l h_rt=01:00:00", "-R y"],
        [],
    ),
    (
        xc.GridEngine(queue="all.q", reserved=False, project="p1", account="acct", cluster="c"),
        ["-q all.q", "-P p1", "-A acct"],
        ["-R y"],
    ),
    (xc.GridEngine(reserved=True, cluster="c"), ["-R y"], []),
    (
        xc.GridEngine(
            xc.JobRequirements(ram=2 * GiB),
            extra_directives=["-l tmem=4G", "#$ -l scratch=1G"],
            skip_directives=["h_vmem"],
            cluster="c",
        ),
        ["-l tmem=4G", "-l scratch=1G"],
        ["-l h_vmem=2048M"],
    ),
    (xc.GridEngine(walltime=10 * xm.Min, cluster="c"), ["-l h_rt=00:10:00"], []),
    # UCL presets (lxm3's contrib): myriad and cs
    (
        ucl.UclGridEngine(
            xc.JobRequirements(gpu=1, ram=8 * xm.GB), walltime=10 * xm.Min, cluster="myriad"
        ),
        ["-l mem=7630M", "-l gpu=1", "-l h_rt=00:10:00", "-R y"],
        [],
    ),
    (
        ucl.UclGridEngine(xc.JobRequirements(cpu=4, ram=4 * GiB), walltime=3600, cluster="cs"),
        ["-l h_vmem=4096M", "-l tmem=4096M", "-pe smp 4", "-R y"],
        [],
    ),
    (
        ucl.UclGridEngine(xc.JobRequirements(gpu=1, ram=4 * GiB), cluster="cs"),
        ["-l gpu=true", "-l tmem=4096M"],
        ["-l h_vmem=4096M"],
    ),
]


@pytest.mark.parametrize(("executor", "present", "absent"), SGE)
def test_grid_engine_signatures_to_qsub_options(
    executor: xm.Executor, present: list[str], absent: list[str]
) -> None:
    opts = _qsub(executor)
    assert [p for p in present if p not in opts] == [], opts
    assert [a for a in absent if a in opts] == [], opts
    assert "-N lxr-t-0123456789" in opts or any(o.startswith("-N ") for o in opts)


def test_local_takes_requirements_positionally() -> None:
    cluster, res, _ = executor_resources(xc.Local(xc.JobRequirements(cpu=2, ram=8 * xm.GB)))
    assert (cluster, res.cpus, res.memory) == ("local", 2, "7630Mi")


def test_max_parallel_tasks_is_the_array_throttle() -> None:
    assert xc.GridEngine(max_parallel_tasks=3, cluster="c").parallelism() == 3


def test_modules_log_directory_and_container_options_wrap_the_command() -> None:
    blob = Blob(digest="0" * 64, source=None, suffix=".zip")  # type: ignore[arg-type]
    exe = ClusterExecutable(
        name="app", kind="python", blob=blob, module="app.main", image="docker://python:3.11"
    )
    ex = xc.GridEngine(
        modules=["singularity-env", "cuda/12"],
        log_directory="/scratch/logs",
        singularity_options=xc.SingularityOptions(
            bind={"/data": "/mnt/data"}, extra_options=["--cleanenv"]
        ),
        cluster="c",
    )
    command, env, _ = runtime_command(
        exe, ex, {blob.name: "/stage/blobs/x.zip"}, gpus=True, scheduler="sge"
    )
    assert command[:2] == ["bash", "-c"]
    script = command[2]
    assert "module load singularity-env\nmodule load cuda/12" in script
    assert "/scratch/logs/app-${LXR_WORK_UNIT}.out" in script
    assert command[4:] == [
        "singularity",
        "exec",
        "--nv",
        "--bind",
        "/stage/blobs",
        "--bind",
        "/data:/mnt/data",
        "--cleanenv",
        "docker://python:3.11",
        "python3",
        "-m",
        "app.main",
    ]
    assert env == {"PYTHONPATH": "/stage/blobs/x.zip"}


def test_docker_container_runs_with_docker_and_its_volumes() -> None:
    blob = Blob(digest="0" * 64, source=None, suffix=".zip")  # type: ignore[arg-type]
    exe = ClusterExecutable(
        name="app", kind="python", blob=blob, module="m", image="docker://img:1", runtime="docker"
    )
    ex = xc.Local(docker_options=xc.DockerOptions(volumes={"/d": "/d"}))
    command, _, _ = runtime_command(
        exe, ex, {blob.name: "/s/blobs/x.zip"}, gpus=False, scheduler="local"
    )
    assert command[:3] == ["docker", "run", "--rm"]
    assert ["-v", "/d:/d"] == command[command.index("img:1") - 2 : command.index("img:1")]


def test_python_package_interpreter() -> None:
    import sys

    blob = Blob(digest="0" * 64, source=None, suffix=".zip")  # type: ignore[arg-type]
    exe = ClusterExecutable(name="app", kind="python", blob=blob, module="m")
    remote, _, _ = runtime_command(
        exe, xc.Slurm(cluster="c"), {blob.name: "/z"}, gpus=False, scheduler="slurm"
    )
    assert remote[0] == f"python{sys.version_info.major}.{sys.version_info.minor}"
    local, env, _ = runtime_command(
        exe, xc.Local(), {blob.name: "/z"}, gpus=False, scheduler="local"
    )
    assert local[0] == "python3"
    if sys.prefix != sys.base_prefix:  # run from a virtualenv: its bin first, as if activated
        assert env["PATH"].split(":")[0] == f"{sys.prefix}/bin" and env["VIRTUAL_ENV"] == sys.prefix
    explicit = ClusterExecutable(
        name="app", kind="python", blob=blob, module="m", python="/opt/py/bin/python"
    )
    assert (
        runtime_command(
            explicit, xc.Slurm(cluster="c"), {blob.name: "/z"}, gpus=False, scheduler="slurm"
        )[0][0]
        == "/opt/py/bin/python"
    )
