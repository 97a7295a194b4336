#!/usr/bin/env python3
"""Train, then evaluate: xmanager-slurm's job-dependencies example on lxr.

    lxr launch examples/xm/job_dependencies/launch.py             # the local cluster
    lxr apply -f examples/slurm/cluster.yaml
    lxr launch examples/xm/job_dependencies/launch.py -- --cluster=dev-slurm

Five train work units (one seed each), then five eval work units, eval ``k`` with
``dependency=train_wus[k].after_completed()``: it starts once train ``k`` succeeded (and
stops, reason ``DependencyFailed``, if that train unit fails for good). The dependencies are
written with the work units: the controller holds each eval back, across resubmissions of a
preempted trainer, so the launch returns as soon as everything is written. ``--wait`` keeps
it running to print each unit's status as it finishes, as xmanager-slurm's example does.

What differs from that example: the imports (``lxr.xm_cluster`` for ``xm_slurm``), the
packaging (a ``PythonPackage`` instead of a container image), the cluster (a flag instead of
``xm_slurm.contrib.clusters.mila()``), and the final wait is behind ``--wait``.
"""

import asyncio
import datetime as dt
import pathlib

from absl import app, flags
from xmanager import xm

from lxr import xm_cluster

_CLUSTER = flags.DEFINE_string("cluster", "local", "The lxr Cluster to run on.")
_PARTITION = flags.DEFINE_string("partition", "batch", "Slurm partition (not for local).")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Train work units (one seed each).")
_SLEEP = flags.DEFINE_float("sleep", 2.0, "Seconds each train unit takes.")
_WORKDIR = flags.DEFINE_string(
    "workdir", "/tmp/lxr-job-dependencies", "Where train writes its results (one per unit)."
)
_WAIT = flags.DEFINE_bool("wait", False, "Wait for every unit and print its status.")


def _executor() -> xm.Executor:
    requirements = xm_cluster.JobRequirements(CPU=1, RAM=1.0 * xm.GiB)
    if _CLUSTER.value == "local":
        return xm_cluster.Local(requirements=requirements)
    return xm_cluster.Slurm(
        requirements=requirements,
        cluster=_CLUSTER.value,
        partition=_PARTITION.value,
        time=dt.timedelta(hours=1),
    )


@xm.run_in_asyncio_loop
async def main(_: list[str]) -> None:
    async with xm_cluster.create_experiment("My Experiment") as experiment:
        train_executor, eval_executor = _executor(), _executor()
        spec = train_executor.Spec()
        [train_executable, eval_executable] = experiment.package(
            [
                xm.Packageable(
                    xm_cluster.PythonPackage(
                        path=".", entrypoint=xm_cluster.ModuleName("jobdeps.train")
                    ),
                    executor_spec=spec,
                ),
                xm.Packageable(
                    xm_cluster.PythonPackage(
                        path=".", entrypoint=xm_cluster.ModuleName("jobdeps.eval")
                    ),
                    executor_spec=spec,
                ),
            ]
        )
        workdir = pathlib.Path(_WORKDIR.value) / str(experiment.experiment_id)

        async def make_train_job(wu: xm.WorkUnit, args: list[str]) -> None:
            output = (workdir / f"{wu.work_unit_id}" / "result.json").as_posix()
            await wu.add(
                xm.Job(
                    executable=train_executable,
                    executor=train_executor,
                    args=xm.merge_args(["--output_file", output, "--sleep", _SLEEP.value], args),
                )
            )

        train_wus = await experiment.add(
            make_train_job, args=[{"args": ["--seed", seed]} for seed in range(_SEEDS.value)]
        )

        eval_wus = await experiment.add(
            xm.Job(executable=eval_executable, executor=eval_executor),
            args=[
                {
                    "args": [
                        "--input_file",
                        (workdir / f"{wu.work_unit_id}" / "result.json").as_posix(),
                    ]
                }
                for wu in train_wus
            ],
            dependency=[train_wu.after_completed() for train_wu in train_wus],
        )

        if _WAIT.value:
            waits = [wu.wait_until_complete() for wu in [*train_wus, *eval_wus]]
            for done in asyncio.as_completed(waits):
                wu = await done
                print(f"work unit {wu.work_unit_id} finished: {wu.get_status()!r}")


if __name__ == "__main__":
    app.run(main)
