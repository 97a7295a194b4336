"""UCL's Grid Engine clusters, lxm3's preset: ``ucl.UclGridEngine(requirements, walltime=...)``.

Generic requirements (``xm_cluster.JobRequirements(cpu=4, ram=8 * xm.GB, gpu=1)``) become the
``-l`` resources and parallel environments each UCL cluster expects:

- ``myriad``: memory as ``-l mem``, GPUs as ``-l gpu=N``, more than one CPU as ``-pe smp N``,
  and ``module load singularity-env``.
- ``cs``: memory as ``-l h_vmem`` and ``-l tmem`` (``h_vmem`` left out for GPU jobs), GPUs as
  ``-l gpu=true`` (more than one: ``-pe gpu N``), more than one CPU as ``-pe smp N``.

The cluster is the lxr Cluster named ``cs`` or ``myriad``: ``cluster=`` if given, else the
default cluster (``$LXR_CLUSTER``, else ``lxr config set-cluster``), as lxm3 takes it from
``$LXM_CLUSTER`` or its config file. Adjust ``executor.resources`` and
``executor.parallel_environments`` afterwards to customise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxr.api.user_config import default_cluster
from lxr.xm_cluster.executors import GridEngine
from lxr.xm_cluster.requirements import requirements_to_resources

__all__ = ["SITES", "UclGridEngine"]


def _amounts(requirements: Any) -> tuple[int, int | None, int]:
    """``(cpus, memory in MiB or None, gpus)`` of generic requirements."""
    res = requirements_to_resources(requirements)
    memory = None
    if res.memory is not None:
        memory = int(res.memory.removesuffix("Mi"))
    return res.cpus or 1, memory, res.gpus or 0


def _myriad(requirements: Any) -> dict[str, Any]:
    cpus, memory, gpus = _amounts(requirements)
    resources: dict[str, Any] = {}
    pes: dict[str, int] = {}
    if memory is not None:
        resources["mem"] = f"{memory}M"
    if gpus > 0:
        resources["gpu"] = gpus
    if cpus > 1:
        pes["smp"] = cpus
    return {"resources": resources, "parallel_environments": pes, "modules": ["singularity-env"]}


def _cs(requirements: Any) -> dict[str, Any]:
    cpus, memory, gpus = _amounts(requirements)
    resources: dict[str, Any] = {}
    pes: dict[str, int] = {}
    if memory is not None:
        if gpus == 0:  # GPU nodes are not limited by h_vmem
            resources["h_vmem"] = f"{memory}M"
        resources["tmem"] = f"{memory}M"
    if gpus > 0:
        resources["gpu"] = "true"
        if gpus > 1:
            pes["gpu"] = gpus
    if cpus > 1:
        pes["smp"] = cpus
    return {"resources": resources, "parallel_environments": pes}


#: the preset of each UCL cluster, by lxr Cluster name
SITES: dict[str, Callable[[Any], dict[str, Any]]] = {"cs": _cs, "myriad": _myriad}


def UclGridEngine(  # lxm3's name
    requirements: Any,
    walltime: int | float | str | None = None,
    **kwargs: Any,
) -> GridEngine:
    """A :class:`~lxr.xm_cluster.GridEngine` for UCL's ``cs`` or ``myriad`` cluster.

    ``walltime``: seconds (``10 * xm.Min``) or ``"H:MM:SS"``; ``kwargs``: any other
    GridEngine option (``queue=``, ``cluster=``, ...)."""
    if getattr(requirements, "location", None):
        raise ValueError("UclGridEngine: requirements.location is not supported; use cluster=")
    cluster = kwargs.pop("cluster", None) or default_cluster()
    if cluster not in SITES:
        raise ValueError(
            f"UclGridEngine: cluster {cluster!r} has no UCL preset; name one of "
            f"{sorted(SITES)} with cluster=, LXR_CLUSTER or `lxr config set-cluster`"
        )
    options = SITES[cluster](requirements)
    if "modules" in kwargs:
        options["modules"] = [*options.get("modules", []), *kwargs.pop("modules")]
    return GridEngine(walltime=walltime, cluster=cluster, **options, **kwargs)
