"""The Cluster resource: where tasks run, and the resources one task asks for.

What only one scheduler understands lives in that scheduler's section (``spec.<scheduler>``,
``resources.<scheduler>``), validated by its plugin (:mod:`lxr.api.sections`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from lxr.api.model import (
    API_VERSION,
    Condition,
    ObjectMeta,
    SpecModel,
    StatusModel,
    no_tilde_user,
    parse_memory_mib,
)
from lxr.api.sections import dump_sections, section_schemas, split_sections
from lxr.schedulers.plugins import OptionsModel, plugin, scheduler_names

__all__ = ["Cluster", "ClusterSpec", "ClusterStatus", "RateLimit", "Resources", "SSHConfig"]


class SSHConfig(SpecModel):
    """How to reach a cluster's login node. Host keys are checked against known_hosts."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = Field(
        default=None, description="known_hosts file; default ~/.ssh/known_hosts. Never disabled."
    )
    proxy_jump: str | None = Field(default=None, description="[user@]host[:port] of a jump host")


class RateLimit(SpecModel):
    """A token bucket on scheduler commands, per cluster."""

    commands_per_second: Annotated[float, Field(gt=0)] = 5.0
    burst: Annotated[int, Field(ge=1)] = 10


def _sections_schema(kind: Any) -> Any:
    def extra(schema: dict[str, Any]) -> None:
        schema.setdefault("properties", {}).update(section_schemas(kind))

    return extra


class Resources(SpecModel):
    """What one task needs. Unset fields fall back to the cluster's defaults.

    What only one scheduler understands goes in that scheduler's section, validated by its
    plugin: ``sge: {queue: all.q, project: ml}``. (``queue`` and ``project`` at the top are the
    older spelling of ``sge.queue`` and ``sge.project``, still read.)
    """

    model_config = ConfigDict(json_schema_extra=_sections_schema("resources"))

    cpus: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="CPUs per task (per rank of a multi-task work unit)"
    )
    memory: str | None = Field(
        default=None, description="memory per node, e.g. 512Mi, 4Gi, 2G (Slurm --mem)"
    )
    memory_per_cpu: str | None = Field(
        default=None,
        description="memory per CPU instead of per node, e.g. 2Gi (Slurm --mem-per-cpu)",
    )
    gpus: Annotated[int, Field(ge=0)] | None = None
    nodes: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="nodes of one work unit: one allocation and one attempt, all its nodes at "
        "once (a gang)",
    )
    tasks_per_node: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="processes (ranks) started on each node; each gets MASTER_ADDR, "
        "MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, NODE_RANK and LOCAL_WORLD_SIZE",
    )
    gpus_per_task: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="GPUs for each task (Slurm --gpus-per-task)"
    )
    gpu_type: str | None = Field(default=None, description="e.g. a100, h100 (site specific)")
    time_limit_seconds: Annotated[int, Field(ge=1)] | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="free-form scheduler directives: Slurm --key=value, Grid Engine -l key=value",
    )
    directives: list[str] | None = Field(
        default=None,
        description="scheduler options passed verbatim after lxr's own: Slurm #SBATCH lines "
        "(--constraint=v100), Grid Engine qsub arguments (-R, y)",
    )
    skip_directives: list[str] | None = Field(
        default=None,
        description="leave out generated options containing one of these strings (lxr's job "
        "name, output and error options are always kept)",
    )
    _sections: dict[str, OptionsModel] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _scheduler_sections(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Resources:
        if not isinstance(data, dict):
            return handler(data)
        rest, sections = split_sections(
            data, "resources", title=cls.__name__, json_mode=info.mode == "json"
        )
        res: Resources = handler(rest)
        res._sections = sections
        return res

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        out = handler(self)
        if isinstance(out, dict):
            out.update(
                dump_sections(
                    self._sections,
                    mode=info.mode,
                    by_alias=bool(info.by_alias),
                    exclude_unset=info.exclude_unset,
                    exclude_none=info.exclude_none,
                    exclude_defaults=info.exclude_defaults,
                )
            )
        return out

    @field_validator("memory", "memory_per_cpu")
    @classmethod
    def _memory(cls, memory: str | None) -> str | None:
        if memory is not None:
            parse_memory_mib(memory)
        return memory

    @model_validator(mode="after")
    def _memory_once(self) -> Resources:
        if self.memory is not None and self.memory_per_cpu is not None:
            raise ValueError("give memory (per node) or memoryPerCpu, not both")
        return self

    @property
    def ranks(self) -> int:
        """Processes of one work unit: ``nodes * tasksPerNode`` (1 for a plain task)."""
        return (self.nodes or 1) * (self.tasks_per_node or 1)

    @property
    def gang(self) -> bool:
        """True when a work unit is more than one process (several nodes or tasks)."""
        return self.ranks > 1

    def section(self, scheduler: str) -> OptionsModel | None:
        """The resources only ``scheduler`` reads (its defaults when none were given), or None
        when that scheduler has no resources of its own."""
        if scheduler in self._sections:
            return self._sections[scheduler]
        model = plugin(scheduler).resources
        return model() if model is not None else None

    @property
    def queue(self) -> str | None:
        """Deprecated spelling of ``sge.queue``, kept for existing launch scripts."""
        return getattr(self._sections.get("sge"), "queue", None)

    @property
    def project(self) -> str | None:
        """Deprecated spelling of ``sge.project``, kept for existing launch scripts."""
        return getattr(self._sections.get("sge"), "project", None)

    def merged_over(self, defaults: Resources) -> Resources:
        """These resources with unset fields taken from ``defaults`` (section by section)."""
        data = defaults.model_dump()
        for key, value in self.model_dump(exclude_unset=True).items():
            if key == "extra":
                data["extra"] = {**data["extra"], **value}
            elif key in ("directives", "skip_directives"):
                if value:
                    data[key] = [*(data[key] or []), *value]
            elif isinstance(value, dict):  # a scheduler's section
                data[key] = {**data.get(key, {}), **value}
            elif value is not None:
                data[key] = value
        # memory per node and per CPU exclude each other: the experiment's own choice wins
        own = self.model_fields_set
        if "memory_per_cpu" in own and self.memory_per_cpu is not None:
            data["memory"] = None
        elif "memory" in own and self.memory is not None:
            data["memory_per_cpu"] = None
        return Resources.model_validate(data)


class ClusterSpec(SpecModel):
    """Where and how tasks run. ``scheduler`` names an installed scheduler plugin; its options
    go in the section of the same name (``sge: {parallelEnvironment: mpi}``)."""

    model_config = ConfigDict(json_schema_extra=_sections_schema("cluster"))

    scheduler: str = Field(description="an installed scheduler: local, slurm, sge, or a plugin's")
    ssh: SSHConfig | None = Field(
        default=None, description="login node; without it commands run on this machine"
    )
    staging_dir: str | None = Field(
        default=None,
        description="where job files, logs and artifacts go on the cluster "
        "(default: $XDG_STATE_HOME/lxr/clusters/NAME locally, ~/.lxr/staging over SSH)",
    )
    max_parallel: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="tasks of lxr running at once on this cluster (local: CPU count)"
    )
    defaults: Resources = Field(default_factory=Resources)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    accelerators: dict[str, str] = Field(
        default_factory=dict,
        description="accelerator names of launch scripts -> this site's request: a Slurm gres "
        "({a100: 'gpu:a100', any: gpu} -> --gres=gpu:a100:N) or a Grid Engine complex "
        "({a100: gpu_a100} -> -l gpu_a100=N; 'gpu,gputype=a100' adds -l gputype=a100). 'any' "
        "is what gpu=N asks for. Empty: models pass through as gres types.",
    )
    _options: OptionsModel | None = PrivateAttr(default=None)

    @field_validator("staging_dir")
    @classmethod
    def _staging_dir(cls, staging_dir: str | None) -> str | None:
        return no_tilde_user(staging_dir)

    @model_validator(mode="wrap")
    @classmethod
    def _scheduler_options(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> ClusterSpec:
        if not isinstance(data, dict) or data.get("scheduler") not in scheduler_names():
            return handler(data)  # (an unknown one fails there)
        name = data["scheduler"]
        rest, sections = split_sections(
            data, "cluster", title=cls.__name__, json_mode=info.mode == "json", only=[name]
        )
        spec: ClusterSpec = handler(rest)
        spec._options = sections.get(name) or plugin(name).options()
        return spec

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        out = handler(self)
        if isinstance(out, dict) and self._options is not None and type(self._options).model_fields:
            out.update(
                dump_sections(
                    {self.scheduler: self._options},
                    mode=info.mode,
                    by_alias=bool(info.by_alias),
                    exclude_unset=info.exclude_unset,
                    exclude_none=info.exclude_none,
                    exclude_defaults=info.exclude_defaults,
                )
            )
        return out

    @field_validator("scheduler")
    @classmethod
    def _installed(cls, name: str) -> str:
        plugin(name)  # raises, naming the installed ones
        return name

    @property
    def options(self) -> OptionsModel:
        """The scheduler's own options (``spec.<scheduler>``), its defaults when not given."""
        if self._options is None:
            self._options = plugin(self.scheduler).options()
        return self._options


class ClusterStatus(StatusModel):
    """Written by the controller: ``Reachable`` (can lxr reach the login node?), with the
    cause as reason and message when it cannot (``ConnectionRefused``, ``HostKeyMismatch``,
    ``PermissionDenied``, ...)."""

    conditions: list[Condition] = Field(default_factory=list)


class Cluster(SpecModel):
    """A place to run tasks: this machine, or a Slurm / Grid Engine cluster."""

    api_version: Literal["lxr.dev/v1alpha1"] = API_VERSION
    kind: Literal["Cluster"] = "Cluster"
    metadata: ObjectMeta
    spec: ClusterSpec
    status: ClusterStatus | None = None
