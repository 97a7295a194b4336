"""The Slurm scheduler plugin (entry point ``slurm`` in the ``lxr.schedulers`` group)."""

from __future__ import annotations

from lxr.schedulers.plugins import SchedulerPlugin

__all__ = ["PLUGIN"]

PLUGIN = SchedulerPlugin(
    name="slurm",
    driver="lxr.schedulers.slurm.driver:SlurmDriver",
    poll_interval=2.0,
    description="Slurm",
    # several nodes and tasks per work unit (srun in one allocation), heterogeneous jobs
    features=frozenset({"nodes", "tasksPerNode", "gpusPerTask", "memoryPerCpu", "components"}),
)
