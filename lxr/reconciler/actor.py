"""The actor: carries out the planner's actions against the store and one cluster's driver.

Every store call goes through the controller's :class:`~lxr.reconciler.storecalls.StoreCalls`
(off the event loop, transient errors retried) on the store's *fenced* view, so each write
checks the lease epoch in its own transaction. Every scheduler call that creates or cancels
work is preceded by ``guard()``, which renews the lease and raises
:class:`~lxr.store.LeaseLost` when this controller no longer leads: a stale leader stops
before it reaches the scheduler.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lxr.api.argv import task_argv
from lxr.api.container import container_argv
from lxr.api.phases import SubmissionEvent, SubmissionTransition, submission_transition
from lxr.api.records import ExperimentRecord
from lxr.api.resources import STAGED_BLOBS, ClusterSpec, Executable, RequeuePolicy, Resources
from lxr.reconciler.actions import (
    Action,
    Cancel,
    Finalize,
    Resubmit,
    RetryIntent,
    SetStatus,
    Submit,
    SubmitEntry,
    SubmittedArray,
    UpdateStatus,
)
from lxr.reconciler.policy import scale_resources
from lxr.reconciler.storecalls import StoreCalls
from lxr.schedulers.base import ArrayJob, Driver, JobComponent, SubmitRejected, TaskSpec
from lxr.staging import Stager
from lxr.store import Store, SubmissionInfo

if TYPE_CHECKING:
    from lxr.metrics import Metrics

__all__ = ["CRASH_ENV", "STOP_ENV", "Actor", "env_crash_hook"]

log = logging.getLogger("lxr.controller")

#: ``LXR_TEST_CRASH_AT=intent-recorded|job-submitted`` makes the controller SIGKILL itself there
CRASH_ENV = "LXR_TEST_CRASH_AT"
#: ``LXR_TEST_STOP_AT=intent-recorded|job-submitted`` makes it SIGSTOP itself there, once (a
#: stalled leader, for the fencing tests: the test resumes it with SIGCONT)
STOP_ENV = "LXR_TEST_STOP_AT"
#: how long the stop waits for store calls already under way in worker threads
_STOP_SETTLE_SECONDS = 3.0


async def _no_guard() -> None:
    return None


def _new_tag(experiment: str) -> str:
    return f"{experiment[:40]}-{secrets.token_hex(5)}"


def _metric_reason(reason: str | None) -> str:
    if reason in ("Error", "SubmitError", "Cancelled", None):
        return "Failed"
    return reason


class Actor:
    """Carries out the planner's actions against the store and one cluster's driver.

    ``calls`` runs store calls (default: in a thread, with retries); ``guard`` is awaited
    immediately before every scheduler call that creates or cancels work.
    """

    def __init__(
        self,
        store: Store,
        driver: Driver,
        cluster_spec: ClusterSpec,
        metrics: Metrics | None = None,
        crash_hook: Callable[[str], None] | None = None,
        *,
        calls: StoreCalls | None = None,
        guard: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.driver = driver
        self.cluster_spec = cluster_spec
        self.metrics = metrics
        # tests inject crashes at the two points that matter for idempotent submission
        self.crash_hook = crash_hook or env_crash_hook()
        self.calls = calls or StoreCalls()
        self.guard = guard or _no_guard
        #: what the last action wrote, for the controller's cache: the experiment's change
        #: counter after a ``SetStatus``, the arrays accepted for a ``Submit``, the time
        #: recorded for a ``Cancel``; None otherwise
        self.written: int | float | list[SubmittedArray] | None = None
        #: the last submission the scheduler took: (job id, time written, the Accepted row)
        self.accepted: tuple[str, float, SubmissionTransition] | None = None

    @property
    def cluster(self) -> str:
        return self.driver.cluster

    async def execute(self, action: Action, desired: dict[str, ExperimentRecord]) -> int:
        """Carry out ``action``; returns the number of tasks it submitted."""
        db = self.calls
        self.written = None
        if isinstance(action, UpdateStatus):
            await db(self.store.apply_update, action, self.cluster)
            for sub_id, job_id in action.adoptions:
                log.info(
                    "cluster %s: adopted job %s (submission %d of experiment %s): found by "
                    "its tag, not submitted again",
                    self.cluster,
                    job_id,
                    sub_id,
                    _name(desired, action.experiment_uid),
                )
            if self.metrics:
                for h in action.handled:
                    self.metrics.failure_handled(self.cluster, h.action)
            return 0
        if isinstance(action, SetStatus):
            self.written = await db(self.store.write_status, action, self.cluster)
            if action.finished:
                log.info("experiment %s: %s", _name(desired, action.experiment_uid), action.phase)
            return 0
        if isinstance(action, Finalize):
            await db(self.store.finalize, action)
            log.info("experiment %s: deleted, its tasks all stopped", action.name)
            return 0
        if isinstance(action, Cancel):
            await self.guard()
            await self.driver.cancel(list(action.targets))
            when = time.time()
            await db(self.store.mark_cancel_requested, action.attempt_ids, when)
            self.written = when
            log.info(
                "cluster %s: cancelled %d task(s) of experiment %s (%s): %s",
                self.cluster,
                len(action.targets),
                _name(desired, action.experiment_uid),
                action.reason,
                _tasks_text(action.targets),
            )
            return 0
        if isinstance(action, RetryIntent):
            return await self._submit(await db(self.store.submission, action.submission_id))
        if isinstance(action, Submit):  # and Resubmit
            exp = desired[action.experiment_uid]
            total = 0
            accepted: list[SubmittedArray] = []
            # a heterogeneous job is never an array: one submission per work unit
            size = 1 if exp.spec.components else max(1, self.driver.max_array_size)
            base = (
                exp.spec.resources
                if exp.resources_resolved
                else exp.spec.resources.merged_over(self.cluster_spec.defaults)
            )
            # entries whose resources a failurePolicy rule scaled go out as arrays of their own
            by_scale: dict[tuple[tuple[str, Any], ...], list[SubmitEntry]] = {}
            for entry in action.entries:
                by_scale.setdefault(entry.scale, []).append(entry)
            for scale, entries in by_scale.items():
                asked = scale_resources(base, dict(scale)).model_dump(
                    mode="json", by_alias=True, exclude_none=True
                )
                for start in range(0, len(entries), size):
                    chunk = entries[start : start + size]
                    total += await self._record_and_submit(exp, action, chunk, asked, accepted)
            self.written = accepted
            return total
        raise TypeError(f"unknown action {action!r}")

    async def _record_and_submit(
        self,
        exp: ExperimentRecord,
        action: Submit,
        chunk: Sequence[SubmitEntry],
        asked: dict[str, Any],
        accepted: list[SubmittedArray],
    ) -> int:
        """Record the intent of one array (its attempts asking for ``asked``), then submit it;
        ``accepted`` gets it when the scheduler took it."""
        db = self.calls
        indexes = self.driver.array_indexes([e.index for e in chunk])
        tag = _new_tag(exp.name)
        attempts: dict[int, int] = {}
        sub_id = await db(
            self.store.record_intent,
            exp.uid,
            self.cluster,
            tag,
            [
                (e.work_unit_id, e.attempt, ai, e.retry_reason)
                for e, ai in zip(chunk, indexes, strict=True)
            ],
            phase=action.phase,
            attempt_phase=action.attempt_phase,
            resources=asked,
            attempts=attempts,
        )
        if self.crash_hook:
            self.crash_hook("intent-recorded")
        sub = await db(self.store.submission, sub_id)
        total = await self._submit(sub)
        if self.accepted is not None:
            job_id, when, row = self.accepted
            tasks = tuple(
                (e.work_unit_id, attempts[e.work_unit_id], e.attempt, ai)
                for e, ai in zip(chunk, indexes, strict=True)
                if e.work_unit_id in attempts
            )
            attempt_phase = (row.attempt or action.attempt_phase).value
            if len(tasks) == len(sub.tasks) == len(chunk):  # else the cache reads them back
                phase, state = action.phase.value, row.target.value
                accepted.append(
                    SubmittedArray(sub_id, tag, job_id, tasks, phase, state, attempt_phase, when)
                )
        if isinstance(action, Resubmit) and self.metrics:
            for e in chunk:
                self.metrics.resubmission(self.cluster, _metric_reason(e.retry_reason))
        return total

    def build_job(self, sub: SubmissionInfo) -> ArrayJob:
        """The array job a recorded submission stands for; :data:`STAGED_BLOBS` in its argv,
        environment and working directory becomes the cluster's blob directory."""
        spec = sub.spec
        root = self.driver.blobs_root
        if root is None and spec.needed_artifacts:
            raise RuntimeError(f"cluster {self.cluster}: artifacts not checked before submitting")

        def staged(text: str) -> str:
            return text.replace(STAGED_BLOBS, root) if root is not None else text

        def tasks_of(
            exe: Executable,
            own_args: Mapping[str, Any],
            own_env: Mapping[str, str],
            gpus: bool,
            **lxr: str,
        ) -> list[TaskSpec]:
            def argv(args: Mapping[str, Any]) -> list[str]:
                command = task_argv(exe.command, {**own_args, **args})
                if exe.container is None:
                    return command
                return container_argv(exe.container, command, gpus=gpus)  # inside the image

            return [
                TaskSpec(
                    array_index=array_index,
                    argv=[staged(a) for a in argv(args)],
                    env={
                        k: staged(v)
                        for k, v in {
                            **exe.env,
                            **own_env,
                            **env,
                            "LXR_EXPERIMENT": sub.experiment,
                            "LXR_WORK_UNIT": str(wu_index),
                            "LXR_ATTEMPT": str(attempt),
                            **lxr,
                        }.items()
                    },
                    working_dir=None if exe.working_dir is None else staged(exe.working_dir),
                    work_unit=wu_index,
                    attempt=attempt,
                    env_from=tuple(exe.env_from),
                )
                for array_index, wu_index, attempt, args, env in sub.tasks
            ]

        # what the attempts recorded they ask for (scaled by a failurePolicy rule); intents
        # recorded before attempts kept it ask for the spec over the cluster's defaults
        resources = (
            spec.resources.merged_over(self.cluster_spec.defaults)
            if sub.resources is None
            else Resources.model_validate(sub.resources)
        )
        components = tuple(
            JobComponent(
                name,
                (own := c.resources.merged_over(resources)),
                tasks_of(c.executable, c.args, c.env, bool(own.gpus), LXR_COMPONENT=name),
            )
            for name, c in (spec.components or {}).items()
        )
        return ArrayJob(
            tag=sub.tag,
            experiment=sub.experiment,
            experiment_uid=sub.experiment_uid,
            tasks=(
                components[0].tasks
                if components
                else tasks_of(spec.main, {}, {}, bool(resources.gpus))
            ),
            resources=resources,
            throttle=spec.parallelism,
            scheduler_requeue=spec.requeue is RequeuePolicy.SCHEDULER,
            components=components,
        )

    async def _submit(self, sub: SubmissionInfo) -> int:
        db = self.calls
        self.accepted = None
        if sub.spec.needed_artifacts and self.driver.blobs_root is None:
            # an intent retried by a restarted controller: where the blobs are, one check
            stager = Stager(self.cluster, self.driver.transport, self.driver.staging_dir)
            root, _ = await stager.check([])
            self.driver.blobs_root = f"{root}/blobs"
        job = self.build_job(sub)
        await self.guard()
        try:
            job_id = await self.driver.submit(job)
        except SubmitRejected as exc:
            # the next plan ends these attempts with reason SubmitError (a table row)
            row = submission_transition(sub.state, SubmissionEvent.REJECTED)
            await db(self.store.mark_submit_failed, sub.id, str(exc), row)
            log.warning(
                "cluster %s: the scheduler refused %d task(s) of experiment %s (tag %s): %s",
                self.cluster,
                len(job.tasks),
                sub.experiment,
                sub.tag,
                str(exc)[:500],
            )
            reason = row.event_reason or "SubmitRejected"
            await db(
                self.store.add_events,
                [("Warning", reason, str(exc)[:2000], "Experiment", sub.experiment)],
                sub.experiment_uid,
                self.cluster,
            )
            if self.metrics:
                self.metrics.submission(self.cluster, "error")
            return 0
        except Exception:
            if self.metrics:
                self.metrics.submission(self.cluster, "error")
            raise
        if self.crash_hook:
            self.crash_hook("job-submitted")
        accepted = submission_transition(sub.state, SubmissionEvent.ACCEPTED)
        when = await db(self.store.mark_submitted, sub.id, job_id, accepted)
        self.accepted = (job_id, when, accepted)
        # retries get their own reason, so `lxr get events` tells them from first submissions
        retried = sorted(t.work_unit for t in job.tasks if t.attempt > 1)
        what = f"{len(job.tasks)} task(s)"
        if retried:
            shown = ", ".join(map(str, retried[:10])) + (", ..." if len(retried) > 10 else "")
            what += f", retrying work unit(s) {shown}"
        await db(
            self.store.add_events,
            [
                (
                    "Normal",
                    "Resubmitted" if retried else "Submitted",
                    f"job {job_id}: {what} (tag {sub.tag})",
                    "Experiment",
                    sub.experiment,
                )
            ],
            sub.experiment_uid,
            self.cluster,
        )
        if self.metrics:
            self.metrics.submission(self.cluster, "success")
        log.info(
            "cluster %s: submitted job %s: %s of experiment %s (tag %s)",
            self.cluster,
            job_id,
            what,
            sub.experiment,
            sub.tag,
        )
        return len(job.tasks)


def _name(desired: dict[str, ExperimentRecord], uid: str) -> str:
    exp = desired.get(uid)
    return exp.name if exp is not None else uid


def _tasks_text(targets: tuple[tuple[str, int], ...], shown: int = 10) -> str:
    """``job[index]`` of the first tasks, for a log line."""
    text = ", ".join(f"{job}[{index}]" for job, index in targets[:shown])
    return text + (f" and {len(targets) - shown} more" if len(targets) > shown else "")


def env_crash_hook() -> Callable[[str], None] | None:
    """A hook that kills (:data:`CRASH_ENV`) or stops (:data:`STOP_ENV`) this process at the
    point named, for tests that prove a crash or a stall between "intent recorded" and "job id
    recorded" never submits twice. ``POINT:N`` kills at the N-th time the point is reached
    (``cache-refreshed:3``: the third cache refresh, between it and the writes of its plan)."""
    crash_at = os.environ.get(CRASH_ENV)
    stop_at = os.environ.get(STOP_ENV)
    if not crash_at and not stop_at:
        return None
    stopped = False
    crash_point, _, nth = (crash_at or "").partition(":")
    remaining = int(nth) if nth.isdigit() else 1

    def hook(at: str) -> None:
        nonlocal stopped, remaining
        if at == crash_point:
            remaining -= 1
            if remaining <= 0:
                log.warning("%s=%s: killing this controller now", CRASH_ENV, crash_at)
                os.kill(os.getpid(), signal.SIGKILL)
        if at == stop_at and not stopped:
            stopped = True
            log.warning("%s=%s: stopping this controller now (SIGSTOP)", STOP_ENV, stop_at)
            for handler in logging.getLogger().handlers + log.handlers:
                handler.flush()
            # a store call another task started (the lease's renewal) finishes its
            # transaction in its worker thread first: stopped inside it, this process would
            # hold SQLite's write lock and no standby could take over. Nothing new starts
            # meanwhile: the event loop waits here.
            time.sleep(_STOP_SETTLE_SECONDS)
            os.kill(os.getpid(), signal.SIGSTOP)
            log.warning("resumed after SIGSTOP")

    return hook
