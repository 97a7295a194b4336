"""The lxr resources: Cluster, Experiment and WorkUnit, as users write and read them.

Shapes follow the Kubernetes API conventions: ``apiVersion/kind/metadata/spec/status``,
camelCase field names, ``...Seconds`` integer durations, CamelCase enums. ``status`` is
written by the controller only; what ``lxr apply`` reads is validated strictly (unknown
fields and wrong types are errors).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
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
from pydantic.alias_generators import to_camel

from lxr.api.phases import ExperimentPhase, WorkUnitPhase
from lxr.api.sections import dump_sections, section_schemas, split_sections
from lxr.schedulers.plugins import OptionsModel, plugin, scheduler_names

__all__ = [
    "API_VERSION",
    "ArgValue",
    "Attempt",
    "Backoff",
    "Cluster",
    "ClusterSpec",
    "Condition",
    "ConditionStatus",
    "EnvSource",
    "Executable",
    "ExitCodeMatch",
    "Experiment",
    "ExperimentPhase",
    "ExperimentSpec",
    "ExperimentStatus",
    "FailurePolicy",
    "FailurePolicyAction",
    "FailurePolicyRule",
    "FailureReason",
    "ObjectMeta",
    "RateLimit",
    "RequeuePolicy",
    "Resources",
    "SSHConfig",
    "Sweep",
    "WorkUnit",
    "WorkUnitPhase",
    "WorkUnitSpec",
    "WorkUnitStatus",
    "WorkUnitTemplate",
    "parse_memory_mib",
]

API_VERSION: Final = "lxr.dev/v1alpha1"

_NAME_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEMORY_FACTORS_MIB = {
    None: 1 / (1024 * 1024),  # a bare number is bytes, as in Kubernetes
    "Ki": 1 / 1024,
    "Mi": 1,
    "Gi": 1024,
    "Ti": 1024 * 1024,
    "K": 1000 / (1024 * 1024),
    "M": 1000**2 / (1024 * 1024),
    "G": 1000**3 / (1024 * 1024),
    "T": 1000**4 / (1024 * 1024),
}

#: The value of one argument. Rendered as ``--key=value``; booleans as ``--key``/``--nokey``.
ArgValue = str | int | float | bool


def parse_memory_mib(quantity: str) -> int:
    """A Kubernetes-style memory quantity (``512Mi``, ``4Gi``, ``2G``) in MiB, rounded up."""
    match = _MEMORY_RE.match(quantity)
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r} (expected e.g. 512Mi, 4Gi, 2G)")
    value = float(match.group(1)) * _MEMORY_FACTORS_MIB[match.group(2)]
    return max(1, int(-(-value // 1)))


def _no_tilde_user(path: str | None) -> str | None:
    """``~`` and ``~/x`` are the home directory on the cluster; ``~user`` is refused rather
    than read as a directory named ``~user``."""
    if path and path.startswith("~") and not (path == "~" or path.startswith("~/")):
        raise ValueError(
            f"{path!r}: ~user is not supported; write the absolute path, or ~/ for your home"
        )
    return path


class _Model(BaseModel):
    """camelCase model; unknown fields are errors. Files are validated in strict JSON mode."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )


class _StatusModel(BaseModel):
    """Controller-written models: camelCase, lenient on read (they come from our own store)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# --------------------------------------------------------------------------- metadata


class ObjectMeta(_Model):
    """Name, labels and annotations set by the user; the rest is set by the server."""

    name: Annotated[str, Field(pattern=_NAME_RE, max_length=63)]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    finalizers: list[str] = Field(default_factory=list)

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$", key) or len(key) > 253:
                raise ValueError(f"invalid label key {key!r}")
            if len(value) > 63 or not re.match(
                r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", value
            ):
                raise ValueError(f"invalid label value {value!r} for key {key!r}")
        return labels


class ConditionStatus(str, Enum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_StatusModel):
    """One observation about an object; ``lastTransitionTime`` moves only when ``status`` does."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None


# --------------------------------------------------------------------------- Cluster


class SSHConfig(_Model):
    """How to reach a cluster's login node. Host keys are checked against known_hosts."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = Field(
        default=None, description="known_hosts file; default ~/.ssh/known_hosts. Never disabled."
    )
    proxy_jump: str | None = Field(default=None, description="[user@]host[:port] of a jump host")


class RateLimit(_Model):
    """A token bucket on scheduler commands, per cluster."""

    commands_per_second: Annotated[float, Field(gt=0)] = 5.0
    burst: Annotated[int, Field(ge=1)] = 10


def _sections_schema(kind: Any) -> Any:
    def extra(schema: dict[str, Any]) -> None:
        schema.setdefault("properties", {}).update(section_schemas(kind))

    return extra


class Resources(_Model):
    """What one task needs. Unset fields fall back to the cluster's defaults.

    What only one scheduler understands goes in that scheduler's section, validated by its
    plugin: ``sge: {queue: all.q, project: ml}``. (``queue`` and ``project`` at the top are the
    older spelling of ``sge.queue`` and ``sge.project``, still read.)
    """

    model_config = ConfigDict(json_schema_extra=_sections_schema("resources"))

    cpus: Annotated[int, Field(ge=1)] | None = None
    memory: str | None = Field(default=None, description="e.g. 512Mi, 4Gi, 2G")
    gpus: Annotated[int, Field(ge=0)] | None = None
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

    @field_validator("memory")
    @classmethod
    def _memory(cls, memory: str | None) -> str | None:
        if memory is not None:
            parse_memory_mib(memory)
        return memory

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
        return Resources.model_validate(data)


class ClusterSpec(_Model):
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
        return _no_tilde_user(staging_dir)

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


class Cluster(_Model):
    """A place to run tasks: this machine, or a Slurm / Grid Engine cluster."""

    api_version: Literal["lxr.dev/v1alpha1"] = API_VERSION
    kind: Literal["Cluster"] = "Cluster"
    metadata: ObjectMeta
    spec: ClusterSpec


# --------------------------------------------------------------------------- Experiment


class EnvSource(_Model):
    """Variables read on the cluster when a task starts, like a Kubernetes ``envFrom``
    Secret reference: lxr stores only this reference, never the values, and prints none.

    The source gives ``NAME=VALUE`` lines (blank lines and ``#`` comments skipped, an
    ``export`` prefix and one layer of matching quotes around the value removed)."""

    file: str | None = Field(
        default=None,
        description="a file on the cluster; ~/ is the home directory there, a relative path "
        "is relative to workingDir",
    )
    command: Annotated[list[str], Field(min_length=1)] | None = Field(
        default=None,
        description="an argv run on the cluster in workingDir; its standard output is read",
    )
    optional: bool = Field(
        default=False, description="a missing file or a failing command is not an error"
    )

    @field_validator("file")
    @classmethod
    def _file(cls, file: str | None) -> str | None:
        return _no_tilde_user(file)

    @model_validator(mode="after")
    def _one_source(self) -> EnvSource:
        if (self.file is None) == (self.command is None):
            raise ValueError("give either file or command")
        return self


class Executable(_Model):
    """The program a work unit runs: an argv, never a shell line."""

    command: Annotated[list[str], Field(min_length=1)]
    env: dict[str, str] = Field(
        default_factory=dict,
        description="stored and shown by get: not for secrets (use envFrom)",
    )
    env_from: list[EnvSource] = Field(
        default_factory=list,
        description="variables resolved on the cluster when each task starts, in order; "
        "env wins over them",
    )
    working_dir: str | None = None

    @field_validator("working_dir")
    @classmethod
    def _working_dir(cls, working_dir: str | None) -> str | None:
        return _no_tilde_user(working_dir)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
        return env


class WorkUnitTemplate(_Model):
    """One work unit written out by hand."""

    name: str | None = None
    args: dict[str, ArgValue] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        return Executable._env_names(env)


class Sweep(_Model):
    """Arguments to sweep: the cartesian product of ``grid``, times each entry of ``list``."""

    grid: dict[str, Annotated[list[ArgValue], Field(min_length=1)]] = Field(default_factory=dict)
    entries: list[dict[str, ArgValue]] = Field(default_factory=list, alias="list")

    @model_validator(mode="after")
    def _not_empty(self) -> Sweep:
        if not self.grid and not self.entries:
            raise ValueError("a sweep needs a grid, a list, or both")
        return self


class FailurePolicyAction(str, Enum):
    """What to do about a failed attempt (names from the Kubernetes Job API)."""

    IGNORE = "Ignore"  # retry without spending the failure budget (disruption budget instead)
    COUNT = "Count"  # retry, spending the failure budget (backoffLimitPerIndex)
    FAIL_INDEX = "FailIndex"  # this work unit fails now
    FAIL_JOB = "FailJob"  # the whole experiment fails now


class FailureReason(str, Enum):
    """Why an attempt ended without success, as lxr classifies scheduler states."""

    ERROR = "Error"  # the program exited non-zero
    PREEMPTED = "Preempted"
    NODE_FAIL = "NodeFail"
    BOOT_FAIL = "BootFail"
    OUT_OF_MEMORY = "OutOfMemory"
    TIMEOUT = "Timeout"
    RESCHEDULED = "Rescheduled"  # Grid Engine rescheduled the task (qmod -rj, failed=25)
    LOST = "Lost"  # the scheduler lost track of the task
    CANCELLED = "Cancelled"  # cancelled by someone other than lxr
    SUBMIT_ERROR = "SubmitError"  # the scheduler refused the job (e.g. Eqw)


class ExitCodeMatch(_Model):
    """Matches exit codes, like the Kubernetes ``onExitCodes`` requirement."""

    operator: Literal["In", "NotIn"] = "In"
    values: Annotated[list[int], Field(min_length=1)]


class FailurePolicyRule(_Model):
    """A rule; a rule matches when every criterion it names matches."""

    action: FailurePolicyAction
    on_reasons: list[FailureReason] | None = None
    on_exit_codes: ExitCodeMatch | None = None

    @model_validator(mode="after")
    def _some_criterion(self) -> FailurePolicyRule:
        if self.on_reasons is None and self.on_exit_codes is None:
            raise ValueError("a rule needs onReasons, onExitCodes, or both")
        return self


class FailurePolicy(_Model):
    """Rules checked in order; the first match decides. Without a match: disruptions
    (Preempted, NodeFail, BootFail, Rescheduled, Lost) are Ignore, the rest Count."""

    rules: list[FailurePolicyRule] = Field(default_factory=list)


class Backoff(_Model):
    """Delay before a counted retry: ``initial * factor**(failures-1)``, capped, with jitter."""

    initial_seconds: Annotated[float, Field(ge=0)] = 10.0
    factor: Annotated[float, Field(ge=1)] = 2.0
    cap_seconds: Annotated[float, Field(ge=0)] = 600.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.1


class RequeuePolicy(str, Enum):
    """Who brings back preempted tasks."""

    CONTROLLER = "Controller"  # lxr resubmits exactly the affected indexes
    SCHEDULER = "Scheduler"  # the scheduler requeues; lxr records restarts and never resubmits


class ExperimentSpec(_Model):
    """Desired state of an experiment: what to run, where, and how hard to try."""

    cluster: str = "local"
    executable: Executable
    resources: Resources = Field(default_factory=Resources)
    work_units: list[WorkUnitTemplate] | None = None
    sweep: Sweep | None = None
    parallelism: Annotated[int, Field(ge=1)] | None = None
    backoff_limit_per_index: Annotated[int, Field(ge=0)] = 3
    disruption_limit_per_index: Annotated[int, Field(ge=0)] = 20
    max_failed_indexes: Annotated[int, Field(ge=0)] | None = None
    backoff: Backoff = Field(default_factory=Backoff)
    failure_policy: FailurePolicy = Field(default_factory=FailurePolicy)
    requeue: RequeuePolicy = RequeuePolicy.CONTROLLER

    @model_validator(mode="after")
    def _units_xor_sweep(self) -> ExperimentSpec:
        if self.work_units is not None and self.sweep is not None:
            raise ValueError("give either workUnits or sweep, not both")
        if self.work_units is not None and not self.work_units:
            raise ValueError("workUnits is empty")
        names = [wu.name for wu in self.work_units or [] if wu.name is not None]
        if len(names) != len(set(names)):
            raise ValueError("work unit names must be unique")
        return self


class ExperimentStatus(_StatusModel):
    """Written by the controller."""

    observed_generation: int | None = None
    phase: ExperimentPhase = ExperimentPhase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    work_units: dict[str, int] = Field(
        default_factory=dict, description="work units per phase, and 'total'"
    )
    failed_indexes: list[int] = Field(default_factory=list)
    start_time: datetime | None = None
    completion_time: datetime | None = None


class Experiment(_Model):
    """A sweep of work units, run on one cluster until every unit converges."""

    api_version: Literal["lxr.dev/v1alpha1"] = API_VERSION
    kind: Literal["Experiment"] = "Experiment"
    metadata: ObjectMeta
    spec: ExperimentSpec
    status: ExperimentStatus | None = None


# --------------------------------------------------------------------------- WorkUnit (read-only)


class Attempt(_StatusModel):
    """One submission of a work unit to the scheduler."""

    attempt: int
    job_id: str | None = None
    index: int | None = Field(default=None, description="array task index")
    phase: str
    state: str | None = Field(default=None, description="the scheduler's own state")
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    restarts: int = 0
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


class WorkUnitSpec(_StatusModel):
    """What the work unit runs."""

    index: int
    args: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)


class WorkUnitStatus(_StatusModel):
    """Written by the controller."""

    phase: WorkUnitPhase
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    failures: int = 0
    disruptions: int = 0
    next_attempt_after: datetime | None = None
    attempts: list[Attempt] = Field(default_factory=list)


class WorkUnit(_StatusModel):
    """One run of the executable with one set of arguments (read-only; made from an Experiment)."""

    api_version: str = API_VERSION
    kind: Literal["WorkUnit"] = "WorkUnit"
    metadata: dict[str, Any]
    spec: WorkUnitSpec
    status: WorkUnitStatus
