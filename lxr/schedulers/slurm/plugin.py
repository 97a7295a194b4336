"""The Slurm scheduler plugin (entry point ``slurm`` in the ``lxr.schedulers`` group)."""

from __future__ import annotations

from lxr.schedulers.plugins import SchedulerPlugin

__all__ = ["PLUGIN"]

PLUGIN = SchedulerPlugin(
    name="slurm",
    driver="lxr.schedulers.slurm.driver:SlurmDriver",
    poll_interval=2.0,
    description="Slurm",
)
