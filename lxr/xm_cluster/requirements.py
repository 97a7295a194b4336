"""What a task needs: lxm3's and xmanager-slurm's ``JobRequirements``, and the one table from
requirements to lxr :class:`~lxr.api.resources.Resources`.

``xm_cluster.JobRequirements(cpu=4, ram=8 * xm.GiB, gpu=1)`` takes any accelerator name, in any
case: ``gpu``/``GPU`` (or ``any``) means any GPU; a model (``a100``, ``L40S``, ``A100_80GIB``)
is looked up in the cluster's ``spec.accelerators`` table at launch. XManager's own
``xm.JobRequirements`` is accepted as well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from lxr.api.resources import Resources

__all__ = [
    "ANY_ACCELERATOR",
    "JobRequirements",
    "accelerator_of",
    "requirements_to_resources",
]

_MIB = 1 << 20
#: the accelerator name that means "any GPU" (``gpu=1``, ``GPU=1``, XManager's ``local_gpu``)
ANY_ACCELERATOR = "any"
_ANY_NAMES = {"gpu", "any", "local_gpu"}
_CPU_NAMES = {"cpu"}
_MEMORY_NAMES = {"ram", "memory", "mem"}


class JobRequirements:
    """Resources of one task: ``JobRequirements(cpu=2, ram=4 * xm.GiB, a100=1)``.

    ``resources``: the same as a mapping (keys are names or ``xm.ResourceType`` members).
    ``location``: lxm3/XManager's placement hint, kept but not used by lxr (name the cluster
    on the executor). ``replicas``: processes of the work unit (ranks, started in one
    allocation: ``tasksPerNode``, over the executor's ``nodes``). xmanager-slurm's topology
    idiom works too: ``GPU="4x2"`` is 4 GPUs per task (``gpusPerTask``) and 2 replicas.
    """

    def __init__(
        self,
        resources: Mapping[Any, float | int | str] | None = None,
        *,
        location: str | None = None,
        replicas: int | None = None,
        **kw_resources: float | int | str,
    ) -> None:
        self.location = location
        self.task_requirements: dict[str, float] = {}
        self.accelerator: str | None = None
        #: per task and replicas of an accelerator topology (``GPU="4x2"``), if one was given
        self.topology: tuple[int, int] | None = None
        for key, value in [*(resources or {}).items(), *kw_resources.items()]:
            name = (getattr(key, "name", None) or str(key)).lower()
            if name in self.task_requirements:
                raise ValueError(f"JobRequirements: {name} is given twice")
            topology = re.fullmatch(r"(\d+)x(\d+)", value) if isinstance(value, str) else None
            if topology and name not in _CPU_NAMES | _MEMORY_NAMES:
                per_task, count = int(topology.group(1)), int(topology.group(2))
                if replicas not in (None, count):
                    raise ValueError(
                        f"JobRequirements: {name}={value!r} is {count} replicas, not "
                        f"replicas={replicas}"
                    )
                self.topology, replicas = (per_task, count), count
                value = per_task
            amount = float(value)
            if name not in _CPU_NAMES | _MEMORY_NAMES:
                if self.accelerator is not None:
                    raise ValueError(
                        f"JobRequirements: one accelerator kind per task ({self.accelerator} "
                        f"and {name} given)"
                    )
                self.accelerator = name
            self.task_requirements[name] = amount
        if replicas is not None and replicas < 1:
            raise ValueError(f"JobRequirements: replicas={replicas} (a work unit needs one)")
        self.replicas = replicas or 1

    def __repr__(self) -> str:
        items = [f"{k}={v:g}" for k, v in self.task_requirements.items()]
        if self.location:
            items.append(f"location={self.location!r}")
        return f"xm_cluster.JobRequirements({', '.join(items)})"


def accelerator_of(name: str) -> str:
    """The accelerator table key a requirement name stands for: ``gpu`` -> ``any``,
    ``A100`` -> ``a100``."""
    name = name.lower()
    return ANY_ACCELERATOR if name in _ANY_NAMES else name


def _items(req: Any) -> tuple[list[tuple[str, float]], str | None]:
    """``(name, amount)`` pairs and the accelerator name of either kind of requirements."""
    if isinstance(req, JobRequirements):
        return list(req.task_requirements.items()), req.accelerator
    # XManager's xm.JobRequirements: ResourceType keys
    accelerator = getattr(req, "accelerator", None)
    pairs = [(r.name.lower(), float(v)) for r, v in req.task_requirements.items()]
    return pairs, accelerator.name.lower() if accelerator is not None else None


def _topology(req: Any) -> tuple[int, int] | None:
    """``(accelerators per task, replicas)`` of a two-dimensional accelerator topology
    (``GPU="4x2"``), for lxr's and XManager's requirements; None without one."""
    if isinstance(req, JobRequirements):
        return req.topology
    dims = list(getattr(getattr(req, "topology", None), "dimensions", None) or [])
    return (int(dims[0]), int(dims[1])) if len(dims) == 2 else None


def requirements_to_resources(req: Any, nodes: int | None = None) -> Resources:
    """``JobRequirements(cpu=4, ram=8 * xm.GiB, a100=1)`` -> ``Resources(cpus=4,
    memory='8192Mi', gpus=1, gpu_type='a100')``; ``gpu=1`` -> ``gpus=1`` (any model).

    ``replicas=N`` is N ranks of one work unit: ``tasksPerNode=N`` on one node, or
    ``tasksPerNode=N/nodes`` over the executor's ``nodes``. With an accelerator topology
    (``GPU="4x2"``) the accelerators are per task (``gpusPerTask``); ``ram`` is per task, so
    it becomes memory per node (times the node's tasks).

    The model name is resolved against the cluster's accelerator table at launch
    (:func:`lxr.xm_cluster.accelerators.resolve_accelerator`)."""
    if req is None:
        return Resources(nodes=nodes) if nodes and nodes > 1 else Resources()
    topology = _topology(req)
    replicas = getattr(req, "replicas", 1) or 1
    if topology is not None and replicas == 1:
        replicas = topology[1]
    nodes = nodes or 1
    if replicas % nodes:
        raise ValueError(
            f"replicas={replicas} over nodes={nodes}: each node runs the same number of "
            "tasks, so replicas must be a multiple of nodes"
        )
    per_node = replicas // nodes
    pairs, accelerator = _items(req)
    data: dict[str, Any] = {}
    if nodes > 1 or per_node > 1:
        data["nodes"], data["tasks_per_node"] = nodes, per_node
    for name, amount in pairs:
        if name in _CPU_NAMES:
            data["cpus"] = max(1, math.ceil(amount))
        elif name in _MEMORY_NAMES:
            data["memory"] = f"{max(1, math.ceil(amount * per_node / _MIB))}Mi"
        elif name == accelerator:
            if name.startswith("tpu"):
                raise ValueError(f"{name.upper()}: TPUs are not available on lxr clusters")
            if amount <= 0:
                continue
            gpus = max(1, math.ceil(amount if topology is None else topology[0]))
            if topology is not None or "nodes" in data:
                data["gpus_per_task"] = gpus
            else:
                data["gpus"] = gpus
            if accelerator_of(name) != ANY_ACCELERATOR:
                data["gpu_type"] = name
        else:
            raise ValueError(f"JobRequirements: {name.upper()} is not supported by lxr")
    return Resources.model_validate(data)
