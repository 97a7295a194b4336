#!/usr/bin/env python3
"""The local sweep, on Grid Engine: the cluster ``sge-dev`` (see examples/sge/) must be applied.

    lxr apply -f examples/sge/cluster.yaml
    lxr launch examples/xm/launch_sge.py --wait -- --queue=all.q

An lxm3 script for SGE differs only in its two import lines. lxr packs the work units into one
``qsub -t`` array and, unlike lxm3, reads their status back.
"""

from absl import app, flags
from xmanager import xm

from lxr import xm_cluster

_CLUSTER = flags.DEFINE_string("cluster", "sge-dev", "The lxr Cluster to run on.")
_QUEUE = flags.DEFINE_string("queue", "all.q", "Grid Engine queue (-q).")
_LRS = flags.DEFINE_list("lrs", ["0.1", "0.03"], "Learning rates to sweep.")


def main(_: list[str]) -> None:
    with xm_cluster.create_experiment(experiment_title="sweep-demo-sge") as experiment:
        executor = xm_cluster.GridEngine(
            cluster=_CLUSTER.value,
            queue=_QUEUE.value,
            walltime="0:10:00",
            requirements=xm.JobRequirements(cpu=1, ram=1 * xm.GiB),
        )
        spec = xm_cluster.PythonPackage(
            path="py_package", entrypoint=xm_cluster.ModuleName("sweep_demo.train")
        )
        [executable] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])
        for lr in _LRS.value:
            experiment.add(xm.Job(executable, executor, args={"lr": float(lr), "seed": 0}))


if __name__ == "__main__":
    app.run(main)
