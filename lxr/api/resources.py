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
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from lxr.api.artifacts import (
    STAGED_BLOBS,
    ArtifactPhase,
    ArtifactRef,
    ArtifactStatus,
    Package,
    PackageKind,
)
from lxr.api.cluster import (
    Cluster,
    ClusterSpec,
    ClusterStatus,
    RateLimit,
    Resources,
    SSHConfig,
)
from lxr.api.dependencies import (
    Dependency,
    DependencyCondition,
    DependencyMatch,
    WorkUnitDependencies,
    WorkUnitDependency,
    dependency_condition,
)
from lxr.api.model import (
    API_VERSION,
    Condition,
    ConditionStatus,
    ObjectMeta,
    SpecModel,
    StatusModel,
    no_tilde_user,
    parse_memory_mib,
)
from lxr.api.phases import ExperimentPhase, WorkUnitPhase

__all__ = [
    "API_VERSION",
    "STAGED_BLOBS",
    "ArgValue",
    "ArtifactPhase",
    "ArtifactRef",
    "ArtifactStatus",
    "Attempt",
    "Backoff",
    "Cluster",
    "ClusterSpec",
    "ClusterStatus",
    "Component",
    "Condition",
    "ConditionStatus",
    "Container",
    "ContainerRuntime",
    "Dependency",
    "DependencyCondition",
    "DependencyMatch",
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
    "Package",
    "PackageKind",
    "RateLimit",
    "RemovedWorkUnitPolicy",
    "RequeuePolicy",
    "ResourceScale",
    "Resources",
    "SSHConfig",
    "Sweep",
    "WorkUnit",
    "WorkUnitDependencies",
    "WorkUnitDependency",
    "WorkUnitPhase",
    "WorkUnitSpec",
    "WorkUnitStatus",
    "WorkUnitTemplate",
    "component_variable",
    "parse_memory_mib",
]

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: The value of one argument. Rendered as ``--key=value``; booleans as ``--key``/``--nokey``.
ArgValue = str | int | float | bool


# --------------------------------------------------------------------------- Experiment


class EnvSource(SpecModel):
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
        return no_tilde_user(file)

    @model_validator(mode="after")
    def _one_source(self) -> EnvSource:
        if (self.file is None) == (self.command is None):
            raise ValueError("give either file or command")
        return self


class ContainerRuntime(str, Enum):
    """The program that runs a container image on the cluster."""

    PODMAN = "podman"
    DOCKER = "docker"
    SINGULARITY = "singularity"
    APPTAINER = "apptainer"


class Container(SpecModel):
    """Run ``command`` inside a container image (the argv lxr makes of it is in
    :func:`lxr.api.container.container_argv`).

    Every runtime gets the task's working directory at the same path (podman/docker: bound
    and made the working directory; Singularity/Apptainer bind it themselves) and the task's
    environment; GPUs are passed only when the work unit's resources ask for some."""

    image: Annotated[str, Field(min_length=1)] = Field(
        description="podman/docker: an image reference (a docker:// prefix is dropped); "
        "singularity/apptainer: a .sif path on the cluster or a URI (docker://...)"
    )
    runtime: ContainerRuntime = ContainerRuntime.PODMAN
    mounts: list[Annotated[str, Field(pattern=r"^/[^:]*(:/[^:]*)?(:(ro|rw))?$")]] = Field(
        default_factory=list,
        description="more host paths to bind: /src, /src:/dst or /src:/dst:ro",
    )
    options: list[str] = Field(
        default_factory=list, description="more flags for the runtime, put before the image"
    )


class Executable(SpecModel):
    """The program a work unit runs: an argv, never a shell line, and the code it needs."""

    command: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=list,
        description="the argv; required unless package.entrypoint gives it",
    )
    container: Container | None = Field(
        default=None, description="run the command inside this container image"
    )
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
    package: Package | None = Field(
        default=None,
        description="code packaged by apply/launch on this machine and staged by the "
        "controller before the work units are submitted",
    )
    artifacts: list[ArtifactRef] = Field(
        default_factory=list,
        description="recorded by apply/launch: the content-addressed blobs the work units "
        "need on the cluster",
    )

    @model_validator(mode="after")
    def _command(self) -> Executable:
        if not self.command:
            pkg = self.package
            if pkg is None or not pkg.entrypoint:
                raise ValueError("give command (or package.entrypoint)")
            if pkg.kind is PackageKind.PYTHON:
                self.command = ["python3", "-m", pkg.entrypoint]
            else:
                self.command = [f"./{pkg.entrypoint.removeprefix('./')}"]
        return self

    @field_validator("working_dir")
    @classmethod
    def _working_dir(cls, working_dir: str | None) -> str | None:
        return no_tilde_user(working_dir)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
        return env


class WorkUnitTemplate(SpecModel):
    """One work unit written out by hand."""

    name: str | None = None
    args: dict[str, ArgValue] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    depends_on: WorkUnitDependencies | None = Field(
        default=None,
        description="named work units of other experiments this one waits for (needs a name)",
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        return Executable._env_names(env)

    @model_validator(mode="after")
    def _named_if_waiting(self) -> WorkUnitTemplate:
        if self.depends_on is not None and self.name is None:
            raise ValueError("a work unit with dependsOn needs a name")
        return self


class Sweep(SpecModel):
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


class ExitCodeMatch(SpecModel):
    """Matches exit codes, like the Kubernetes ``onExitCodes`` requirement."""

    operator: Literal["In", "NotIn"] = "In"
    values: Annotated[list[int], Field(min_length=1)]


class ResourceScale(SpecModel):
    """More resources for the attempts after a failure the rule matched (Nextflow's
    ``memory { 2.GB * task.attempt }``): each such failure multiplies the next attempt's
    request by the factor, up to the cap."""

    memory: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="factor on resources.memory (the cluster's default if unset)"
    )
    max_memory: str | None = Field(default=None, description="cap, e.g. 64Gi")
    time_limit: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="factor on resources.timeLimitSeconds"
    )
    max_time_limit_seconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="cap on the scaled timeLimitSeconds"
    )
    cpus: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="factor on resources.cpus (rounded up)"
    )
    max_cpus: Annotated[int, Field(ge=1)] | None = None

    @field_validator("max_memory")
    @classmethod
    def _memory_quantity(cls, value: str | None) -> str | None:
        if value is not None:
            parse_memory_mib(value)
        return value

    @model_validator(mode="after")
    def _some_factor(self) -> ResourceScale:
        if self.memory is None and self.time_limit is None and self.cpus is None:
            raise ValueError("scale needs memory, timeLimit or cpus")
        return self


class FailurePolicyRule(SpecModel):
    """A rule; a rule matches when every criterion it names matches."""

    action: FailurePolicyAction
    on_reasons: list[FailureReason] | None = None
    on_exit_codes: ExitCodeMatch | None = None
    scale: ResourceScale | None = Field(
        default=None,
        description="retry with more resources: factors on the next attempt's request "
        "(with Count or Ignore)",
    )

    @model_validator(mode="after")
    def _some_criterion(self) -> FailurePolicyRule:
        if self.on_reasons is None and self.on_exit_codes is None:
            raise ValueError("a rule needs onReasons, onExitCodes, or both")
        return self


class FailurePolicy(SpecModel):
    """Rules checked in order; the first match decides. Without a match: disruptions
    (Preempted, NodeFail, BootFail, Rescheduled, Lost) are Ignore, the rest Count."""

    rules: list[FailurePolicyRule] = Field(default_factory=list)


class Backoff(SpecModel):
    """Delay before a counted retry: ``initial * factor**(failures-1)``, capped, with jitter."""

    initial_seconds: Annotated[float, Field(ge=0)] = 10.0
    factor: Annotated[float, Field(ge=1)] = 2.0
    cap_seconds: Annotated[float, Field(ge=0)] = 600.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.1


class RequeuePolicy(str, Enum):
    """Who brings back preempted tasks."""

    CONTROLLER = "Controller"  # lxr resubmits exactly the affected indexes
    SCHEDULER = "Scheduler"  # the scheduler requeues; lxr records restarts and never resubmits


class RemovedWorkUnitPolicy(str, Enum):
    """What becomes of a work unit that a re-applied sweep no longer has."""

    DELETE = "Delete"  # stopped if it runs, then deleted with its history
    RETAIN = "Retain"  # stopped if it runs, kept with its history (it counts as Stopped)


_COMPONENT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class Component(SpecModel):
    """One part of a work unit that runs beside the others, co-scheduled in one job (a Slurm
    heterogeneous job), e.g. a server and its clients. Every part sees every part's node list
    as ``LXR_COMPONENT_<NAME>_NODELIST``."""

    executable: Executable
    resources: Resources = Field(
        default_factory=Resources,
        description="this part's resources, over the experiment's resources",
    )
    args: dict[str, ArgValue] = Field(
        default_factory=dict, description="arguments of this part, before the work unit's"
    )
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        return Executable._env_names(env)


def component_variable(name: str) -> str:
    """``LXR_COMPONENT_<NAME>_NODELIST`` for a component: upper case, ``-`` as ``_``."""
    return f"LXR_COMPONENT_{name.upper().replace('-', '_')}_NODELIST"


class ExperimentSpec(SpecModel):
    """Desired state of an experiment: what to run, where, and how hard to try."""

    cluster: str = "local"
    executable: Executable | None = Field(
        default=None, description="what each work unit runs (or give components)"
    )
    components: dict[str, Component] | None = Field(
        default=None,
        description="co-scheduled parts of each work unit, by name (one heterogeneous job), "
        "instead of executable",
    )
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
    removed_work_unit_policy: RemovedWorkUnitPolicy = Field(
        default=RemovedWorkUnitPolicy.DELETE,
        description="when a re-applied sweep or workUnits no longer has a work unit: Delete "
        "(stop it, then remove it) or Retain (stop it, keep it with its history)",
    )
    depends_on: list[Dependency] = Field(
        default_factory=list,
        description="experiments whose work units must end first (all of them); "
        "a work unit waits in phase Waiting",
    )

    @model_validator(mode="after")
    def _executable_xor_components(self) -> ExperimentSpec:
        if (self.executable is None) == (self.components is None):
            raise ValueError("give either executable or components")
        if self.components is not None:
            if not self.components:
                raise ValueError("components is empty")
            for name in self.components:
                if not _COMPONENT_NAME_RE.match(name):
                    raise ValueError(
                        f"component name {name!r}: lower case letters, digits, - and _, "
                        "starting with a letter"
                    )
            variables = [component_variable(n) for n in self.components]
            if len(set(variables)) != len(variables):
                raise ValueError("component names must differ in more than - and _")
        return self

    @property
    def needed_artifacts(self) -> list[ArtifactRef]:
        """Every artifact the work units need on the cluster: the executable's, or each
        component's (once each)."""
        exes = [self.executable] if self.executable is not None else []
        exes += [c.executable for c in (self.components or {}).values()]
        found: dict[str, ArtifactRef] = {}
        for exe in exes:
            for ref in exe.artifacts:
                found.setdefault(ref.staged_name, ref)
        return list(found.values())

    @property
    def main(self) -> Executable:
        """The executable (the first component's, for an experiment of components)."""
        if self.executable is not None:
            return self.executable
        assert self.components
        return next(iter(self.components.values())).executable

    @property
    def ranks(self) -> int:
        """Processes of one work unit, over all its components."""
        if self.components is None:
            return self.resources.ranks
        return sum(c.resources.merged_over(self.resources).ranks for c in self.components.values())

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


class ExperimentStatus(StatusModel):
    """Written by the controller."""

    observed_generation: int | None = None
    phase: ExperimentPhase = ExperimentPhase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    work_units: dict[str, int] = Field(
        default_factory=dict, description="work units per phase, and 'total'"
    )
    failed_indexes: list[int] = Field(default_factory=list)
    artifacts: list[ArtifactStatus] = Field(
        default_factory=list, description="each artifact of the executable on the cluster"
    )
    start_time: datetime | None = None
    completion_time: datetime | None = None


class Experiment(SpecModel):
    """A sweep of work units, run on one cluster until every unit converges."""

    api_version: Literal["lxr.dev/v1alpha1"] = API_VERSION
    kind: Literal["Experiment"] = "Experiment"
    metadata: ObjectMeta
    spec: ExperimentSpec
    status: ExperimentStatus | None = None


# --------------------------------------------------------------------------- WorkUnit (read-only)


class Attempt(StatusModel):
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
    rank_exit_codes: list[int | None] | None = Field(
        default=None, description="a work unit of several ranks: each rank's exit code, by rank"
    )
    first_failed_rank: int | None = Field(
        default=None, description="the rank that ended non-zero first"
    )
    resources: dict[str, Any] | None = Field(
        default=None,
        description="what this attempt asked the scheduler for (cluster defaults merged in, "
        "scaled by a failurePolicy rule)",
    )


class WorkUnitSpec(StatusModel):
    """What the work unit runs."""

    index: int
    args: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)


class WorkUnitStatus(StatusModel):
    """Written by the controller."""

    phase: WorkUnitPhase
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    failures: int = 0
    disruptions: int = 0
    next_attempt_after: datetime | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    conditions: list[Condition] = Field(
        default_factory=list,
        description="DependenciesMet: False while the work unit waits (the message names "
        "the unmet dependencies) or when they can no longer be met, True once they were met "
        "(until its attempt ends)",
    )

    @model_validator(mode="after")
    def _dependency_condition(self) -> WorkUnitStatus:
        found = dependency_condition(self.phase.value, self.reason, self.message)
        if found and not any(c.type == found["type"] for c in self.conditions):
            self.conditions.append(Condition.model_validate(found))
        return self


class WorkUnit(StatusModel):
    """One run of the executable with one set of arguments (read-only; made from an Experiment)."""

    api_version: str = API_VERSION
    kind: Literal["WorkUnit"] = "WorkUnit"
    metadata: dict[str, Any]
    spec: WorkUnitSpec
    status: WorkUnitStatus
