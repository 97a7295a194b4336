"""The retry policy: which action a failed attempt gets, and how long to back off.

Pure functions of the spec and the attempt's outcome; "now" and randomness are inputs.
"""

from __future__ import annotations

import hashlib

from lxr.api.resources import (
    Backoff,
    ExperimentSpec,
    FailurePolicyAction,
    FailurePolicyRule,
    FailureReason,
)

__all__ = ["DEFAULT_ACTIONS", "DISRUPTIONS", "backoff_seconds", "decide"]

#: reasons that are not the program's fault: retried on the disruption budget
DISRUPTIONS = frozenset(
    {
        FailureReason.PREEMPTED,
        FailureReason.NODE_FAIL,
        FailureReason.BOOT_FAIL,
        FailureReason.RESCHEDULED,
        FailureReason.LOST,
    }
)

#: the action when no rule of the experiment's failure policy matches
DEFAULT_ACTIONS: dict[FailureReason, FailurePolicyAction] = {
    FailureReason.ERROR: FailurePolicyAction.COUNT,
    FailureReason.OUT_OF_MEMORY: FailurePolicyAction.COUNT,
    FailureReason.TIMEOUT: FailurePolicyAction.COUNT,
    FailureReason.SUBMIT_ERROR: FailurePolicyAction.COUNT,
    # a person cancelled it: do not fight them
    FailureReason.CANCELLED: FailurePolicyAction.FAIL_INDEX,
    **{reason: FailurePolicyAction.IGNORE for reason in DISRUPTIONS},
}


def _matches(rule: FailurePolicyRule, reason: FailureReason, exit_code: int | None) -> bool:
    if rule.on_reasons is not None and reason not in rule.on_reasons:
        return False
    if rule.on_exit_codes is not None:
        if exit_code is None:
            return False
        inside = exit_code in rule.on_exit_codes.values
        if inside != (rule.on_exit_codes.operator == "In"):
            return False
    return True


def decide(
    spec: ExperimentSpec, reason: FailureReason, exit_code: int | None
) -> FailurePolicyAction:
    """The first matching rule's action, else the default for ``reason``."""
    for rule in spec.failure_policy.rules:
        if _matches(rule, reason, exit_code):
            return rule.action
    return DEFAULT_ACTIONS[reason]


def backoff_seconds(backoff: Backoff, failures: int, seed: str) -> float:
    """Delay before retry number ``failures`` (1-based): exponential, capped, with jitter.

    The jitter is drawn from ``seed`` (experiment uid, index, attempt) rather than a random
    source, so the planner stays a pure function and a restarted controller computes the same.
    """
    if failures < 1:
        return 0.0
    base = min(backoff.cap_seconds, backoff.initial_seconds * backoff.factor ** (failures - 1))
    digest = hashlib.sha256(seed.encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64  # in [0, 1)
    return base * (1 + backoff.jitter * (2 * unit - 1))
