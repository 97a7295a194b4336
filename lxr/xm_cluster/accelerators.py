"""Accelerator names of launch scripts -> a cluster's own request (``spec.accelerators``).

``JobRequirements(a100=1)`` means "one A100" everywhere; what a site calls it differs: a Slurm
gres (``gpu:a100_80gb``), a Grid Engine complex (``gpu_a100``). The Cluster's table says it::

    accelerators: {a100: "gpu:a100", any: "gpu"}

``gpu=N``/``GPU=N`` ask for ``any``. With a table, a name it lacks fails at launch, listing
the table's keys; without one, a model passes through as a Slurm gres type
(``--gres=gpu:a100:N``) and Grid Engine asks for its ``gpuResource``.
"""

from __future__ import annotations

from lxr.api.resources import ClusterSpec, Resources
from lxr.xm_cluster.requirements import ANY_ACCELERATOR

__all__ = ["resolve_accelerator"]


def _table_value(spec: ClusterSpec, key: str, cluster: str) -> str | None:
    table = {k.lower(): v for k, v in spec.accelerators.items()}
    if not table:
        return None
    if key in table:
        return table[key]
    if key == ANY_ACCELERATOR:
        return None  # any GPU: the scheduler's plain request
    raise ValueError(
        f"cluster {cluster} has no accelerator {key!r}: its spec.accelerators has "
        f"{', '.join(sorted(table))}"
    )


def resolve_accelerator(resources: Resources, spec: ClusterSpec, cluster: str) -> Resources:
    """``resources`` with its GPU request in the cluster's own terms."""
    if not resources.gpus:
        return resources
    key = (resources.gpu_type or ANY_ACCELERATOR).lower()
    value = _table_value(spec, key, cluster)
    if value is None:
        return resources
    data = resources.model_dump(exclude_none=True)
    count = resources.gpus
    extra = dict(data.get("extra", {}))
    if spec.scheduler == "sge":
        name, *more = [part.strip() for part in value.split(",") if part.strip()]
        data.pop("gpu_type", None)
        if name != getattr(spec.options, "gpu_resource", "gpu"):
            data.pop("gpus", None)  # asked as its own complex, below
            extra[name] = str(count)
        for item in more:
            k, _, v = item.partition("=")
            extra[k] = v
    else:
        parts = value.split(":")
        if parts[0] == "gpu" and len(parts) <= 2:
            data["gpu_type"] = parts[1] if len(parts) == 2 else None
        else:  # another gres (shard, mps, or a typed gpu with more fields): verbatim
            data.pop("gpus", None)
            data.pop("gpu_type", None)
            extra["gres"] = f"{value}:{count}"
    data["extra"] = extra
    return Resources.model_validate({k: v for k, v in data.items() if v is not None})
