"""XManager work units of an lxr launch: their tasks, their status read from the store."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xmanager import xm

from lxr.api.dependencies import DependencyCondition
from lxr.api.phases import WORK_UNIT_ACTIVE, WorkUnitPhase
from lxr.store import NotFound
from lxr.xm_cluster.array_job import ArrayJob
from lxr.xm_cluster.dependencies import JobDependency, after, combine_all
from lxr.xm_cluster.executors import executor_resources
from lxr.xm_cluster.packaging import ClusterExecutable

if TYPE_CHECKING:
    from lxr.xm_cluster.experiment import ClusterExperiment

__all__ = ["ClusterWorkUnit", "Task", "WorkUnitStatus", "component_name"]


# --------------------------------------------------------------------------- status


class WorkUnitStatus(xm.ExperimentUnitStatus):
    """An xm status from lxr phases: BackOff is active (a retry is coming); Stopped is
    neither completed nor failed."""

    def __init__(self, phases: Sequence[str], message: str = "") -> None:
        self.phases = tuple(phases)
        self._message = message

    @property
    def is_active(self) -> bool:
        """Queued, running, or waiting for a retry."""
        return any(p in WORK_UNIT_ACTIVE for p in self.phases)

    @property
    def is_completed(self) -> bool:
        """Every task succeeded."""
        return bool(self.phases) and all(p == WorkUnitPhase.SUCCEEDED for p in self.phases)

    @property
    def is_failed(self) -> bool:
        """Finished, and a task failed."""
        return not self.is_active and WorkUnitPhase.FAILED in self.phases

    @property
    def message(self) -> str:
        """The phases, and why (for failed tasks)."""
        return self._message

    def __repr__(self) -> str:
        return f"WorkUnitStatus({', '.join(self.phases)})"


# --------------------------------------------------------------------------- tasks


@dataclass
class Task:
    """One lxr work unit to write: one xm Job (or one ArrayJob entry) of an xm work unit."""

    work_unit: ClusterWorkUnit
    number: int
    job: xm.Job
    ref: tuple[str, int] | None = None  # (lxr experiment, index) once written
    #: a job of an xm.JobGroup of several jobs: (the group's number in its work unit, the
    #: component's name); the group's jobs become one lxr work unit of components
    component: tuple[int, str] | None = None

    @property
    def cluster(self) -> str:
        """The lxr Cluster it runs on."""
        return executor_resources(self.job.executor)[0]


def component_name(key: str) -> str:
    """A JobGroup's job key as a component name: lower case, ``-`` for anything else than
    letters, digits, ``-`` and ``_``, starting with a letter."""
    name = re.sub(r"[^a-z0-9_-]+", "-", key.lower()).strip("-") or "job"
    return (name if name[0].isalpha() else f"c-{name}")[:63]


# --------------------------------------------------------------------------- work unit


class ClusterWorkUnit(xm.WorkUnit):
    """A work unit: one or more lxr work units (one per job / array task)."""

    def __init__(
        self,
        experiment: ClusterExperiment,
        create_task: Callable[[Awaitable[Any]], futures.Future[Any]],
        args: Mapping[str, Any] | None,
        role: xm.ExperimentUnitRole,
        work_unit_id: int,
        identity: str = "",
    ) -> None:
        super().__init__(experiment, create_task, args, role, identity=identity)
        self._experiment = experiment
        self._groups = 0  # JobGroups of several jobs added so far
        self._work_unit_id = work_unit_id
        self.tasks: list[Task] = []
        self._refs: list[tuple[str, int]] = []  # rehydrated from the store
        self._stopped_before_write = False
        #: what its tasks wait for (``experiment.add(..., dependency=...)``), if anything
        self.dependency: JobDependency | None = None

    @property
    def work_unit_id(self) -> int:
        """1, 2, ... in the order units were added."""
        return self._work_unit_id

    # ---------------------------------------------------------------- dependencies

    def after_started(self, *, time: Any = None) -> JobDependency:
        """A dependency met once every task of this unit started running (or ended)."""
        return after(self, DependencyCondition.STARTED, time)

    def after_finished(self) -> JobDependency:
        """A dependency met once every task of this unit ended, however."""
        return after(self, DependencyCondition.FINISHED)

    def after_completed(self) -> JobDependency:
        """A dependency met once every task of this unit succeeded; it fails (the dependent
        ends ``Stopped``, reason ``DependencyFailed``) when one ends for good otherwise."""
        return after(self, DependencyCondition.SUCCEEDED)

    def after_failed(self) -> JobDependency:
        """A dependency met once every task of this unit ended without success."""
        return after(self, DependencyCondition.FAILED)

    def add(
        self,
        job: Any,
        args: Mapping[str, Any] | None = None,
        *,
        dependency: JobDependency | None = None,
        identity: str = "",
    ) -> Any:
        """XManager's ``add``; ``dependency`` (xmanager-slurm's) holds the jobs back until it
        is met (with one given to ``experiment.add`` too, both must be)."""
        if dependency is not None:
            self.dependency = combine_all([self.dependency, dependency])
        return super().add(job, args, identity=identity)

    @property
    def experiment_unit_name(self) -> str:
        """``<experiment id>_<work unit id>``."""
        return f"{self._experiment.experiment_id}_{self._work_unit_id}"

    @property
    def refs(self) -> list[tuple[str, int]]:
        """``(lxr experiment, work-unit index)`` of each task written so far."""
        # the jobs of a JobGroup share one lxr work unit: once each
        return list(dict.fromkeys(self._refs + [t.ref for t in self.tasks if t.ref is not None]))

    def _add_job(
        self, job: xm.Job, component: tuple[int, str] | None = None, components: int = 0
    ) -> None:
        if not isinstance(job.executable, ClusterExecutable):
            raise TypeError(
                f"job {job.name!r}: its executable was not packaged by lxr "
                "(use experiment.package() with xm_cluster specs)"
            )
        # fail in the script's own line, not when the with block ends
        cluster, resources, _ = executor_resources(job.executor)
        self._experiment._check_resources(cluster, resources, components)
        task = Task(self, len(self.tasks), job, component=component)
        self.tasks.append(task)
        self._experiment._pending_add(task)

    async def _launch_job_group(
        self, job_group: xm.JobGroup, args_view: Mapping[str, Any], identity: str
    ) -> None:
        jobs: list[tuple[str, xm.Job]] = []

        def walk(group: xm.JobGroup, prefix: str) -> None:
            for key, job in group.jobs.items():
                if isinstance(job, xm.JobGroup):
                    walk(job, f"{prefix}{key}-")
                elif isinstance(job, xm.Job):
                    jobs.append((component_name(prefix + key), job))
                else:
                    raise TypeError(f"unsupported job in a group: {job!r}")

        walk(job_group, "")
        if len(jobs) == 1:  # experiment.add(job) is a group of one: a plain work unit
            self._add_job(jobs[0][1])
            return
        # several jobs: co-scheduled components of one work unit (a Slurm heterogeneous job)
        names = [n for n, _ in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"JobGroup: job names {names} repeat once made component names")
        number = self._groups
        self._groups += 1
        for name, job in jobs:
            self._add_job(job, (number, name), components=len(jobs))

    async def _launch_job_config(
        self, job_config: xm.JobConfig, args_view: Mapping[str, Any], identity: str
    ) -> None:
        if not isinstance(job_config, ArrayJob):
            raise TypeError(f"unsupported job config {type(job_config).__name__}")
        for args, env in job_config.tasks():
            self._add_job(
                xm.Job(
                    executable=job_config.executable,
                    executor=job_config.executor,
                    name=job_config.name or job_config.executable.name,
                    args=args,
                    env_vars=env,  # type: ignore[arg-type]  # attrs converter=dict (mypy)
                )
            )

    @property
    def launched_jobs(self) -> list[xm.LaunchedJob]:
        """One per task, addressed ``<lxr experiment>/<index>`` once written."""
        out = [
            xm.LaunchedJob(name=t.job.name, address=f"{t.ref[0]}/{t.ref[1]}" if t.ref else None)
            for t in self.tasks
        ]
        out += [xm.LaunchedJob(name=name, address=f"{name}/{idx}") for name, idx in self._refs]
        return out

    # ---------------------------------------------------------------- logs

    def logs(self, *, stderr: bool = False, attempt: int | None = None) -> str:
        """The output (``stderr=True``: standard error) of the unit's tasks, read from the
        cluster (over SSH if remote), latest attempt unless ``attempt`` is given; one
        section per task when the unit has several. A task that has not started yet reads
        as empty."""
        import anyio

        from lxr.schedulers.registry import make_driver

        store = self._experiment.store
        out: list[str] = []

        async def read(name: str, idx: int) -> str:
            try:
                cluster, tag, array_index, _job = store.find_attempt(name, idx, attempt)
            except NotFound:
                return ""
            driver = make_driver(cluster, store.get_cluster(cluster).spec)
            paths = driver.log_paths(tag, array_index)
            try:
                data = await driver.transport.read_file(paths.stderr if stderr else paths.stdout)
            except FileNotFoundError:
                data = b""
            finally:
                await driver.close()
            return data.decode(errors="replace")

        refs = self.refs
        for name, idx in refs:
            text = anyio.run(read, name, idx)
            out.append(text if len(refs) == 1 else f"==> {name}/{idx} <==\n{text}")
        return "\n".join(out)

    # ---------------------------------------------------------------- status

    def get_status(self) -> WorkUnitStatus:
        """The unit's status from its lxr work units' phases."""
        if self._stopped_before_write:
            return WorkUnitStatus([WorkUnitPhase.STOPPED.value], "stopped before it was written")
        unwritten = [t for t in self.tasks if t.ref is None]
        phases: list[str] = [WorkUnitPhase.PENDING.value] * len(unwritten)
        messages: list[str] = []
        store = self._experiment.store
        for name, idx in self.refs:
            try:
                [unit] = store.list_work_units(name, index=idx)
            except (NotFound, ValueError):
                # a stopped experiment is removed once its tasks are gone
                stopped = (name, idx) in self._experiment._stop_requests
                phases.append((WorkUnitPhase.STOPPED if stopped else WorkUnitPhase.UNKNOWN).value)
                continue
            st = unit.status
            phases.append(st.phase.value)
            if st.reason or st.message:
                messages.append(
                    f"{name}/{idx}: {st.phase.value} {st.reason or ''} {st.message or ''}"
                )
        return WorkUnitStatus(phases, "; ".join(m.strip() for m in messages))

    def rerun_unsuccessful(self) -> list[tuple[str, int]]:
        """Run again, with a fresh budget, the stored tasks of this unit that ended Failed or
        Stopped (``lxr rerun``); returns them. What ``add`` of a stored identity does."""
        store = self._experiment.store
        again = []
        for name, idx in self._refs:
            try:
                [unit] = store.list_work_units(name, index=idx)
            except (NotFound, ValueError):
                continue
            if unit.status.phase in (WorkUnitPhase.FAILED, WorkUnitPhase.STOPPED):
                store.rerun_work_units(name, [idx])
                again.append((name, idx))
        return again

    async def _wait_until_complete(self) -> None:
        if any(t.ref is None for t in self.tasks):
            await self._experiment._write_pending()
        while True:
            status = self.get_status()
            if not status.is_active:
                break
            await self._experiment._reconcile_step()
        if status.is_failed:
            raise xm.ExperimentUnitFailedError(status.message or "failed", work_unit=self)
        if not status.is_completed:
            raise xm.ExperimentUnitNotCompletedError(
                f"work unit {self.work_unit_id} was stopped", work_unit=self
            )

    def stop(
        self,
        *,
        mark_as_failed: bool = False,
        mark_as_completed: bool = False,
        message: str | None = None,
    ) -> None:
        """Stop the unit alone: tasks not yet written are dropped; written ones are marked
        ``stop_requested`` and the reconciler cancels them (or stops them if idle) while the
        experiment's other units go on. A stopped unit is neither completed nor failed."""
        del mark_as_failed, mark_as_completed, message  # lxr records why a task ended itself
        if all(t.ref is None for t in self.tasks) and not self._refs:
            self._experiment._pending_drop(self)
            self._stopped_before_write = True
            return
        self._experiment._request_stop(self)
