"""The local scheduler plugin (entry point ``local`` in the ``lxr.schedulers`` group): tasks run
as processes of this machine, observed often (it costs no remote command)."""

from __future__ import annotations

from lxr.schedulers.plugins import SchedulerPlugin

__all__ = ["PLUGIN"]

PLUGIN = SchedulerPlugin(
    name="local",
    driver="lxr.schedulers.local.driver:LocalDriver",
    poll_interval=0.5,
    description="this machine",
    refusals={
        "nodes": "the local cluster is this one machine",
        "tasksPerNode": "the local scheduler starts one process per work unit (use a Slurm or "
        "Grid Engine cluster for several ranks)",
        "gpusPerTask": "the local scheduler does not hand out GPUs",
        "memoryPerCpu": "the local scheduler does not limit memory",
        "components": "the local scheduler has no co-scheduled jobs",
    },
)
