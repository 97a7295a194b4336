#!/usr/bin/env python3
"""The local sweep, on Slurm: the cluster ``dev-slurm`` (see examples/slurm/) must be applied.

    lxr apply -f examples/slurm/cluster.yaml
    lxr launch examples/xm/launch_slurm.py --wait -- --partition=batch

Written in the xmanager-slurm idiom: ``experiment.add(job, args=[...])`` makes one work unit
per element; lxr packs them into one job array.
"""

from absl import app, flags
from xmanager import xm

from lxr import xm_cluster

_CLUSTER = flags.DEFINE_string("cluster", "dev-slurm", "The lxr Cluster to run on.")
_PARTITION = flags.DEFINE_string("partition", "batch", "Slurm partition.")
_LRS = flags.DEFINE_list("lrs", ["0.1", "0.03", "0.01"], "Learning rates to sweep.")


def main(_: list[str]) -> None:
    with xm_cluster.create_experiment(experiment_title="sweep-demo-slurm") as experiment:
        executor = xm_cluster.Slurm(
            cluster=_CLUSTER.value,
            partition=_PARTITION.value,
            time="0:10:00",
            requirements=xm.JobRequirements(cpu=1, ram=256 * xm.MiB),
        )
        spec = xm_cluster.PythonPackage(
            path="py_package", entrypoint=xm_cluster.ModuleName("sweep_demo.train")
        )
        [executable] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])
        experiment.add(
            xm.Job(executable, executor),
            args=[{"args": {"lr": float(lr), "seed": 0}} for lr in _LRS.value],
        )


if __name__ == "__main__":
    app.run(main)
