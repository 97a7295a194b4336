"""Executors: where a job runs (which lxr Cluster) and what it asks the scheduler for.

``xm.JobRequirements`` and every executor option map to lxr :class:`~lxr.api.resources.Resources`
in one place, :func:`executor_resources` (the drivers turn those into ``sbatch``/``qsub``
flags), so the mapping table is tested once.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attr
from xmanager import xm

from lxr.api.resources import RequeuePolicy, Resources

__all__ = [
    "ClusterExecutor",
    "ExecutorSpec",
    "GridEngine",
    "Local",
    "Slurm",
    "duration_seconds",
    "executor_resources",
    "requirements_to_resources",
]

_MIB = 1 << 20
#: accelerators without a model name: any GPU
_ANY_GPU = {"LOCAL_GPU"}


def duration_seconds(value: int | float | str | datetime.timedelta | None) -> int | None:
    """Seconds from an int, a timedelta, or Slurm's time formats (``MM``, ``MM:SS``,
    ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``)."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds())
    if isinstance(value, int | float):
        return int(value)
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not match:
        raise ValueError(f"not a duration: {value!r} (e.g. 3600, '1:00:00', '2-00:00:00')")
    days, a, b, c = match.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
        return int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    if len(parts) == 1:  # minutes
        return parts[0] * 60
    if len(parts) == 2:  # MM:SS
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def requirements_to_resources(req: xm.JobRequirements | None) -> Resources:
    """``xm.JobRequirements(cpu=4, ram=8 * xm.GiB, a100=1)`` -> ``Resources(cpus=4,
    memory='8192Mi', gpus=1, gpu_type='a100')``."""
    if req is None:
        return Resources()
    replicas = getattr(req, "replicas", 1)
    if replicas not in (None, 1):
        raise ValueError(f"replicas={replicas}: lxr runs one task per work unit")
    data: dict[str, Any] = {}
    for resource, amount in req.task_requirements.items():
        name = resource.name
        if name == "CPU":
            data["cpus"] = max(1, math.ceil(amount))
        elif name in ("RAM", "MEMORY"):
            data["memory"] = f"{max(1, math.ceil(amount / _MIB))}Mi"
        elif req.accelerator is not None and resource == req.accelerator:
            if name.startswith("TPU"):
                raise ValueError(f"{name}: TPUs are not available on lxr clusters")
            data["gpus"] = max(1, math.ceil(amount))
            if name not in _ANY_GPU:
                data["gpu_type"] = name.lower()
        else:
            raise ValueError(f"JobRequirements: {name} is not supported by lxr")
    return Resources.model_validate(data)


@attr.s(auto_attribs=True)
class ExecutorSpec(xm.ExecutorSpec):
    """The spec every lxr executor shares: packaging does not depend on the cluster."""


@attr.s(auto_attribs=True, kw_only=True)
class ClusterExecutor(xm.Executor):
    """Options every executor has.

    ``cluster``: the lxr Cluster to run on. ``requirements``: what each task needs.
    ``container_runtime``: ``singularity``, ``apptainer`` or ``podman`` for :class:`Container`
    executables; ``container_options``: extra flags for it.
    """

    cluster: str = "local"
    requirements: xm.JobRequirements | None = None
    container_runtime: str = "singularity"
    container_options: Sequence[str] = attr.Factory(list)

    @classmethod
    def Spec(cls) -> ExecutorSpec:  # noqa: N802 - xmanager's name
        """The executor spec packaging is asked for."""
        return ExecutorSpec()

    def resources(self) -> Resources:
        """What each task asks the scheduler for."""
        return requirements_to_resources(self.requirements)

    def requeue_policy(self) -> RequeuePolicy:
        """Who brings back preempted tasks."""
        return RequeuePolicy.CONTROLLER


@attr.s(auto_attribs=True, kw_only=True)
class Local(ClusterExecutor):
    """Run on this machine (lxr's ``local`` cluster), or on another applied local cluster."""


def _directives(items: Sequence[str]) -> dict[str, str]:
    """``["--exclusive", "--constraint=v100"]`` -> ``{"exclusive": "", "constraint": "v100"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.lstrip("-").partition("=")
        if not key:
            raise ValueError(f"not a directive: {item!r}")
        out[key] = value
    return out


@attr.s(auto_attribs=True, kw_only=True)
class Slurm(ClusterExecutor):
    """Run on a Slurm cluster: ``Slurm(cluster="dev-slurm", partition="batch", time="1:00:00")``.

    ``extra_directives``: more ``sbatch`` options (``"--constraint=v100"``). ``requeue``: let
    Slurm requeue preempted tasks itself (``--requeue``; lxr then records restarts and never
    resubmits). ``signal``: ``--signal`` (e.g. ``"USR1@90"``) to warn tasks before the end.
    """

    cluster: str = attr.ib()
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: int | str | datetime.timedelta | None = None
    exclusive: bool = False
    extra_directives: Sequence[str] = attr.Factory(list)
    requeue: bool = False
    signal: str | None = None

    def resources(self) -> Resources:
        """Requirements plus the Slurm options, as lxr Resources."""
        extra = _directives(self.extra_directives)
        if self.exclusive:
            extra["exclusive"] = ""
        if self.signal:
            extra["signal"] = self.signal
        if self.requeue:
            extra["requeue"] = ""
        return _merge(
            requirements_to_resources(self.requirements),
            partition=self.partition,
            account=self.account,
            qos=self.qos,
            time_limit_seconds=duration_seconds(self.time),
            extra=extra,
        )

    def requeue_policy(self) -> RequeuePolicy:
        """``Scheduler`` with ``requeue=True``."""
        return RequeuePolicy.SCHEDULER if self.requeue else RequeuePolicy.CONTROLLER


@attr.s(auto_attribs=True, kw_only=True)
class GridEngine(ClusterExecutor):
    """Run on a Grid Engine cluster: ``GridEngine(cluster="dev-sge", queue="all.q")``.

    ``resources``: ``-l key=value`` entries (``{"h_vmem": "2G"}``). ``pe``: the parallel
    environment for multi-CPU tasks; it must be the cluster's ``parallelEnvironment`` (lxr
    requests ``-pe <pe> <cpus>`` itself). ``walltime``: ``-l h_rt``.
    """

    cluster: str = attr.ib()
    queue: str | None = None
    pe: str | None = None
    resources_: Mapping[str, Any] = attr.ib(factory=dict, alias="resources")
    walltime: int | str | datetime.timedelta | None = None
    project: str | None = None
    account: str | None = None

    def resources(self) -> Resources:
        """Requirements plus the Grid Engine options, as lxr Resources."""
        return _merge(
            requirements_to_resources(self.requirements),
            sge={k: v for k, v in (("queue", self.queue), ("project", self.project)) if v},
            account=self.account,
            time_limit_seconds=duration_seconds(self.walltime),
            extra={str(k): str(v) for k, v in self.resources_.items()},
        )


def _merge(base: Resources, **fields: Any) -> Resources:
    data = base.model_dump(exclude_none=True)
    for key, value in fields.items():
        if key in ("extra", "sge"):  # sge: Grid Engine's own section (resources.sge)
            data[key] = {**data.get(key, {}), **value}
        elif value is not None:
            data[key] = value
    return Resources.model_validate(data)


def executor_resources(executor: xm.Executor) -> tuple[str, Resources, RequeuePolicy]:
    """``(cluster, resources, requeue policy)`` of an executor: the one mapping table."""
    if not isinstance(executor, ClusterExecutor):
        raise TypeError(
            f"{type(executor).__name__} is not an lxr executor: use xm_cluster.Local, "
            "xm_cluster.Slurm or xm_cluster.GridEngine"
        )
    return executor.cluster, executor.resources(), executor.requeue_policy()
