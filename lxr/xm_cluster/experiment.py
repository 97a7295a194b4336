"""An ``xm.Experiment`` whose launches write desired state into lxr's store.

Nothing here talks to a scheduler. ``experiment.add(...)`` records work units in memory; when
the ``with`` block ends without an error, artifacts are staged to each cluster (only the blobs
it lacks) and every work unit is written in ONE database transaction, as lxr Experiments
(one per cluster, executable and resources: the reconciler packs each into job arrays). A
script that raises midway writes nothing.

Waiting on a work unit inside the block (``await wu.wait_until_complete()``) first writes what
was added so far, then reconciles in this process unless a controller is running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from xmanager import xm
from xmanager.xm import async_packager
from xmanager.xm import utils as xm_utils

from lxr.api.phases import WORK_UNIT_ACTIVE, WorkUnitPhase
from lxr.api.resources import (
    Executable,
    Experiment,
    ExperimentSpec,
    ObjectMeta,
    RequeuePolicy,
    Resources,
    WorkUnitTemplate,
)
from lxr.redaction import redact
from lxr.staging import Blob, Stager, StagingReport, summary_line
from lxr.store import NotFound, Store
from lxr.xm_cluster.array_job import ArrayJob
from lxr.xm_cluster.executors import GridEngine, executor_resources
from lxr.xm_cluster.packaging import (
    ClusterExecutable,
    build_fileset_blob,
    package_batch,
    reset_build_cache,
)
from lxr.xm_cluster.specs import PLACEHOLDER_RE, fileset_by_uid, resolve_path

__all__ = [
    "ANNOTATION_TITLE",
    "ANNOTATION_WORK_UNITS",
    "LABEL_EXPERIMENT_ID",
    "ClusterExperiment",
    "ClusterWorkUnit",
    "WorkUnitStatus",
    "create_experiment",
    "get_experiment",
    "launched_experiments",
]

LABEL_EXPERIMENT_ID = "xm.lxr.dev/experiment-id"
ANNOTATION_TITLE = "xm.lxr.dev/title"
#: JSON list, by lxr work-unit index: [xm work unit id, task number within it]
ANNOTATION_WORK_UNITS = "xm.lxr.dev/work-units"

_POLL_SECONDS = 0.3

_launched: list[str] = []
_launched_lock = threading.Lock()


def launched_experiments() -> list[str]:
    """Names of the lxr Experiments written by launches in this process (``lxr launch`` waits
    on them)."""
    with _launched_lock:
        return list(_launched)


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
class _Task:
    """One lxr work unit to write: one xm Job (or one ArrayJob entry) of an xm work unit."""

    work_unit: ClusterWorkUnit
    number: int
    job: xm.Job
    ref: tuple[str, int] | None = None  # (lxr experiment, index) once written


@dataclass
class _Built:
    """A task resolved against its staged artifacts."""

    cluster: str
    key: str
    command: list[str]
    exec_env: dict[str, str]
    working_dir: str | None
    resources: Resources
    requeue: RequeuePolicy
    args: dict[str, Any]
    env: dict[str, str]
    task: _Task
    name: str = field(default="")


def _substitute(value: Any, paths: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER_RE.sub(lambda m: paths[m.group(1)], value)
    return value


def _split_args(
    args: xm.SequentialArgs, paths: Mapping[str, str]
) -> tuple[list[str], dict[str, Any]]:
    """Leading positional args (part of the command) and keyword args (lxr work-unit args)."""
    positional: list[str] = []
    keywords: dict[str, Any] = {}
    items = args._items  # noqa: SLF001 - xm has no public accessor for the item order
    for item in items:
        if isinstance(item, xm.SequentialArgs._RegularItem):  # noqa: SLF001
            if keywords:
                raise ValueError(
                    f"positional argument {item.value!r} after keyword arguments: lxr passes "
                    "work-unit args as --key=value flags after the command"
                )
            positional.append(_substitute(xm_utils.ARGV_ESCAPER(item.value), paths))
            continue
        value = args._kwvalues[item.name]  # noqa: SLF001
        if value is None:
            continue  # xm skips None: the program's default applies
        if isinstance(value, bool | int | float):
            keywords[item.name] = value
        elif isinstance(value, list | tuple | dict):
            raise ValueError(
                f"argument {item.name}={value!r}: lists are not supported by lxr work units; "
                "pass a string (e.g. a comma-separated list)"
            )
        else:
            keywords[item.name] = _substitute(xm_utils.ARGV_ESCAPER(value), paths)
    return positional, keywords


def _runtime_command(
    exe: ClusterExecutable, executor: Any, roots: Mapping[str, str], gpus: bool
) -> tuple[list[str], dict[str, str], str | None]:
    """``(command, env, working dir)`` of an executable staged at ``roots`` (blob -> path)."""
    env: dict[str, str] = {}
    workdir: str | None = None
    if exe.kind == "python":
        env["PYTHONPATH"] = roots[exe.blob.name]
        if exe.module:
            command = [exe.python, "-m", exe.module]
        else:
            script = "\n".join(exe.commands or []) + ' "$@"'
            command = ["bash", "-c", script, "bash"]
    else:
        workdir = roots[exe.blob.name]
        command = list(exe.entrypoint or [])
    if exe.image is None and exe.image_blob is None:
        return command, env, workdir
    image = roots[exe.image_blob.name] if exe.image_blob is not None else exe.image
    assert image is not None
    blobs_dir = roots[exe.blob.name].rsplit("/", 1)[0]
    runtime = getattr(executor, "container_runtime", "singularity")
    options = list(getattr(executor, "container_options", []))
    if runtime == "podman":
        if exe.image_blob is not None:
            raise ValueError("podman cannot run a .sif image: use a docker:// URI")
        ref = image.removeprefix("docker://")
        gpu = ["--device", "nvidia.com/gpu=all"] if gpus else []
        wd = ["-w", workdir] if workdir else []
        wrapped = ["podman", "run", "--rm", "--env-host", "-v", f"{blobs_dir}:{blobs_dir}:ro"]
        return [*wrapped, *gpu, *wd, *options, ref, *command], env, workdir
    nv = ["--nv"] if gpus else []
    wrapped = [runtime, "exec", *nv, "--bind", blobs_dir, *options, image]
    return [*wrapped, *command], env, workdir


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
        self._work_unit_id = work_unit_id
        self.tasks: list[_Task] = []
        self._refs: list[tuple[str, int]] = []  # rehydrated from the store
        self._stopped_before_write = False

    @property
    def work_unit_id(self) -> int:
        """1, 2, ... in the order units were added."""
        return self._work_unit_id

    @property
    def experiment_unit_name(self) -> str:
        """``<experiment id>_<work unit id>``."""
        return f"{self._experiment.experiment_id}_{self._work_unit_id}"

    @property
    def refs(self) -> list[tuple[str, int]]:
        """``(lxr experiment, work-unit index)`` of each task written so far."""
        return self._refs + [t.ref for t in self.tasks if t.ref is not None]

    def _add_job(self, job: xm.Job) -> None:
        if not isinstance(job.executable, ClusterExecutable):
            raise TypeError(
                f"job {job.name!r}: its executable was not packaged by lxr "
                "(use experiment.package() with xm_cluster specs)"
            )
        executor_resources(job.executor)  # fail in the script, not at write time
        task = _Task(self, len(self.tasks), job)
        self.tasks.append(task)
        self._experiment._pending_add(task)  # noqa: SLF001

    async def _launch_job_group(
        self, job_group: xm.JobGroup, args_view: Mapping[str, Any], identity: str
    ) -> None:
        def walk(group: xm.JobGroup) -> None:
            for job in group.jobs.values():
                if isinstance(job, xm.JobGroup):
                    walk(job)
                elif isinstance(job, xm.Job):
                    self._add_job(job)
                else:
                    raise TypeError(f"unsupported job in a group: {job!r}")

        walk(job_group)

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
                stopped = (name, idx) in self._experiment._stop_requests  # noqa: SLF001
                phases.append((WorkUnitPhase.STOPPED if stopped else WorkUnitPhase.UNKNOWN).value)
                continue
            st = unit.status
            phases.append(st.phase.value)
            if st.reason or st.message:
                messages.append(
                    f"{name}/{idx}: {st.phase.value} {st.reason or ''} {st.message or ''}"
                )
        return WorkUnitStatus(phases, "; ".join(m.strip() for m in messages))

    async def _wait_until_complete(self) -> None:
        if any(t.ref is None for t in self.tasks):
            await self._experiment._write_pending()  # noqa: SLF001
        while True:
            status = self.get_status()
            if not status.is_active:
                break
            await self._experiment._reconcile_step()  # noqa: SLF001
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
            self._experiment._pending_drop(self)  # noqa: SLF001
            self._stopped_before_write = True
            return
        self._experiment._request_stop(self)  # noqa: SLF001


# --------------------------------------------------------------------------- experiment


def _slug(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return (slug or "xm")[:36].strip("-") or "xm"


class ClusterExperiment(xm.Experiment):
    """An XManager experiment stored as lxr Experiments."""

    _async_packager = async_packager.AsyncPackager(package_batch)

    def __init__(
        self,
        experiment_title: str | None = None,
        *,
        store: Store | None = None,
        experiment_id: int | None = None,
        metrics: Any | None = None,
        quiet: bool = False,
        spec_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # absl sends INFO to stderr: keep the store's schema migration out of launch output
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self._title = experiment_title or "xm"
        self.store = store or Store()
        self._id = experiment_id if experiment_id is not None else time.time_ns() // 1_000_000
        self.metrics = metrics
        self.quiet = quiet
        self.spec_overrides = dict(spec_overrides or {})
        self._work_units: dict[int, ClusterWorkUnit] = {}
        self._lock = threading.Lock()
        self._pending: list[_Task] = []
        self._written_groups = 0
        self.staging_reports: list[StagingReport] = []
        self._stagers: dict[str, Stager] = {}
        self._cluster_is_local: dict[str, bool] = {}
        self._reconciler: Any = None  # lxr.reconciler.inprocess.InProcessReconciler, lazily
        self._reconcile_lock: asyncio.Lock | None = None
        self._stop_requests: set[tuple[str, int]] = set()

    # ---------------------------------------------------------------- identity

    @property
    def experiment_id(self) -> int:
        """A unique id (milliseconds since the epoch at creation), kept as a label."""
        return self._id

    @property
    def experiment_title(self) -> str:
        """The title given at creation."""
        return self._title

    @property
    def work_unit_count(self) -> int:
        """How many work units were added."""
        return len(self._work_units)

    @property
    def work_units(self) -> Mapping[int, ClusterWorkUnit]:
        """Work units by id."""
        return dict(self._work_units)

    def _create_experiment_unit(
        self, args: Mapping[str, Any] | None, role: xm.ExperimentUnitRole, identity: str
    ) -> Awaitable[xm.ExperimentUnit]:
        if not isinstance(role, xm.WorkUnitRole):
            raise NotImplementedError("lxr runs work units only (no auxiliary units)")
        with self._lock:
            if identity:
                for wu in self._work_units.values():
                    if wu.identity == identity:
                        return _done(wu)
            wu_id = len(self._work_units) + 1
            wu = ClusterWorkUnit(self, self._create_task, args, role, wu_id, identity)
            self._work_units[wu_id] = wu
        return _done(wu)

    def _get_experiment_unit(
        self,
        experiment_id: int,
        identity: str,
        role: xm.ExperimentUnitRole,
        args: Mapping[str, Any] | None = None,
    ) -> Awaitable[xm.ExperimentUnit]:
        for wu in self._work_units.values():
            if wu.identity == identity:
                return _done(wu)
        raise xm.NotFoundError(f"no work unit with identity {identity!r}")

    def _should_reload_experiment_unit(self, role: xm.ExperimentUnitRole) -> bool:
        return False

    # ---------------------------------------------------------------- sweeps

    def add(self, job: Any, args: Any = None, **kwargs: Any) -> Any:
        """xm's ``add``; with ``args=[{...}, ...]`` (xmanager-slurm), one work unit per element,
        and the awaitable gives the list of them."""
        if isinstance(args, Sequence) and not isinstance(args, str | bytes | Mapping):
            futs = [super(ClusterExperiment, self).add(job, a, **kwargs) for a in args]

            async def gather() -> list[Any]:
                return [await f for f in futs]

            return asyncio.wrap_future(self._create_task(gather()), loop=self._event_loop)
        return super().add(job, args, **kwargs)

    # ---------------------------------------------------------------- context

    def __enter__(self) -> ClusterExperiment:
        reset_build_cache()
        return super().__enter__()

    def __exit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        try:
            super().__exit__(exc_type, exc_value, tb)
        except BaseException:
            self._discard()
            raise
        finally:
            # xm made this loop for the block and stopped it, but does not close it
            if not self._event_loop.is_running():
                self._event_loop.close()
        if exc_type is not None:
            self._discard()
            return
        asyncio.run(self._finish())

    async def __aenter__(self) -> ClusterExperiment:
        reset_build_cache()
        return await super().__aenter__()

    async def __aexit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        try:
            await super().__aexit__(exc_type, exc_value, tb)
        except BaseException:
            self._discard()
            raise
        if exc_type is not None:
            self._discard()
            return
        await self._finish()

    async def _finish(self) -> None:
        try:
            await self._write_pending()
        finally:
            await self._release_controller()
            await self._close_stagers()
        line = summary_line(self.staging_reports)
        if not self.quiet:
            print(line, flush=True)

    def _discard(self) -> None:
        with self._lock:
            self._pending.clear()

    # ---------------------------------------------------------------- writing

    def _pending_add(self, task: _Task) -> None:
        with self._lock:
            self._pending.append(task)

    def _pending_drop(self, wu: ClusterWorkUnit) -> None:
        with self._lock:
            self._pending = [t for t in self._pending if t.work_unit is not wu]

    async def _write_pending(self) -> None:
        """Stage and write what was added so far: one transaction."""
        with self._lock:
            tasks, self._pending = self._pending, []
        if not tasks:
            return
        try:
            await self._write(tasks)
        except BaseException:
            with self._lock:
                self._pending = tasks + self._pending
            raise

    def _stager(self, cluster: str) -> Stager:
        if cluster not in self._stagers:
            from lxr.schedulers.registry import default_staging_dir, make_transport

            spec = self.store.get_cluster(cluster).spec
            on_bytes = self.metrics.staged_bytes if self.metrics is not None else None
            self._stagers[cluster] = Stager(
                cluster, make_transport(spec), default_staging_dir(cluster, spec), on_bytes
            )
        return self._stagers[cluster]

    async def _write(self, tasks: list[_Task]) -> None:
        # launches finish in any order (generators run concurrently): index by work unit id
        tasks = sorted(tasks, key=lambda t: (t.work_unit.work_unit_id, t.number))
        # 1. artifacts each cluster needs, including filesets named only in args/env
        needs: dict[str, dict[str, Blob]] = {}
        extra_filesets: dict[str, Blob] = {}
        for task in tasks:
            job = task.job
            exe = job.executable
            assert isinstance(exe, ClusterExecutable)
            cluster, _, _ = executor_resources(job.executor)
            blobs = needs.setdefault(cluster, {})
            for blob in exe.blobs():
                blobs[blob.name] = blob
            texts = [str(v) for v in xm.merge_args(exe.args, job.args).to_dict().values()]
            texts += [str(k) for k in xm.merge_args(exe.args, job.args).to_dict()]
            texts += [str(v) for v in {**exe.env_vars, **job.env_vars}.values()]
            for text in texts:
                for uid in PLACEHOLDER_RE.findall(text):
                    if uid not in exe.filesets:
                        extra_filesets[uid] = build_fileset_blob(fileset_by_uid(uid))
                        blobs[extra_filesets[uid].name] = extra_filesets[uid]
        # 2. stage: one existence check per cluster, uploads of what is missing
        reports: dict[str, StagingReport] = {}
        for cluster, blobs in needs.items():
            reports[cluster] = await self._stager(cluster).stage(list(blobs.values()))
            # the controller exports these totals as lxr_staging_bytes_total: uploads happen
            # here, in the launch process, whether or not the experiment is then written
            self.store.add_staged_bytes(cluster, reports[cluster].bytes_uploaded)
        self.staging_reports.extend(reports.values())
        # 3. resolve every task against its staged paths, group into lxr experiments
        built = [self._build(task, reports, extra_filesets) for task in tasks]
        groups: dict[tuple[str, str], list[_Built]] = {}
        for b in built:
            groups.setdefault((b.cluster, b.key), []).append(b)
        experiments: list[tuple[Experiment, list[_Built]]] = []
        for members in groups.values():
            self._written_groups += 1
            experiments.append((self._lxr_experiment(members), members))
        # 4. one transaction for all of them
        with self.store.transaction():
            for exp, _ in experiments:
                self.store.apply(exp)
        for exp, members in experiments:
            for idx, b in enumerate(members):
                b.task.ref = (exp.metadata.name, idx)
        with _launched_lock:
            _launched.extend(exp.metadata.name for exp, _ in experiments)
        from lxr.reconciler.wakeup import wake_controller

        wake_controller(self.store)

    def _on_this_machine(self, cluster: str) -> bool:
        """True when ``cluster`` runs tasks on this machine (no SSH); asked once per cluster."""
        if cluster not in self._cluster_is_local:
            self._cluster_is_local[cluster] = self.store.get_cluster(cluster).spec.ssh is None
        return self._cluster_is_local[cluster]

    def _build(
        self, task: _Task, reports: Mapping[str, StagingReport], extra: Mapping[str, Blob]
    ) -> _Built:
        job = task.job
        exe = job.executable
        assert isinstance(exe, ClusterExecutable)
        cluster, resources, requeue = executor_resources(job.executor)
        report = reports[cluster]
        roots = {b.name: report.path(b) for b in exe.blobs()}
        paths = {uid: report.path(b) for uid, b in {**exe.filesets, **extra}.items()}
        if isinstance(job.executor, GridEngine) and job.executor.pe:
            options = self.store.get_cluster(cluster).spec.options
            pe = getattr(options, "parallel_environment", None)
            if job.executor.pe != pe:
                raise ValueError(
                    f"GridEngine(pe={job.executor.pe!r}): cluster {cluster} uses parallel "
                    f"environment {pe!r}; set spec.sge.parallelEnvironment on the Cluster"
                )
        command, exec_env, workdir = _runtime_command(
            exe, job.executor, roots, gpus=bool(resources.gpus)
        )
        if workdir is None and self._on_this_machine(cluster):
            # on this machine, tasks run beside the launch script, never in the cwd of
            # whichever process reconciles (lxr.api.paths); over SSH, in the login home
            workdir = resolve_path(".")
        positional, keywords = _split_args(xm.merge_args(exe.args, job.args), paths)
        command += positional
        env = {k: _substitute(str(v), paths) for k, v in {**exe.env_vars, **job.env_vars}.items()}
        key = json.dumps(
            [command, exec_env, workdir, resources.model_dump(mode="json"), requeue.value],
            sort_keys=True,
        )
        return _Built(
            cluster, key, command, exec_env, workdir, resources, requeue, keywords, env, task
        )

    def _lxr_experiment(self, members: list[_Built]) -> Experiment:
        first = members[0]
        n = self._written_groups
        name = f"{_slug(self._title)}-{self._id}" + (f"-{n}" if n > 1 else "")
        # env identical in every unit belongs to the executable; the rest to each unit
        common = dict(first.env)
        for b in members[1:]:
            common = {k: v for k, v in common.items() if b.env.get(k) == v}
        units = []
        for b in members:
            wu = b.task.work_unit
            label = str(wu.work_unit_id)
            if len(wu.tasks) > 1:
                label += f".{b.task.number}"
            units.append(
                WorkUnitTemplate(
                    name=label,
                    args=b.args,
                    env={k: v for k, v in b.env.items() if k not in common},
                )
            )
        return Experiment(
            metadata=ObjectMeta(
                name=name,
                labels={LABEL_EXPERIMENT_ID: str(self._id)},
                annotations={
                    ANNOTATION_TITLE: self._title,
                    ANNOTATION_WORK_UNITS: json.dumps(
                        [[b.task.work_unit.work_unit_id, b.task.number] for b in members]
                    ),
                },
            ),
            spec=ExperimentSpec(
                cluster=first.cluster,
                executable=Executable(
                    command=first.command,
                    env={**first.exec_env, **common},
                    working_dir=first.working_dir,
                ),
                resources=first.resources,
                work_units=units,
                requeue=first.requeue,
                **self.spec_overrides,
            ),
        )

    # ---------------------------------------------------------------- waiting, stopping

    async def _reconcile_step(self) -> None:
        """Let the world move on: run one reconcile pass here unless a controller runs."""
        if self._reconcile_lock is None:
            self._reconcile_lock = asyncio.Lock()
        async with self._reconcile_lock:
            if self._reconciler is None:
                from lxr.reconciler.inprocess import InProcessReconciler

                self._reconciler = InProcessReconciler(self.store)
            await self._reconciler.step(_POLL_SECONDS)

    async def _release_controller(self) -> None:
        reconciler, self._reconciler = self._reconciler, None
        if reconciler is not None:
            await reconciler.close()

    async def _close_stagers(self) -> None:
        stagers, self._stagers = self._stagers, {}
        for stager in stagers.values():
            try:
                await stager.transport.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass

    def _request_stop(self, wu: ClusterWorkUnit) -> None:
        self._pending_drop(wu)
        self._stop_requests.update(wu.refs)
        by_exp: dict[str, set[int]] = {}
        for name, idx in wu.refs:
            by_exp.setdefault(name, set()).add(idx)
        for name, indexes in sorted(by_exp.items()):
            try:
                self.store.stop_work_units(name, indexes)
            except NotFound:
                continue  # deleted meanwhile: nothing left to stop
        from lxr.reconciler.wakeup import wake_controller

        wake_controller(self.store)


def _done(value: Any) -> Awaitable[Any]:
    # a bare coroutine: xm awaits it on its own loop (a Future would bind the caller's loop)
    async def done() -> Any:
        return value

    return done()


def create_experiment(
    experiment_title: str | None = None,
    *,
    store: Store | None = None,
    metrics: Any | None = None,
    quiet: bool = False,
    spec_overrides: Mapping[str, Any] | None = None,
) -> ClusterExperiment:
    """A new experiment; use it as ``with`` / ``async with`` context.

    ``spec_overrides``: lxr ExperimentSpec fields for every experiment written, e.g.
    ``{"backoff_limit_per_index": 0, "parallelism": 8}``. ``metrics``: a
    :class:`lxr.metrics.Metrics` fed with the staged bytes.
    """
    return ClusterExperiment(
        experiment_title,
        store=store,
        metrics=metrics,
        quiet=quiet,
        spec_overrides=spec_overrides,
    )


def get_experiment(experiment_id: int, *, store: Store | None = None) -> ClusterExperiment:
    """The experiment ``experiment_id`` as stored (its work units with their status)."""
    store = store or Store()
    exps = store.list_experiments({LABEL_EXPERIMENT_ID: str(experiment_id)})
    if not exps:
        raise xm.NotFoundError(f"no xm experiment {experiment_id} in {redact(store.url)}")
    title = exps[0].metadata.annotations.get(ANNOTATION_TITLE, "xm")
    exp = ClusterExperiment(title, store=store, experiment_id=int(experiment_id))
    for lxr_exp in sorted(exps, key=lambda e: e.metadata.creation_timestamp or 0):
        ids = json.loads(lxr_exp.metadata.annotations.get(ANNOTATION_WORK_UNITS, "[]"))
        for idx, (wu_id, _number) in enumerate(ids):
            wu = exp._work_units.get(wu_id)  # noqa: SLF001
            if wu is None:
                wu = ClusterWorkUnit(exp, _no_tasks, None, xm.WorkUnitRole(), wu_id)
                exp._work_units[wu_id] = wu  # noqa: SLF001
            wu._refs.append((lxr_exp.metadata.name, idx))  # noqa: SLF001
    exp._work_units = dict(sorted(exp._work_units.items()))  # noqa: SLF001
    return exp


def _no_tasks(_: Awaitable[Any]) -> futures.Future[Any]:
    raise RuntimeError("a rehydrated experiment cannot add jobs; create a new experiment")
