"""Retry with more resources (issue 15.5), table-driven through the planner and the policy: a
failurePolicy rule's ``scale`` multiplies the next attempt's request per matching failure, up to
its cap; the retried indexes go out with their scale, and the actor sends each scale as an array
of its own whose attempts record what they asked for. Then end to end on the local cluster,
which enforces time limits: a task past its limit ends Timeout and its retry, with a scaled
limit, succeeds. (The Slurm run is in tests/test_slurm_integration.py.)"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from lxr.api.resources import (
    Experiment,
    FailurePolicy,
    FailurePolicyRule,
    FailureReason,
    Resources,
)
from lxr.reconciler.actions import Resubmit
from lxr.reconciler.planner import plan_experiment
from lxr.reconciler.policy import next_scale, scale_resources
from lxr.schedulers.base import TaskPhase
from lxr.store import Store
from lxr.testing import converge
from tests.test_planner import NOW, SPEC, attempt, exp, only, snap, task, update, wu

OOM = FailurePolicyRule.model_validate(
    {
        "action": "Count",
        "onReasons": ["OutOfMemory"],
        "scale": {"memory": 2, "maxMemory": "64Gi"},
    }
)
TIMEOUT = FailurePolicyRule.model_validate(
    {"action": "Count", "onReasons": ["Timeout"], "scale": {"timeLimit": 2}}
)
SCALING = SPEC.model_copy(update={"failure_policy": FailurePolicy(rules=[OOM, TIMEOUT])})


def _failed_once(
    reason: FailureReason, scale: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The work unit's resource scale after its running attempt ended with ``reason``."""
    unit = wu(0, attempt(phase="Running"), phase="Running", resource_scale=scale)
    actions = plan_experiment(
        exp(unit, spec=SCALING), snap(task(TaskPhase.FAILED, reason=reason)), NOW
    )
    [patch] = update(actions).work_units
    assert patch.phase == "BackOff"
    return patch.resource_scale


# (reason of the failure, scale before, scale after)
SCALE_CASES = [
    (FailureReason.OUT_OF_MEMORY, None, {"memory": 2.0, "maxMemory": "64Gi"}),
    (FailureReason.OUT_OF_MEMORY, {"memory": 2.0, "maxMemory": "64Gi"}, {"memory": 4.0, "maxMemory": "64Gi"}),
    (FailureReason.TIMEOUT, None, {"timeLimit": 2.0}),
    (FailureReason.TIMEOUT, {"memory": 2.0, "maxMemory": "64Gi"}, {"memory": 2.0, "maxMemory": "64Gi", "timeLimit": 2.0}),
    (FailureReason.ERROR, None, None),  # no rule with a scale matched: the same request again
    (FailureReason.ERROR, {"timeLimit": 2.0}, {"timeLimit": 2.0}),  # kept, not grown
]  # fmt: skip


@pytest.mark.parametrize(("reason", "before", "after"), SCALE_CASES)
def test_a_matching_rule_scales_the_next_attempt(
    reason: FailureReason, before: dict | None, after: dict | None
) -> None:
    assert _failed_once(reason, before) == after


def test_a_spent_budget_scales_nothing() -> None:
    spec = SCALING.model_copy(update={"backoff_limit_per_index": 0})
    unit = wu(0, attempt(phase="Running"), phase="Running")
    actions = plan_experiment(
        exp(unit, spec=spec), snap(task(TaskPhase.FAILED, reason=FailureReason.OUT_OF_MEMORY)), NOW
    )
    [patch] = update(actions).work_units
    assert (patch.phase, patch.resource_scale) == ("Failed", None)


def test_retries_carry_their_scale_so_they_go_out_as_arrays_of_their_own() -> None:
    scaled = {"memory": 4.0, "maxMemory": "64Gi"}
    units = (
        wu(0, phase="BackOff", attempt_count=2, failures=2, resource_scale=scaled),
        wu(1, phase="BackOff", attempt_count=1, failures=1),  # failed without a scale rule
        wu(2, phase="BackOff", attempt_count=3, failures=2, resource_scale=scaled),
    )
    [resubmit] = only(plan_experiment(exp(*units, spec=SCALING), snap(), NOW), Resubmit)
    assert {e.index: e.scale for e in resubmit.entries} == {
        0: (("maxMemory", "64Gi"), ("memory", 4.0)),
        1: (),
        2: (("maxMemory", "64Gi"), ("memory", 4.0)),
    }


BASE = Resources(cpus=2, memory="4Gi", time_limit_seconds=60)

# (scale, what the attempt asks for: memory, timeLimitSeconds, cpus)
RESOURCE_CASES = [
    (None, ("4Gi", 60, 2)),
    ({"memory": 2.0}, ("8192Mi", 60, 2)),
    ({"memory": 4.0, "maxMemory": "12Gi"}, ("12288Mi", 60, 2)),  # capped
    ({"memory": 2.0, "maxMemory": "1Gi"}, ("4096Mi", 60, 2)),  # a cap below the ask: unchanged
    ({"timeLimit": 3.0}, ("4Gi", 180, 2)),
    ({"timeLimit": 8.0, "maxTimeLimitSeconds": 300}, ("4Gi", 300, 2)),
    ({"cpus": 1.5}, ("4Gi", 60, 3)),
    ({"cpus": 4.0, "maxCpus": 6}, ("4Gi", 60, 6)),
    ({"memory": 1.5, "timeLimit": 1.5}, ("6144Mi", 90, 2)),
]


@pytest.mark.parametrize(("scale", "asked"), RESOURCE_CASES)
def test_scale_resources(scale: dict | None, asked: tuple[str, int, int]) -> None:
    got = scale_resources(BASE, scale)
    assert (got.memory, got.time_limit_seconds, got.cpus) == asked
    assert got.partition == BASE.partition


def test_an_unset_resource_has_nothing_to_scale() -> None:
    bare = Resources()
    assert scale_resources(bare, {"memory": 2.0, "timeLimit": 2.0}) == bare


def test_next_scale_compounds_and_takes_the_rules_caps() -> None:
    rule = OOM.scale
    assert rule is not None
    once = next_scale(None, rule)
    assert next_scale(next_scale(once, rule), rule) == {"memory": 8.0, "maxMemory": "64Gi"}


def test_a_scale_rule_is_validated() -> None:
    with pytest.raises(ValueError, match="scale needs memory, timeLimit or cpus"):
        FailurePolicyRule.model_validate({"action": "Count", "onReasons": ["Timeout"], "scale": {}})
    with pytest.raises(ValueError, match="not a memory quantity"):
        FailurePolicyRule.model_validate(
            {
                "action": "Count",
                "onReasons": ["OutOfMemory"],
                "scale": {"memory": 2, "maxMemory": "lots"},
            }
        )


# ------------------------------------------------------------------ end to end, local cluster


@pytest.mark.slow
def test_a_timed_out_task_is_retried_with_a_scaled_limit_on_the_local_cluster(
    store: Store, tmp_path: Path
) -> None:
    """The local cluster kills a task past timeLimitSeconds (reason Timeout); the rule scales
    the retry's limit 3x; each attempt records the limit it ran under."""
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text(
        "import sys, time\n"
        "limit = float(sys.argv[1])\n"
        "time.sleep(2.5)\n"  # past a 1 s limit, within a 3 s one
    )
    store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": "scaled"},
                "spec": {
                    "executable": {"command": [sys.executable, str(sleeper), "1"]},
                    "resources": {"timeLimitSeconds": 1},
                    "backoff": {"initialSeconds": 0.2, "jitter": 0},
                    "backoffLimitPerIndex": 1,
                    "failurePolicy": {
                        "rules": [
                            {"action": "Count", "onReasons": ["Timeout"], "scale": {"timeLimit": 3}}
                        ]
                    },
                },
            }
        )
    )
    converge(store, ["scaled"], timeout=90)
    [unit] = store.list_work_units("scaled")
    attempts = unit.status.attempts
    assert unit.status.phase.value == "Succeeded", unit.status
    assert [a.reason for a in attempts] == ["Timeout", "Completed"]
    assert [(a.resources or {}).get("timeLimitSeconds") for a in attempts] == [1, 3]
    assert attempts[0].job_id != attempts[1].job_id  # the retry went out as its own array
