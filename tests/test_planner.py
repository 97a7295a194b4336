"""The planner, table-driven: records + snapshot in, actions out. No processes, no database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lxr.api.records import AttemptRecord, ExperimentRecord, WorkUnitRecord
from lxr.api.resources import (
    Executable,
    ExperimentSpec,
    FailurePolicy,
    FailurePolicyRule,
    FailureReason,
)
from lxr.reconciler.actions import Cancel, Resubmit, RetryIntent, Submit, UpdateStatus
from lxr.reconciler.planner import LOST_AFTER_SECONDS, plan, plan_experiment
from lxr.schedulers.base import Snapshot, TaskObservation, TaskPhase

NOW = 1_000_000.0
SPEC = ExperimentSpec(executable=Executable(command=["true"]), backoff_limit_per_index=2)


def attempt(
    job: str | None = "42",
    index: int = 0,
    sub: str = "Submitted",
    number: int = 1,
    phase: str = "Queued",
    **kw: object,
) -> AttemptRecord:
    return AttemptRecord(
        id=100 + index,
        number=number,
        submission_id=7,
        submission_tag="exp-abc",
        submission_state=sub,
        submission_error=kw.pop("error", None),  # type: ignore[arg-type]
        job_id=job,
        array_index=index,
        phase=phase,
        submit_time=NOW - 10,
        last_seen=kw.pop("last_seen", NOW - 1),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def wu(index: int = 0, active: AttemptRecord | None = None, **kw: object) -> WorkUnitRecord:
    defaults: dict[str, object] = {
        "phase": "Queued" if active else "Pending",
        "attempt_count": active.number if active else 0,
    }
    defaults.update(kw)
    return WorkUnitRecord(id=index + 1, index=index, name=str(index), active=active, **defaults)  # type: ignore[arg-type]


def exp(*units: WorkUnitRecord, spec: ExperimentSpec = SPEC, **kw: object) -> ExperimentRecord:
    return ExperimentRecord(
        uid="u1",
        name="exp",
        cluster="local",
        generation=1,
        spec=spec,
        work_units=units,
        **kw,  # type: ignore[arg-type]
    )


def snap(*tasks: TaskObservation, tags: dict[str, str] | None = None) -> Snapshot:
    return Snapshot("local", NOW, {(t.job_id, t.array_index): t for t in tasks}, tags or {})


def task(phase: TaskPhase, index: int = 0, job: str = "42", **kw: object) -> TaskObservation:
    return TaskObservation(job, index, phase, kw.pop("state", phase.value.upper()), **kw)  # type: ignore[arg-type]


def only(actions: list, kind: type) -> list:
    return [a for a in actions if type(a) is kind]


def update(actions: list) -> UpdateStatus:
    (u,) = only(actions, UpdateStatus)
    return u


# ------------------------------------------------------------------ observed task -> work unit

IN_FLIGHT_CASES = [
    (TaskPhase.QUEUED, "Queued"),
    (TaskPhase.RUNNING, "Running"),
]


@pytest.mark.parametrize(("observed", "expected"), IN_FLIGHT_CASES)
def test_in_flight_task_sets_phase(observed: TaskPhase, expected: str) -> None:
    actions = plan_experiment(exp(wu(0, attempt(), phase="Pending")), snap(task(observed)), NOW)
    u = update(actions)
    assert [w.phase for w in u.work_units] == [expected]
    assert not only(actions, Submit) and not only(actions, Resubmit)


# (reason, exit code, expected work-unit phase, failures, disruptions, handled action)
FINISHED_CASES = [
    (None, 0, "Succeeded", 0, 0, None),
    (FailureReason.ERROR, 3, "BackOff", 1, 0, "Count"),
    (FailureReason.OUT_OF_MEMORY, None, "BackOff", 1, 0, "Count"),
    (FailureReason.TIMEOUT, None, "BackOff", 1, 0, "Count"),
    (FailureReason.PREEMPTED, None, "Pending", 0, 1, "Ignore"),
    (FailureReason.NODE_FAIL, None, "Pending", 0, 1, "Ignore"),
    (FailureReason.BOOT_FAIL, None, "Pending", 0, 1, "Ignore"),
    (FailureReason.RESCHEDULED, None, "Pending", 0, 1, "Ignore"),
]


@pytest.mark.parametrize(
    ("reason", "code", "phase", "failures", "disruptions", "action"), FINISHED_CASES
)
def test_finished_task_applies_policy(
    reason: FailureReason | None,
    code: int | None,
    phase: str,
    failures: int,
    disruptions: int,
    action: str | None,
) -> None:
    obs_phase = TaskPhase.SUCCEEDED if reason is None else TaskPhase.FAILED
    actions = plan_experiment(
        exp(wu(0, attempt(phase="Running"), phase="Running")),
        snap(task(obs_phase, reason=reason, exit_code=code)),
        NOW,
    )
    u = update(actions)
    (w,) = u.work_units
    assert (w.phase, w.failures, w.disruptions) == (phase, failures, disruptions)
    assert w.clear_active
    (a,) = u.attempts
    assert a.final and a.exit_code == code
    assert [h.action for h in u.handled] == ([action] if action else [])
    if phase == "BackOff":
        assert w.next_attempt_after is not None and w.next_attempt_after > NOW
        assert not only(actions, Resubmit), "a counted failure waits for its backoff"
    if phase == "Pending":
        (r,) = only(actions, Resubmit)
        assert [(e.index, e.attempt, e.retry_reason) for e in r.entries] == [(0, 2, reason.value)]


def test_backoff_limit_spent_fails_index_with_exit_code() -> None:
    unit = wu(0, attempt(number=3, phase="Running"), phase="Running", failures=2)
    u = update(
        plan_experiment(
            exp(unit), snap(task(TaskPhase.FAILED, reason=FailureReason.ERROR, exit_code=7)), NOW
        )
    )
    (w,) = u.work_units
    assert (w.phase, w.reason, w.exit_code, w.failures) == ("Failed", "BackoffLimitExceeded", 7, 3)


def test_disruption_limit_spent_fails_index() -> None:
    spec = SPEC.model_copy(update={"disruption_limit_per_index": 1})
    unit = wu(0, attempt(number=2, phase="Running"), phase="Running", disruptions=1)
    u = update(
        plan_experiment(
            exp(unit, spec=spec), snap(task(TaskPhase.FAILED, reason=FailureReason.PREEMPTED)), NOW
        )
    )
    assert [(w.phase, w.reason, w.failures) for w in u.work_units] == [
        ("Failed", "DisruptionLimitExceeded", 0)
    ]


def test_backoff_not_elapsed_waits_then_resubmits() -> None:
    unit = wu(
        0,
        None,
        phase="BackOff",
        failures=1,
        attempt_count=1,
        next_attempt_after=NOW + 5,
        retry_reason="Error",
    )
    assert not only(plan_experiment(exp(unit), snap(), NOW), Resubmit)
    (r,) = only(plan_experiment(exp(unit), snap(), NOW + 6), Resubmit)
    assert [(e.index, e.attempt) for e in r.entries] == [(0, 2)]


def test_fresh_units_are_one_submit_and_retries_one_resubmit() -> None:
    units = [wu(i) for i in range(3)] + [
        wu(5, None, phase="Pending", attempt_count=1, disruptions=1, retry_reason="Preempted"),
        wu(9, None, phase="Pending", attempt_count=2, disruptions=2, retry_reason="Preempted"),
    ]
    actions = plan_experiment(exp(*units), snap(), NOW)
    (s,) = only(actions, Submit)
    (r,) = only(actions, Resubmit)
    assert [e.index for e in s.entries] == [0, 1, 2]
    assert [(e.index, e.attempt) for e in r.entries] == [(5, 2), (9, 3)]


# ------------------------------------------------------------------ failure policy rules


@pytest.mark.parametrize(
    ("rule", "reason", "code", "phase"),
    [
        (
            FailurePolicyRule(action="FailIndex", on_exit_codes={"values": [42]}),
            FailureReason.ERROR,
            42,
            "Failed",
        ),
        (
            FailurePolicyRule(action="FailIndex", on_exit_codes={"values": [42]}),
            FailureReason.ERROR,
            3,
            "BackOff",
        ),
        (
            FailurePolicyRule(
                action="Ignore", on_exit_codes={"operator": "NotIn", "values": [0, 1]}
            ),
            FailureReason.ERROR,
            2,
            "Pending",
        ),
        (
            FailurePolicyRule(action="Count", on_reasons=["Preempted"]),
            FailureReason.PREEMPTED,
            None,
            "BackOff",
        ),
    ],
)
def test_failure_policy_first_match(
    rule: FailurePolicyRule, reason: FailureReason, code: int | None, phase: str
) -> None:
    spec = SPEC.model_copy(update={"failure_policy": FailurePolicy(rules=[rule])})
    u = update(
        plan_experiment(
            exp(wu(0, attempt()), spec=spec),
            snap(task(TaskPhase.FAILED, reason=reason, exit_code=code)),
            NOW,
        )
    )
    assert [w.phase for w in u.work_units] == [phase]


def test_fail_job_rule_fails_experiment_and_cancels_the_rest() -> None:
    spec = SPEC.model_copy(
        update={
            "failure_policy": FailurePolicy(
                rules=[FailurePolicyRule(action="FailJob", on_exit_codes={"values": [9]})]
            )
        }
    )
    units = [wu(0, attempt(index=0)), wu(1, attempt(index=1)), wu(2)]
    actions = plan_experiment(
        exp(*units, spec=spec),
        snap(
            task(TaskPhase.FAILED, 0, reason=FailureReason.ERROR, exit_code=9),
            task(TaskPhase.RUNNING, 1),
        ),
        NOW,
    )
    u = update(actions)
    assert u.fail_experiment and u.fail_experiment[0] == "FailJobRule"
    (c,) = only(actions, Cancel)
    assert c.targets == (("42", 1),)
    assert {w.index: w.phase for w in u.work_units} == {0: "Failed", 1: "Running", 2: "Stopped"}
    assert not only(actions, Submit)


def test_max_failed_indexes_exceeded_fails_experiment() -> None:
    spec = SPEC.model_copy(update={"max_failed_indexes": 0, "backoff_limit_per_index": 0})
    actions = plan_experiment(
        exp(wu(0, attempt()), wu(1), spec=spec),
        snap(task(TaskPhase.FAILED, reason=FailureReason.ERROR, exit_code=1)),
        NOW,
    )
    u = update(actions)
    assert u.fail_experiment is not None and u.fail_experiment[0] == "MaxFailedIndexesExceeded"
    assert {w.index: w.phase for w in u.work_units} == {0: "Failed", 1: "Stopped"}


# ------------------------------------------------------------------ intents and adoption


def test_intent_found_by_tag_is_adopted_not_resubmitted() -> None:
    unit = wu(0, attempt(job=None, sub="Intent", phase="Pending"), phase="Pending")
    actions = plan_experiment(
        exp(unit), snap(task(TaskPhase.RUNNING, job="77"), tags={"exp-abc": "77"}), NOW
    )
    u = update(actions)
    assert u.adoptions == ((7, "77"),)
    assert [w.phase for w in u.work_units] == ["Running"]
    assert (
        not only(actions, RetryIntent) and not only(actions, Submit) and not only(actions, Resubmit)
    )


def test_intent_not_found_is_submitted_again_with_same_tag() -> None:
    unit = wu(0, attempt(job=None, sub="Intent", phase="Pending"), phase="Pending")
    actions = plan_experiment(exp(unit), snap(), NOW)
    assert only(actions, RetryIntent) == [RetryIntent("u1", 7, "exp-abc")]
    assert not only(actions, Submit)


def test_rejected_submission_counts_as_failure() -> None:
    unit = wu(
        0,
        attempt(job=None, sub="Failed", phase="Pending", error="invalid partition"),
        phase="Pending",
    )
    u = update(plan_experiment(exp(unit), snap(), NOW))
    assert [(w.phase, w.failures) for w in u.work_units] == [("BackOff", 1)]
    assert u.attempts[0].reason == "SubmitError" and "invalid partition" in (
        u.attempts[0].message or ""
    )


# ------------------------------------------------------------------ lost tasks, scheduler requeue


def test_unobserved_task_is_unknown_then_lost() -> None:
    unit = wu(0, attempt(last_seen=NOW - 5), phase="Running")
    u = update(plan_experiment(exp(unit), snap(), NOW))
    assert [w.phase for w in u.work_units] == ["Unknown"]
    late = wu(0, attempt(last_seen=NOW - LOST_AFTER_SECONDS - 1), phase="Unknown")
    actions = plan_experiment(exp(late), snap(), NOW)
    u = update(actions)
    assert [(w.phase, w.disruptions) for w in u.work_units] == [("Pending", 1)]
    assert u.attempts[0].reason == "Lost"
    assert only(actions, Resubmit)


def test_scheduler_requeue_records_restarts_and_never_resubmits() -> None:
    unit = wu(0, attempt(phase="Running"), phase="Running")
    actions = plan_experiment(
        exp(unit), snap(task(TaskPhase.QUEUED, state="PENDING", restarts=1)), NOW
    )
    u = update(actions)
    assert [w.phase for w in u.work_units] == ["Queued"]
    assert u.attempts[0].restarts == 1 and not u.attempts[0].final
    assert any(e.reason == "Requeued" for e in u.events)
    assert not only(actions, Resubmit) and not only(actions, Submit)


# ------------------------------------------------------------------ deletion


def test_deleting_cancels_in_flight_and_stops_idle() -> None:
    units = [wu(0, attempt(index=0)), wu(1)]
    actions = plan_experiment(exp(*units, deleting=True), snap(task(TaskPhase.RUNNING, 0)), NOW)
    (c,) = only(actions, Cancel)
    assert c.targets == (("42", 0),) and c.attempt_ids == (100,)
    assert {w.index: w.phase for w in update(actions).work_units} == {0: "Running", 1: "Stopped"}
    assert not only(actions, Submit)


def test_cancel_is_not_repeated_within_the_interval() -> None:
    unit = wu(0, attempt(cancel_requested_at=NOW - 1), phase="Running")
    assert not only(
        plan_experiment(exp(unit, deleting=True), snap(task(TaskPhase.RUNNING)), NOW), Cancel
    )
    unit = wu(0, attempt(cancel_requested_at=NOW - 60), phase="Running")
    assert only(
        plan_experiment(exp(unit, deleting=True), snap(task(TaskPhase.RUNNING)), NOW), Cancel
    )


def test_task_failing_after_lxr_cancelled_it_is_stopped_not_retried() -> None:
    unit = wu(0, attempt(cancel_requested_at=NOW - 1), phase="Running")
    observed = snap(task(TaskPhase.FAILED, reason=FailureReason.ERROR, exit_code=143))
    u = update(plan_experiment(exp(unit, deleting=True), observed, NOW))
    assert [(w.phase, w.failures) for w in u.work_units] == [("Stopped", 0)]
    assert not u.handled


def test_cancelled_by_lxr_is_stopped_by_someone_else_fails() -> None:
    unit = wu(0, attempt(cancel_requested_at=NOW - 1), phase="Running")
    u = update(plan_experiment(exp(unit, deleting=True), snap(task(TaskPhase.CANCELLED)), NOW))
    assert [w.phase for w in u.work_units] == ["Stopped"]
    u = update(plan_experiment(exp(wu(0, attempt())), snap(task(TaskPhase.CANCELLED)), NOW))
    assert [(w.phase, w.reason) for w in u.work_units] == [("Failed", "Cancelled")]


# ------------------------------------------------------------------ level-triggered


def test_plan_is_deterministic_and_steady_state_is_quiet() -> None:
    units = [
        wu(i, attempt(index=i, phase="Running", state="RUNNING"), phase="Running") for i in range(5)
    ]
    observed = snap(*(task(TaskPhase.RUNNING, i, state="RUNNING") for i in range(5)))
    first = plan([exp(*units)], observed, NOW)
    assert first == plan([exp(*units)], observed, NOW)
    assert first == [], "nothing changed, nothing to do"


# ------------------------------------------------------------------ one work unit stopped

# (attempt in flight?, observed task, cancel already sent?, expected phase, cancel now?)
STOP_CASES = [
    (False, None, False, "Stopped", False),  # idle: stops at once
    (True, TaskPhase.QUEUED, False, "Queued", True),  # queued: cancelled, same as deletion
    (True, TaskPhase.RUNNING, False, "Running", True),
    (True, TaskPhase.RUNNING, True, "Running", False),  # cancel went out a moment ago
    (True, TaskPhase.CANCELLED, True, "Stopped", False),  # gone after the cancel
    (True, TaskPhase.FAILED, True, "Stopped", False),  # killed by the cancel: not a failure
    (True, None, True, "Stopped", False),  # cancelled and no longer reported
    (True, TaskPhase.SUCCEEDED, False, "Succeeded", False),  # finished first: it completed
]


@pytest.mark.parametrize(("active", "observed", "sent", "phase", "cancels"), STOP_CASES)
def test_stop_requested_work_unit_is_cancelled_or_stopped_others_go_on(
    active: bool, observed: TaskPhase | None, sent: bool, phase: str, cancels: bool
) -> None:
    att = attempt(index=0, phase="Running", cancel_requested_at=NOW - 1 if sent else None)
    stopped = wu(0, att if active else None, stop_requested=True)
    other = wu(1, attempt(index=1, phase="Running"), phase="Running")
    tasks = [task(TaskPhase.RUNNING, 1)]
    if observed is not None:
        tasks.append(task(observed, 0, exit_code=143 if observed is TaskPhase.FAILED else None))
    actions = plan_experiment(exp(stopped, other, wu(2)), snap(*tasks), NOW)
    by_index = {w.index: w for w in update(actions).work_units}
    assert (by_index[0].phase if 0 in by_index else stopped.phase) == phase
    if phase == "Stopped":
        assert (by_index[0].reason, by_index[0].failures) == ("StopRequested", 0)
    assert 1 not in by_index, "the running neighbour is left alone"
    cancels_sent = only(actions, Cancel)
    if cancels:
        (c,) = cancels_sent
        assert (c.targets, c.attempt_ids, c.reason) == ((("42", 0),), (100,), "StopRequested")
    else:
        assert not cancels_sent
    # the idle neighbour is submitted; the stopped unit never is
    assert [[e.index for e in s.entries] for s in only(actions, Submit)] == [[2]]
    assert not only(actions, Resubmit)
    assert not update(actions).handled


def test_stop_requested_in_backoff_stops_instead_of_retrying() -> None:
    unit = wu(0, phase="BackOff", failures=1, attempt_count=1, next_attempt_after=NOW - 1)
    actions = plan_experiment(exp(replace(unit, stop_requested=True)), snap(), NOW)
    assert [(w.phase, w.reason) for w in update(actions).work_units] == [
        ("Stopped", "StopRequested")
    ]
    assert not only(actions, Resubmit) and not only(actions, Submit)
    # the same unit without the request is retried
    assert only(plan_experiment(exp(unit), snap(), NOW), Resubmit)


def test_stop_requested_unconfirmed_intent_is_not_submitted_again() -> None:
    unit = wu(0, attempt(job=None, sub="Intent"), stop_requested=True)
    actions = plan_experiment(exp(unit), snap(), NOW)
    assert not only(actions, RetryIntent)
    assert [w.phase for w in update(actions).work_units] == ["Stopped"]


def test_task_held_in_error_state_is_failed_and_deleted_by_the_plan() -> None:
    """A task the scheduler holds in an error state (Grid Engine's Eqw) ends its attempt as
    observed, and the plan deletes it first: observing never does."""
    held = task(TaskPhase.FAILED, 3, reason=FailureReason.SUBMIT_ERROR, message="no such dir")
    other = task(TaskPhase.RUNNING, 4)
    observed = replace(snap(held, other), held=frozenset({("42", 3), ("99", 1)}))
    actions = plan([exp(wu(3, attempt(index=3)), wu(4, attempt(index=4)))], observed, NOW)
    assert isinstance(actions[0], Cancel)
    assert actions[0].targets == (("42", 3),)  # not another experiment's task
    assert actions[0].attempt_ids == ()  # a clean-up: the attempt ends Failed, not Stopped
    (patch,) = [a for a in update(actions).attempts if a.id == 103]
    assert (patch.phase, patch.reason, patch.message) == ("Failed", "SubmitError", "no such dir")
    assert plan([exp(wu(4, attempt(index=4)))], observed, NOW)[:1] != actions[:1]
