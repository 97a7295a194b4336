"""What a task needs: lxm3's and xmanager-slurm's ``JobRequirements``, and the one table from
requirements to lxr :class:`~lxr.api.resources.Resources`.

``xm_cluster.JobRequirements(cpu=4, ram=8 * xm.GiB, gpu=1)`` takes any accelerator name, in any
case: ``gpu``/``GPU`` (or ``any``) means any GPU; a model (``a100``, ``L40S``, ``A100_80GIB``)
is looked up in the cluster's ``spec.accelerators`` table at launch. XManager's own
``xm.JobRequirements`` is accepted as well.
"""

from __future__ import annotations

import math
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
    on the executor). ``replicas``: must be 1, lxr runs one task per work unit.
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
        self.replicas = replicas or 1
        self.task_requirements: dict[str, float] = {}
        self.accelerator: str | None = None
        for key, value in [*(resources or {}).items(), *kw_resources.items()]:
            name = (getattr(key, "name", None) or str(key)).lower()
            if name in self.task_requirements:
                raise ValueError(f"JobRequirements: {name} is given twice")
            amount = float(value)
            if name not in _CPU_NAMES | _MEMORY_NAMES:
                if self.accelerator is not None:
                    raise ValueError(
                        f"JobRequirements: one accelerator kind per task ({self.accelerator} "
                        f"and {name} given)"
                    )
                self.accelerator = name
            self.task_requirements[name] = amount

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


def requirements_to_resources(req: Any) -> Resources:
    """``JobRequirements(cpu=4, ram=8 * xm.GiB, a100=1)`` -> ``Resources(cpus=4,
    memory='8192Mi', gpus=1, gpu_type='a100')``; ``gpu=1`` -> ``gpus=1`` (any model).

    The model name is resolved against the cluster's accelerator table at launch
    (:func:`lxr.xm_cluster.accelerators.resolve_accelerator`)."""
    if req is None:
        return Resources()
    replicas = getattr(req, "replicas", 1)
    if replicas not in (None, 1):
        raise ValueError(f"replicas={replicas}: lxr runs one task per work unit")
    pairs, accelerator = _items(req)
    data: dict[str, Any] = {}
    for name, amount in pairs:
        if name in _CPU_NAMES:
            data["cpus"] = max(1, math.ceil(amount))
        elif name in _MEMORY_NAMES:
            data["memory"] = f"{max(1, math.ceil(amount / _MIB))}Mi"
        elif name == accelerator:
            if name.startswith("tpu"):
                raise ValueError(f"{name.upper()}: TPUs are not available on lxr clusters")
            if amount <= 0:
                continue
            data["gpus"] = max(1, math.ceil(amount))
            if accelerator_of(name) != ANY_ACCELERATOR:
                data["gpu_type"] = name
        else:
            raise ValueError(f"JobRequirements: {name.upper()} is not supported by lxr")
    return Resources.model_validate(data)
