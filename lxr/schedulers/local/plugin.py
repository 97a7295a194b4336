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
)
