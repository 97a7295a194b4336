"""What a scheduler can run: a work unit of several processes (nodes, tasks per node), GPUs per
task, memory per CPU, co-scheduled components. Each scheduler plugin declares the features it
supports and why it lacks the others (:class:`~lxr.schedulers.plugins.SchedulerPlugin`); this
module turns a request into the messages that name what the cluster's scheduler cannot do,
checked when an experiment is applied or launched.
"""

from __future__ import annotations

from lxr.api.cluster import Resources
from lxr.schedulers.plugins import plugin

__all__ = ["asked_features", "unsupported"]


def asked_features(resources: Resources) -> list[tuple[str, str]]:
    """``(feature, what was asked)`` for every gang feature ``resources`` uses."""
    asked: list[tuple[str, str]] = []
    if (resources.nodes or 1) > 1:
        asked.append(("nodes", f"nodes: {resources.nodes}"))
    if (resources.tasks_per_node or 1) > 1:
        asked.append(("tasksPerNode", f"tasksPerNode: {resources.tasks_per_node}"))
    if resources.gpus_per_task:
        asked.append(("gpusPerTask", f"gpusPerTask: {resources.gpus_per_task}"))
    if resources.memory_per_cpu is not None:
        asked.append(("memoryPerCpu", f"memoryPerCpu: {resources.memory_per_cpu}"))
    return asked


def unsupported(
    scheduler: str, resources: Resources, *, components: int = 0, path: str = "spec.resources"
) -> list[str]:
    """One message per feature ``resources`` (or ``components`` co-scheduled parts) asks of
    ``scheduler`` that it cannot do, naming the field and the scheduler's reason."""
    p = plugin(scheduler)
    asked = [(f, f"{path}.{what}") for f, what in asked_features(resources)]
    if components:
        asked.append(("components", f"spec.components ({components} components)"))
    out = []
    for feature, what in asked:
        if feature in p.features:
            continue
        why = p.refusals.get(feature) or (
            f"the {p.description or scheduler} scheduler runs one process per work unit"
        )
        out.append(f"{what}: not possible on a {scheduler} cluster: {why}")
    return out
