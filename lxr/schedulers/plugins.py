"""Scheduler plugins: how lxr finds its drivers.

A scheduler is a Python distribution that declares one entry point in the group
:data:`ENTRY_POINT_GROUP`, named after the scheduler (``Cluster.spec.scheduler``), whose object
is a :class:`SchedulerPlugin`::

    [project.entry-points."lxr.schedulers"]
    pbs = "lxr_pbs.plugin:PLUGIN"

lxr's own schedulers (``local``, ``slurm``, ``sge``) are declared the same way in lxr's
``pyproject.toml``: adding one is a package and no edit elsewhere. The plugin object lives in a
small module of its own (the options models and the driver's import path), so validating a
Cluster never imports a driver, its transport or SSH.

This module imports nothing of lxr: the schema (``lxr.api``) asks it which schedulers exist.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from lxr.schedulers.base import Driver

__all__ = [
    "ENTRY_POINT_GROUP",
    "GANG_FEATURES",
    "NoOptions",
    "OptionsModel",
    "SchedulerPlugin",
    "UnknownScheduler",
    "plugin",
    "plugins",
    "scheduler_names",
]

#: the entry-point group scheduler plugins register in
ENTRY_POINT_GROUP = "lxr.schedulers"


#: the features of a multi-process work unit a scheduler may support (resource field names, and
#: ``components`` for co-scheduled heterogeneous parts)
GANG_FEATURES = ("nodes", "tasksPerNode", "gpusPerTask", "memoryPerCpu", "components")


class OptionsModel(BaseModel):
    """Base of a scheduler's options models: camelCase in files, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )


class NoOptions(OptionsModel):
    """A scheduler without options of its own."""


@dataclass(frozen=True)
class SchedulerPlugin:
    """What a scheduler plugin declares.

    ``driver`` is the ``module:Class`` of its :class:`~lxr.schedulers.base.Driver`, imported
    only when a controller needs it. ``options`` validates the Cluster's ``spec.<name>:``
    section, ``resources`` each experiment's ``resources.<name>:`` section. ``poll_interval`` is
    how often a busy cluster of this kind is observed (seconds). ``legacy_cluster_fields`` and
    ``legacy_resource_fields`` are older spellings at the top of ``spec`` / ``resources`` that
    are still read, and moved into the plugin's section.
    """

    name: str
    driver: str
    options: type[OptionsModel] = NoOptions
    resources: type[OptionsModel] | None = None
    poll_interval: float = 2.0
    description: str = ""
    legacy_cluster_fields: tuple[str, ...] = ()
    legacy_resource_fields: tuple[str, ...] = ()
    #: what a work unit may ask of this scheduler beyond one process on one node, by field
    #: name (:data:`GANG_FEATURES`); a plugin that declares none runs one task per work unit
    features: frozenset[str] = frozenset()
    #: why a feature is missing, said when a work unit asks for it (feature -> reason)
    refusals: Mapping[str, str] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def load_driver(self) -> type[Driver]:
        """The driver class (imported on first use)."""
        if "driver" not in self._cache:
            module, _, name = self.driver.partition(":")
            self._cache["driver"] = getattr(importlib.import_module(module), name)
        return self._cache["driver"]


class UnknownScheduler(ValueError):
    """No installed plugin has this name."""

    def __init__(self, name: str) -> None:
        known = ", ".join(scheduler_names()) or "none"
        super().__init__(
            f"unknown scheduler {name!r} (installed: {known}; a scheduler is a package that "
            f"declares an entry point in the {ENTRY_POINT_GROUP!r} group)"
        )


@cache
def plugins() -> Mapping[str, SchedulerPlugin]:
    """Every installed scheduler plugin, by name (read once per process)."""
    found: dict[str, SchedulerPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue  # the first distribution on the path wins, as for console scripts
        obj = ep.load()
        if not isinstance(obj, SchedulerPlugin) or obj.name != ep.name:
            raise TypeError(
                f"entry point {ep.name} = {ep.value} in {ENTRY_POINT_GROUP!r} is not a "
                f"SchedulerPlugin named {ep.name!r}"
            )
        found[ep.name] = obj
    return dict(sorted(found.items()))


def scheduler_names() -> list[str]:
    """The names of the installed schedulers, sorted."""
    return list(plugins())


def plugin(name: str) -> SchedulerPlugin:
    """The plugin called ``name``; :class:`UnknownScheduler` if none is installed."""
    try:
        return plugins()[name]
    except KeyError:
        raise UnknownScheduler(name) from None
