#!/usr/bin/env python3
"""lxm3 style: one ``ArrayJob`` with per-task args and env vars (a single env entry is used
for every task). Only the two import lines differ from an lxm3 launcher.

    lxr launch examples/xm/launch_array_job.py --wait
"""

from absl import app
from xmanager import xm

from lxr import xm_cluster


def main(_: list[str]) -> None:
    with xm_cluster.create_experiment(experiment_title="array-demo") as experiment:
        executor = xm_cluster.Local()
        config = xm_cluster.Fileset(files={"py_package/config.txt": "config.txt"})
        spec = xm_cluster.PythonPackage(
            path="py_package",
            entrypoint=xm_cluster.ModuleName("sweep_demo.train"),
            resources=[config],
        )
        [executable] = experiment.package(
            [
                xm.Packageable(
                    spec,
                    executor_spec=executor.Spec(),
                    args={"config": config.get_path("config.txt", executor.Spec())},
                )
            ]
        )
        experiment.add(
            xm_cluster.ArrayJob(
                executable=executable,
                executor=executor,
                args=[{"seed": seed} for seed in range(4)],
                env_vars=[{"TASK": "array-demo"}],
            )
        )


if __name__ == "__main__":
    app.run(main)
