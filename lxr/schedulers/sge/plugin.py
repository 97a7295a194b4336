"""The Grid Engine scheduler plugin (entry point ``sge`` in the ``lxr.schedulers`` group): its
options on the Cluster (``spec.sge``) and on an experiment's resources (``resources.sge``)."""

from __future__ import annotations

from pydantic import Field

from lxr.schedulers.plugins import OptionsModel, SchedulerPlugin

__all__ = ["PLUGIN", "SGEOptions", "SGEResources"]


class SGEOptions(OptionsModel):
    """A Grid Engine cluster's site settings (``spec.sge``)."""

    gpu_resource: str = Field(
        default="gpu", description="the complex that requests GPUs (-l NAME=N)"
    )
    parallel_environment: str = Field(
        default="smp", description="the parallel environment of multi-CPU tasks (-pe NAME N)"
    )


class SGEResources(OptionsModel):
    """What a task asks only of Grid Engine (``resources.sge``)."""

    queue: str | None = Field(default=None, description="queue (-q); default: partition")
    project: str | None = Field(default=None, description="project (-P)")
    parallel_environment: str | None = Field(
        default=None,
        description="the parallel environment of this work unit's slots (-pe NAME N); default: "
        "the cluster's spec.sge.parallelEnvironment",
    )


PLUGIN = SchedulerPlugin(
    name="sge",
    driver="lxr.schedulers.sge.driver:SGEDriver",
    options=SGEOptions,
    resources=SGEResources,
    poll_interval=2.0,
    description="Sun / Son of Grid Engine",
    # the spellings before these fields moved into the sge sections: still read
    legacy_cluster_fields=("gpuResource", "parallelEnvironment"),
    legacy_resource_fields=("queue", "project"),
    # ranks are slots of a parallel environment (-pe NAME SLOTS), started over $PE_HOSTFILE;
    # h_vmem is per slot already
    features=frozenset({"nodes", "tasksPerNode", "memoryPerCpu"}),
    refusals={
        "components": "Grid Engine has no heterogeneous jobs, so components cannot be "
        "co-scheduled in one job (use a Slurm cluster, or one experiment per component)",
        "gpusPerTask": "Grid Engine requests GPUs per slot (-l gpu=N): use gpus",
    },
)
