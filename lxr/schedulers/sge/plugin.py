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
)
