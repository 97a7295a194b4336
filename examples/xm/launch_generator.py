#!/usr/bin/env python3
"""A job generator: ``async def make_job(work_unit, **args)`` adds the unit's job, with
``async with`` and ``@xm.run_in_asyncio_loop`` as in XManager's own examples.

    lxr launch examples/xm/launch_generator.py --wait
"""

import itertools

from absl import app
from xmanager import xm

from lxr import xm_cluster


@xm.run_in_asyncio_loop
async def main(_: list[str]) -> None:
    async with xm_cluster.create_experiment(experiment_title="generator-demo") as experiment:
        executor = xm_cluster.Local(requirements=xm.JobRequirements(cpu=1))
        spec = xm_cluster.PythonPackage(
            path="py_package", entrypoint=xm_cluster.ModuleName("sweep_demo.train")
        )
        [executable] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])

        async def make_job(work_unit: xm.WorkUnit, **args: object) -> None:
            work_unit.add(
                xm.Job(
                    executable, executor, args=args, env_vars={"TASK": str(work_unit.work_unit_id)}
                )
            )

        for lr, seed in itertools.product([0.1, 0.01], [0, 1]):
            experiment.add(make_job, args={"lr": lr, "seed": seed})


if __name__ == "__main__":
    app.run(main)
