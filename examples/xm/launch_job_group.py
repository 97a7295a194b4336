#!/usr/bin/env python3
"""A server and a client, co-scheduled: xmanager-slurm's job-group idiom on the cluster
``dev-slurm`` (see examples/slurm/).

    lxr apply -f examples/slurm/cluster.yaml
    lxr launch examples/xm/launch_job_group.py --wait -- --partition=multi

``experiment.add(xm.JobGroup(server=..., client=...), args={"server": {...}, "client": {...}})``
is one lxr work unit of two components: one Slurm heterogeneous job, each part on its own
nodes, the client finding the server in ``LXR_COMPONENT_SERVER_NODELIST``.
"""

import random

from absl import app, flags
from xmanager import xm

from lxr import xm_cluster

_CLUSTER = flags.DEFINE_string("cluster", "dev-slurm", "The lxr Cluster to run on.")
_PARTITION = flags.DEFINE_string("partition", "multi", "Slurm partition.")


def main(_: list[str]) -> None:
    with xm_cluster.create_experiment(experiment_title="job-group-demo") as experiment:
        executor = xm_cluster.Slurm(
            cluster=_CLUSTER.value,
            partition=_PARTITION.value,
            time="0:10:00",
            requirements=xm.JobRequirements(cpu=1, ram=256 * xm.MiB),
        )
        spec = xm_cluster.PythonPackage(
            path="py_package", entrypoint=xm_cluster.ModuleName("sweep_demo.rendezvous")
        )
        [executable] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])
        port = random.randint(20000, 29999)
        experiment.add(
            xm.JobGroup(
                server=xm.Job(executable, executor, name="server"),
                client=xm.Job(executable, executor, name="client"),
            ),
            args={
                "server": {"args": {"role": "server", "port": port}},
                "client": {"args": {"role": "client", "port": port}},
            },
        )


if __name__ == "__main__":
    app.run(main)
