"""The plugin object the ``lxr.schedulers`` entry point names: its options on the Cluster
(``spec.echo``) and on an experiment's resources (``resources.echo``)."""

from __future__ import annotations

from lxr.schedulers.plugins import OptionsModel, SchedulerPlugin

__all__ = ["PLUGIN", "EchoOptions", "EchoResources"]


class EchoOptions(OptionsModel):
    """``spec.echo`` on a Cluster."""

    greeting: str = "hello"


class EchoResources(OptionsModel):
    """``resources.echo`` of an experiment."""

    color: str | None = None


PLUGIN = SchedulerPlugin(
    name="echo",
    driver="lxr_echo_scheduler.driver:EchoDriver",
    options=EchoOptions,
    resources=EchoResources,
    poll_interval=0.2,
    description="a toy scheduler",
)
