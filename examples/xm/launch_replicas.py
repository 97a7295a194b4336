#!/usr/bin/env python3
"""Four ranks of one work unit: ``xm.JobRequirements(replicas=4)`` on the cluster ``dev-slurm``
(see examples/slurm/), spread over ``nodes=2``.

    lxr apply -f examples/slurm/cluster.yaml
    lxr launch examples/xm/launch_replicas.py --wait -- --partition=multi

Each rank gets MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, NODE_RANK and
LOCAL_WORLD_SIZE, as torchrun would set them, and runs a TCP all-gather.
"""

from absl import app, flags
from xmanager import xm

from lxr import xm_cluster

_CLUSTER = flags.DEFINE_string("cluster", "dev-slurm", "The lxr Cluster to run on.")
_PARTITION = flags.DEFINE_string("partition", "multi", "Slurm partition.")
_NODES = flags.DEFINE_integer("nodes", 2, "Nodes the replicas are spread over.")


def main(_: list[str]) -> None:
    with xm_cluster.create_experiment(experiment_title="replicas-demo") as experiment:
        executor = xm_cluster.Slurm(
            cluster=_CLUSTER.value,
            partition=_PARTITION.value,
            time="0:10:00",
            requirements=xm.JobRequirements(cpu=1, ram=128 * xm.MiB, replicas=4),
            nodes=_NODES.value,
        )
        spec = xm_cluster.PythonPackage(
            path="py_package", entrypoint=xm_cluster.ModuleName("sweep_demo.rendezvous")
        )
        [executable] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])
        experiment.add(xm.Job(executable, executor))


if __name__ == "__main__":
    app.run(main)
