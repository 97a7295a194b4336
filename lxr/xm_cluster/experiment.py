"""An ``xm.Experiment`` whose launches write desired state into lxr's store.

Nothing here talks to a scheduler or a cluster. ``experiment.add(...)`` records work units in
memory; when the ``with`` block ends without an error, the packaged artifacts are recorded by
digest in the store's blob store and every work unit is written in ONE database transaction,
as lxr Experiments (one per cluster, executable and resources: the reconciler packs each into
job arrays). The controller stages the artifacts to each cluster (only the blobs it lacks)
before it submits. A script that raises midway writes nothing.

Waiting on a work unit inside the block (``await wu.wait_until_complete()``) first writes what
was added so far, then reconciles in this process unless a controller is running.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import subprocess
import threading
import time
from collections.abc import Awaitable, Mapping, Sequence
from concurrent import futures
from typing import Any

from xmanager import xm
from xmanager.xm import async_packager

from lxr.api.capabilities import unsupported
from lxr.api.resources import ClusterSpec, Resources
from lxr.staging import StagingReport
from lxr.store import NotFound, Store
from lxr.xm_cluster.accelerators import resolve_accelerator
from lxr.xm_cluster.context import (
    ANNOTATION_ARTIFACTS,
    ANNOTATION_DESCRIPTION,
    ANNOTATION_NOTES,
    ANNOTATION_TAGS,
    ExperimentContext,
)
from lxr.xm_cluster.dependencies import JobDependency, per_element
from lxr.xm_cluster.launch_controller import start_controller, stop_controller
from lxr.xm_cluster.packaging import package_batch, reset_build_cache
from lxr.xm_cluster.staged import recorded_line, staging_reports
from lxr.xm_cluster.work_unit import ClusterWorkUnit, Task, WorkUnitStatus
from lxr.xm_cluster.writer import (
    ANNOTATION_TITLE,
    ANNOTATION_WORK_UNITS,
    LABEL_EXPERIMENT_ID,
    lxr_experiment,
    slug,
    write_tasks,
)

__all__ = [
    "ANNOTATION_TITLE",
    "ANNOTATION_WORK_UNITS",
    "LABEL_EXPERIMENT_ID",
    "ClusterExperiment",
    "ClusterWorkUnit",
    "WorkUnitStatus",
    "create_experiment",
    "launched_experiments",
]

_POLL_SECONDS = 0.3
#: the annotations the context owns (rewritten when it changes)
CONTEXT_KEYS = frozenset(
    {
        ANNOTATION_TITLE,
        ANNOTATION_TAGS,
        ANNOTATION_NOTES,
        ANNOTATION_DESCRIPTION,
        ANNOTATION_ARTIFACTS,
    }
)

_launched: list[str] = []
_launched_lock = threading.Lock()


def launched_experiments() -> list[str]:
    """Names of the lxr Experiments written by launches in this process (``lxr launch`` waits
    on them)."""
    with _launched_lock:
        return list(_launched)


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
        stored_annotations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        # absl sends INFO to stderr: keep the store's schema migration out of launch output
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self._title = experiment_title or "xm"
        self._context = ExperimentContext(
            getpass.getuser(), self._title, dict(stored_annotations or {}), self._context_changed
        )
        self._names: list[str] = []  # the lxr Experiments written (or found) so far
        self.store = store or Store()
        self._id = experiment_id if experiment_id is not None else time.time_ns() // 1_000_000
        self.metrics = metrics
        self.quiet = quiet
        self.spec_overrides = dict(spec_overrides or {})
        self._work_units: dict[int, ClusterWorkUnit] = {}
        self._lock = threading.Lock()
        self._pending: list[Task] = []
        self._written_groups = 0
        self._writes: list[list[str]] = []  # the experiments of each write
        self._controller: subprocess.Popen[bytes] | None = None
        self._stop_requests: set[tuple[str, int]] = set()
        self._entered = False
        self._next_dependency: JobDependency | None = None  # for the unit add() makes

    # ---------------------------------------------------------------- identity

    @property
    def experiment_id(self) -> int:
        """A unique id (milliseconds since the epoch at creation), kept as a label."""
        return self._id

    @property
    def experiment_title(self) -> str:
        """The title (``context.annotations.title``)."""
        return self._context.annotations.title

    @property
    def context(self) -> ExperimentContext:
        """Annotations (``title``, ``tags``, ``notes``, ``description``) and ``artifacts``,
        stored with the experiment."""
        return self._context

    def _context_changed(self) -> None:
        """Store the context's new values on every lxr Experiment written so far."""
        names = list(getattr(self, "_names", []))
        if not names:
            return  # written with the experiment
        wanted = self._annotations()
        for name in names:
            try:
                exp = self.store.get_experiment(name)
            except NotFound:
                continue
            kept = {k: v for k, v in exp.metadata.annotations.items() if k not in CONTEXT_KEYS}
            exp.metadata.annotations = {**kept, **wanted}
            self.store.apply(exp)

    @property
    def staging_reports(self) -> list[StagingReport]:
        """What the controller staged for this launch (one report per cluster and write),
        once it has: this waits for it (starting a controller for the wait when none runs)."""
        started = self.store.lease() is None and self._controller is None
        try:
            return staging_reports(self.store, self._writes, self._ensure_controller)
        finally:
            if started:
                asyncio.run(self._release_controller())

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
            wu_id = max(self._work_units, default=0) + 1
            wu = ClusterWorkUnit(self, self._create_task, args, role, wu_id, identity)
            wu.dependency = self._next_dependency
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
        """xm's ``add``, with XManager's identities: a unit whose ``identity`` this experiment
        already has (stored or added earlier) is adopted, not added again; a stored one that
        ended Failed or Stopped is rerun with a fresh budget (``lxr rerun``). With
        ``args=[{...}, ...]`` (xmanager-slurm), one work unit per element, element ``k`` with
        identity ``<identity>_<k>``; the awaitable gives the list of them.

        ``dependency=`` (xmanager-slurm's): ``wu.after_completed()`` and the like, combined
        with ``&``/``|``; with ``args=[...]``, one dependency for every unit or a list of one
        per element.

        Outside a ``with`` block (an experiment from :func:`get_experiment`), each call is its
        own block: the units are written when it returns.
        """
        if not self._entered:
            with self:
                return self.add(job, args, **kwargs)
        identity = kwargs.pop("identity", "") or ""
        dependency = kwargs.pop("dependency", None)
        if isinstance(args, Sequence) and not isinstance(args, str | bytes | Mapping):
            deps = per_element(dependency, len(args))
            futs = [
                self._add_one(job, a, f"{identity}_{k}" if identity else "", kwargs, deps[k])
                for k, a in enumerate(args)
            ]

            async def gather() -> list[Any]:
                return [await f for f in futs]

            return asyncio.wrap_future(self._create_task(gather()), loop=self._event_loop)
        return self._add_one(job, args, identity, kwargs, per_element(dependency, None)[0])

    def _add_one(
        self,
        job: Any,
        args: Any,
        identity: str,
        kwargs: dict[str, Any],
        dependency: JobDependency | None = None,
    ) -> Any:
        existing = self._by_identity(identity)
        if existing is not None:
            # a stored unit that ended Failed or Stopped runs again (lxr rerun): relaunching
            # a script on its experiment reruns what did not succeed, like Nextflow's -resume
            if existing.rerun_unsuccessful():
                from lxr.reconciler.wakeup import wake_controller

                wake_controller(self.store)
            done: futures.Future[Any] = futures.Future()
            done.set_result(existing)
            return asyncio.wrap_future(done, loop=self._event_loop)
        self._next_dependency = dependency
        try:
            return super().add(job, args, identity=identity, **kwargs)
        finally:
            self._next_dependency = None

    def _by_identity(self, identity: str) -> ClusterWorkUnit | None:
        if not identity:
            return None
        with self._lock:
            for wu in self._work_units.values():
                if wu.identity == identity:
                    return wu
        return None

    # ---------------------------------------------------------------- context

    def __enter__(self) -> ClusterExperiment:
        reset_build_cache()
        self._entered = True
        return super().__enter__()

    def __exit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        self._entered = False
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
        self._entered = True
        return await super().__aenter__()

    async def __aexit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        self._entered = False
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
        if not self.quiet:
            print(recorded_line(self.store, self._writes), flush=True)

    def _discard(self) -> None:
        with self._lock:
            self._pending.clear()

    # ---------------------------------------------------------------- writing

    def _pending_add(self, task: Task) -> None:
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

    async def _write(self, tasks: list[Task]) -> None:
        names = await write_tasks(
            self.store,
            tasks,
            lambda members: lxr_experiment(
                self._next_name(), self._id, self._annotations(), members, self.spec_overrides
            ),
        )
        self._names.extend(names)
        self._writes.append(list(names))
        with _launched_lock:
            _launched.extend(names)
        from lxr.reconciler.wakeup import wake_controller

        wake_controller(self.store)

    def _next_name(self) -> str:
        """A name no stored experiment has: ``<title>-<id>[-<n>]``."""
        while True:
            self._written_groups += 1
            n = self._written_groups
            name = f"{slug(self._title)}-{self._id}" + (f"-{n}" if n > 1 else "")
            try:
                self.store.get_experiment(name)
            except NotFound:
                return name

    def _check_resources(self, cluster: str, resources: Resources, components: int = 0) -> None:
        """Refuse at ``add`` what cannot be written: an accelerator the cluster's table lacks
        (a cluster not applied yet is reported when the block ends)."""
        try:
            spec = self.store.get_cluster(cluster).spec
        except NotFound:
            if cluster != "local":
                return
            spec = ClusterSpec(scheduler="local")
        resolve_accelerator(resources, spec, cluster)
        problems = unsupported(
            spec.scheduler, resources.merged_over(spec.defaults), components=components
        )
        if problems:
            raise ValueError(f"cluster {cluster}: " + "; ".join(problems))

    def _annotations(self) -> dict[str, str]:
        return self._context.as_annotations()

    # ---------------------------------------------------------------- waiting, stopping

    # ---------------------------------------------------------------- waiting, stopping

    async def _reconcile_step(self) -> None:
        """Let the world move on, reading only the store: a controller does the scheduler's
        side. When none holds the lease, one is started for this launch (``lxr controller
        run`` in its own process, stopped when the launch ends), so waiting on work units
        never runs ``squeue``/``qstat`` from the launch script."""
        if self.store.lease() is None:
            self._ensure_controller()
        await asyncio.sleep(_POLL_SECONDS)

    def _ensure_controller(self) -> None:
        child = self._controller
        if child is None or child.poll() is not None:  # none yet, or it ended
            self._controller = start_controller(self.store.url, f"{self._id}-{os.getpid()}")

    async def _release_controller(self) -> None:
        child, self._controller = self._controller, None
        if child is not None:
            await asyncio.to_thread(stop_controller, child)

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
    ``{"backoff_limit_per_index": 0, "parallelism": 8}``. ``metrics``: kept for lxm3's
    signature (the controller counts staged bytes).
    """
    return ClusterExperiment(
        experiment_title,
        store=store,
        metrics=metrics,
        quiet=quiet,
        spec_overrides=spec_overrides,
    )
