"""Executors: where a job runs (which lxr Cluster) and what it asks the scheduler for.

The signatures are lxm3's, positional and keyword: ``Local(requirements)``,
``Slurm(requirements, resources, walltime, ...)``, ``GridEngine(requirements, resources,
parallel_environments, walltime, queue, reserved, log_directory, merge_output, ...)``. lxr's
own options (``cluster``, ``account``, ``qos``, ``requeue``, ...) are keyword-only.

Without ``cluster=``, Slurm and GridEngine run on the default cluster: ``$LXR_CLUSTER``, else
``lxr config set-cluster NAME``. Everything maps to lxr :class:`~lxr.api.resources.Resources`
in one place, :func:`executor_resources`, so the mapping table is tested once.
"""

from __future__ import annotations

import datetime
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import attr
from xmanager import xm

from lxr.api.resources import RequeuePolicy, Resources
from lxr.api.user_config import default_cluster
from lxr.xm_cluster.requirements import requirements_to_resources

__all__ = [
    "ClusterExecutor",
    "DockerOptions",
    "ExecutorSpec",
    "GridEngine",
    "Local",
    "SingularityOptions",
    "Slurm",
    "duration_seconds",
    "executor_resources",
    "requirements_to_resources",
]


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


@attr.s(auto_attribs=True)
class SingularityOptions:
    """lxm3's Singularity/Apptainer options: ``bind={src: dst}`` (``--bind src:dst``) and
    ``extra_options`` (more flags; ``--nv`` is added for GPU jobs already)."""

    bind: Mapping[str, str] = attr.Factory(dict)
    extra_options: Sequence[str] = attr.Factory(list)

    def flags(self) -> list[str]:
        """The runtime's flags."""
        out: list[str] = []
        for src, dst in self.bind.items():
            out += ["--bind", f"{src}:{dst}"]
        return out + list(self.extra_options)


@attr.s(auto_attribs=True)
class DockerOptions:
    """lxm3's Docker/Podman options: ``volumes={src: dst}`` (``-v src:dst``) and
    ``extra_options``."""

    volumes: Mapping[str, str] = attr.Factory(dict)
    extra_options: Sequence[str] = attr.Factory(list)

    def flags(self) -> list[str]:
        """The runtime's flags."""
        out: list[str] = []
        for src, dst in self.volumes.items():
            out += ["-v", f"{src}:{dst}"]
        return out + list(self.extra_options)


@attr.s(auto_attribs=True)
class ExecutorSpec(xm.ExecutorSpec):
    """The spec every lxr executor shares: packaging does not depend on the cluster."""


def _kw(default: Any = None, factory: Any = None) -> Any:
    if factory is not None:
        return attr.ib(factory=factory, kw_only=True)
    return attr.ib(default=default, kw_only=True)


@attr.s(auto_attribs=True)
class ClusterExecutor(xm.Executor):
    """Options every executor has (keyword-only).

    ``cluster``: the lxr Cluster to run on (default: ``$LXR_CLUSTER``, else ``lxr config
    set-cluster``). ``container_runtime``: ``singularity``, ``apptainer``, ``podman`` or
    ``docker`` for container executables; ``container_options``: extra flags for it.
    ``modules``: environment modules to load before the task (``module load NAME``).
    ``log_directory``: a directory on the cluster that also receives each task's output
    (``<name>-<work unit>.out``/``.err``; ``lxr logs`` keeps working). ``nodes``: the nodes
    the requirements' ``replicas`` are spread over (default one).
    """

    cluster: str | None = _kw()
    #: the nodes a work unit's replicas are spread over (``JobRequirements(replicas=N)``)
    nodes: int | None = _kw()
    container_runtime: str = _kw("singularity")
    container_options: Sequence[str] = _kw(factory=list)

    # lxm3's positional fields of the subclasses, keyword-only here so every executor has them
    requirements: Any = _kw()
    singularity_options: SingularityOptions | None = _kw()
    docker_options: DockerOptions | None = _kw()
    modules: Sequence[str] = _kw(factory=list)
    log_directory: str | None = _kw()
    merge_output: bool = _kw(False)

    @classmethod
    def Spec(cls) -> ExecutorSpec:  # xmanager's name
        """The executor spec packaging is asked for."""
        return ExecutorSpec()

    def cluster_name(self) -> str:
        """The lxr Cluster this runs on."""
        if self.cluster:
            return self.cluster
        name = default_cluster()
        if name is None:
            raise ValueError(
                f"{type(self).__name__}() names no cluster: pass cluster=NAME, set LXR_CLUSTER, "
                "or run `lxr config set-cluster NAME`"
            )
        return name

    def to_resources(self) -> Resources:
        """What each task asks the scheduler for."""
        return requirements_to_resources(self.requirements, self.nodes)

    def requeue_policy(self) -> RequeuePolicy:
        """Who brings back preempted tasks."""
        return RequeuePolicy.CONTROLLER

    def parallelism(self) -> int | None:
        """Tasks of one array running at once, if limited."""
        return None

    def runtime_flags(self, runtime: str | None = None) -> list[str]:
        """Flags for the container runtime (default: ``container_runtime``): lxm3's options,
        then ``container_options``."""
        runtime = runtime or self.container_runtime
        options = (
            self.docker_options if runtime in ("docker", "podman") else self.singularity_options
        )
        return [*(options.flags() if options else []), *self.container_options]


@attr.s(auto_attribs=True)
class Local(ClusterExecutor):
    """Run on this machine: ``Local(requirements)``; ``cluster=`` names another applied
    local cluster."""

    requirements: Any = None
    singularity_options: SingularityOptions | None = None
    docker_options: DockerOptions | None = None

    def cluster_name(self) -> str:
        """``local`` unless another local cluster is named."""
        return self.cluster or "local"


def _split_directive(item: str, prefix: str) -> str:
    item = item.strip()
    return item[len(prefix) :].strip() if item.startswith(prefix) else item


def _slurm_directives(items: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``["--exclusive", "--constraint=v100", "-C x"]`` -> ``({"exclusive": "",
    "constraint": "v100"}, ["-C x"])``: long options as lxr extras, the rest verbatim."""
    extra: dict[str, str] = {}
    raw: list[str] = []
    for item in items:
        line = _split_directive(item, "#SBATCH")
        if not line:
            raise ValueError(f"not a directive: {item!r}")
        if line.startswith("--") and " " not in line:
            key, _, value = line[2:].partition("=")
            extra[key] = value
        else:
            raw.append(line)
    return extra, raw


@attr.s(auto_attribs=True)
class Slurm(ClusterExecutor):
    """Run on a Slurm cluster: ``Slurm(requirements, walltime=10 * xm.Min)``.

    lxm3's fields, in its order: ``requirements``, ``resources`` (``{key: value}`` ->
    ``--key=value``), ``walltime`` (seconds, a timedelta or ``"1:00:00"``),
    ``singularity_options``, ``docker_options``, ``log_directory``, ``modules``, ``exclusive``,
    ``partition``, ``extra_directives`` (more ``#SBATCH`` lines: ``"--constraint=v100"``),
    ``skip_directives`` (leave out generated lines containing one of these strings).
    Keyword-only: ``cluster``, ``account``, ``qos``, ``time`` (= walltime), ``requeue`` (let
    Slurm requeue preempted tasks: ``--requeue``, lxr then never resubmits), ``signal``
    (``--signal``, e.g. ``"USR1@90"``).
    """

    requirements: Any = None
    resources: Mapping[str, Any] = attr.Factory(dict)
    walltime: int | float | str | datetime.timedelta | None = None
    singularity_options: SingularityOptions | None = None
    docker_options: DockerOptions | None = None
    log_directory: str | None = None
    modules: Sequence[str] = attr.Factory(list)
    exclusive: bool = False
    partition: str | None = None
    extra_directives: Sequence[str] = attr.Factory(list)
    skip_directives: Sequence[str] = attr.Factory(list)
    account: str | None = _kw()
    qos: str | None = _kw()
    time: int | float | str | datetime.timedelta | None = _kw()
    requeue: bool = _kw(False)
    signal: str | None = _kw()

    def to_resources(self) -> Resources:
        """Requirements plus the Slurm options, as lxr Resources."""
        extra = {str(k).lstrip("-"): str(v) for k, v in self.resources.items()}
        more, raw = _slurm_directives(self.extra_directives)
        extra.update(more)
        if self.exclusive:
            extra["exclusive"] = ""
        if self.signal:
            extra["signal"] = self.signal
        if self.requeue:
            extra["requeue"] = ""
        return _merge(
            requirements_to_resources(self.requirements, self.nodes),
            partition=self.partition,
            account=self.account,
            qos=self.qos,
            time_limit_seconds=duration_seconds(self.walltime or self.time),
            extra=extra,
            directives=raw,
            skip_directives=list(self.skip_directives),
        )

    def requeue_policy(self) -> RequeuePolicy:
        """``Scheduler`` with ``requeue=True``."""
        return RequeuePolicy.SCHEDULER if self.requeue else RequeuePolicy.CONTROLLER


@attr.s(auto_attribs=True)
class GridEngine(ClusterExecutor):
    """Run on a Grid Engine cluster: ``GridEngine(requirements, walltime=2 * xm.Hr)``.

    lxm3's fields, in its order: ``requirements``, ``resources`` (``-l key=value``),
    ``parallel_environments`` (``{"smp": 4}``: ``-pe smp 4``, one process on 4 slots; with
    ``replicas`` in the requirements, the ranks are started on the environment's slots over
    ``$PE_HOSTFILE``), ``walltime`` (``-l h_rt``), ``queue`` (``-q``), ``reserved``
    (``-R y``; by default when a parallel environment or a GPU is requested, as lxm3 does),
    ``log_directory``, ``merge_output`` (stderr into the output log, like ``-j y``; lxr keeps
    them apart by default so ``lxr logs --stderr`` works), ``shell`` (``/bin/bash`` only),
    ``project`` (``-P``), ``account`` (``-A``), ``modules``, ``max_parallel_tasks``
    (``-tc``), ``extra_directives`` (more qsub options: ``"-l tmem=4G"``), ``skip_directives``,
    ``singularity_options``, ``docker_options``. Keyword-only: ``cluster``; ``pe`` (lxr's
    older spelling of the parallel environment's name).
    """

    requirements: Any = None
    resources: Mapping[str, Any] = attr.Factory(dict)
    parallel_environments: Mapping[str, int] = attr.Factory(dict)
    walltime: int | float | str | datetime.timedelta | None = None
    queue: str | None = None
    reserved: bool | None = None
    log_directory: str | None = None
    merge_output: bool = False
    shell: str = "/bin/bash"
    project: str | None = None
    account: str | None = None
    modules: Sequence[str] = attr.Factory(list)
    max_parallel_tasks: int | None = None
    extra_directives: Sequence[str] = attr.Factory(list)
    skip_directives: Sequence[str] = attr.Factory(list)
    singularity_options: SingularityOptions | None = None
    docker_options: DockerOptions | None = None
    pe: str | None = _kw()

    def __attrs_post_init__(self) -> None:
        if self.shell != "/bin/bash":
            raise ValueError(f"GridEngine(shell={self.shell!r}): lxr runs tasks with /bin/bash")
        if len(self.parallel_environments) > 1:
            raise ValueError(
                f"GridEngine(parallel_environments={dict(self.parallel_environments)}): "
                "a task takes one parallel environment"
            )

    def pe_name(self) -> str | None:
        """The parallel environment asked for by name, if any."""
        if self.parallel_environments:
            return next(iter(self.parallel_environments))
        return self.pe

    def to_resources(self) -> Resources:
        """Requirements plus the Grid Engine options, as lxr Resources."""
        base = requirements_to_resources(self.requirements, self.nodes)
        cpus = None
        if self.parallel_environments and not base.gang:
            slots = int(next(iter(self.parallel_environments.values())))
            cpus = slots if slots > 0 else None
        raw: list[str] = []
        for item in self.extra_directives:
            line = _split_directive(item, "#$")
            if not line:
                raise ValueError(f"not a directive: {item!r}")
            raw += shlex.split(line)
        reserved = self.reserved
        if reserved is None:
            reserved = bool(self.parallel_environments or base.gpus or "gpu" in self.resources)
        if reserved:
            raw += ["-R", "y"]
        return _merge(
            base,
            cpus=cpus,
            sge={
                k: v
                for k, v in (
                    ("queue", self.queue),
                    ("project", self.project),
                    ("parallelEnvironment", self.pe_name()),
                )
                if v
            },
            account=self.account,
            time_limit_seconds=duration_seconds(self.walltime),
            extra={str(k): str(v) for k, v in self.resources.items()},
            directives=raw,
            skip_directives=list(self.skip_directives),
        )

    def parallelism(self) -> int | None:
        """``max_parallel_tasks`` (``-tc``)."""
        return self.max_parallel_tasks


def _merge(base: Resources, **fields: Any) -> Resources:
    data = base.model_dump(exclude_none=True)
    for key, value in fields.items():
        if key in ("extra", "sge"):  # sge: Grid Engine's own section (resources.sge)
            data[key] = {**data.get(key, {}), **value}
        elif key in ("directives", "skip_directives"):
            if value:
                data[key] = [*data.get(key, []), *value]
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
    return executor.cluster_name(), executor.to_resources(), executor.requeue_policy()
