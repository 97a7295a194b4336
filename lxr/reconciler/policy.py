"""The retry policy: which action a failed attempt gets, which budget it spends, and how long
to back off.

Pure functions of the spec and the attempt's outcome; "now" and randomness are inputs. The
budget's verdict (:func:`account`) is an :class:`~lxr.api.phases.Event` whose row in
:data:`~lxr.api.phases.WORK_UNIT_TRANSITIONS` says where the work unit goes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxr.api.phases import Event
from lxr.api.resources import (
    Backoff,
    ExperimentSpec,
    FailurePolicyAction,
    FailurePolicyRule,
    FailureReason,
    Resources,
    ResourceScale,
    parse_memory_mib,
)

__all__ = [
    "DEFAULT_ACTIONS",
    "DISRUPTIONS",
    "VERDICTS",
    "Verdict",
    "account",
    "backoff_seconds",
    "decide",
    "matching_rule",
    "next_scale",
    "scale_resources",
]

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


def matching_rule(
    spec: ExperimentSpec, reason: FailureReason, exit_code: int | None
) -> FailurePolicyRule | None:
    """The first rule of the failure policy that matches, if any."""
    for rule in spec.failure_policy.rules:
        if _matches(rule, reason, exit_code):
            return rule
    return None


def decide(
    spec: ExperimentSpec, reason: FailureReason, exit_code: int | None
) -> FailurePolicyAction:
    """The first matching rule's action, else the default for ``reason``."""
    rule = matching_rule(spec, reason, exit_code)
    return DEFAULT_ACTIONS[reason] if rule is None else rule.action


#: ResourceScale factor -> its cap (the keys of a work unit's stored ``resource_scale``)
_SCALED = {"memory": "maxMemory", "timeLimit": "maxTimeLimitSeconds", "cpus": "maxCpus"}


def next_scale(current: Mapping[str, Any] | None, scale: ResourceScale) -> dict[str, Any]:
    """A work unit's resource scale after one more failure that ``scale`` matched: each factor
    multiplies the one so far (2, then 4, ...: ``memory: 2`` doubles per such failure), the
    rule's caps replace earlier ones. Stored as JSON on the work unit."""
    out = dict(current or {})
    given = scale.model_dump(by_alias=True, exclude_none=True)
    for factor, cap in _SCALED.items():
        if factor in given:
            out[factor] = float(out.get(factor, 1.0)) * float(given[factor])
            if cap in given:
                out[cap] = given[cap]
    return out


def _capped(value: float, cap: float | None) -> int:
    scaled = math.ceil(value - 1e-9)  # 1.5 cpus is 2; 2.0000000001 (float noise) is 2
    return scaled if cap is None else min(scaled, math.floor(cap))


def scale_resources(resources: Resources, scale: Mapping[str, Any] | None) -> Resources:
    """``resources`` (the cluster's defaults merged in) with a work unit's resource scale
    applied: memory in whole MiB, the time limit in whole seconds, CPUs rounded up, each at
    most its cap (and never below what was asked without scaling). A resource with no value
    (no default either) is left unset: there is nothing to scale."""
    if not scale:
        return resources
    update: dict[str, Any] = {}
    if "memory" in scale and resources.memory is not None:
        base = parse_memory_mib(resources.memory)
        cap = scale.get("maxMemory")
        limit = None if cap is None else max(base, parse_memory_mib(cap))
        update["memory"] = f"{_capped(base * scale['memory'], limit)}Mi"
    if "timeLimit" in scale and resources.time_limit_seconds is not None:
        base = resources.time_limit_seconds
        cap = scale.get("maxTimeLimitSeconds")
        limit = None if cap is None else max(base, cap)
        update["time_limit_seconds"] = _capped(base * scale["timeLimit"], limit)
    if "cpus" in scale and resources.cpus is not None:
        base = resources.cpus
        cap = scale.get("maxCpus")
        update["cpus"] = _capped(base * scale["cpus"], None if cap is None else max(base, cap))
    return resources.model_copy(update=update) if update else resources


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


@dataclass(frozen=True)
class Verdict:
    """What a failed attempt costs: the policy action, the budgets after it, and the event
    that moves the work unit."""

    action: FailurePolicyAction
    event: Event
    failures: int
    disruptions: int
    #: the matching rule's ``scale``, when the verdict is a retry (more resources next time)
    scale: ResourceScale | None = None


#: policy action -> (spends the failure budget, spends the disruption budget, event within the
#: budget, event once the budget is spent)
VERDICTS: dict[FailurePolicyAction, tuple[bool, bool, Event, Event]] = {
    FailurePolicyAction.IGNORE: (False, True, Event.DISRUPTED, Event.DISRUPTION_LIMIT_EXCEEDED),
    FailurePolicyAction.COUNT: (
        True,
        False,
        Event.RETRY_AFTER_BACKOFF,
        Event.BACKOFF_LIMIT_EXCEEDED,
    ),
    FailurePolicyAction.FAIL_INDEX: (False, False, Event.INDEX_FAILED, Event.INDEX_FAILED),
    FailurePolicyAction.FAIL_JOB: (False, False, Event.JOB_FAILED, Event.JOB_FAILED),
}


def account(
    spec: ExperimentSpec,
    reason: FailureReason,
    exit_code: int | None,
    failures: int,
    disruptions: int,
) -> Verdict:
    """Charge a failed attempt to its budget: Ignore spends the disruption budget
    (``disruptionLimitPerIndex``), Count the failure budget (``backoffLimitPerIndex``);
    FailIndex and FailJob spend nothing and end the work unit."""
    rule = matching_rule(spec, reason, exit_code)
    action = DEFAULT_ACTIONS[reason] if rule is None else rule.action
    spends_failures, spends_disruptions, within, spent = VERDICTS[action]
    if spends_failures:
        failures += 1
        event = spent if failures > spec.backoff_limit_per_index else within
    elif spends_disruptions:
        disruptions += 1
        event = spent if disruptions > spec.disruption_limit_per_index else within
    else:
        event = within
    retried = event in (Event.DISRUPTED, Event.RETRY_AFTER_BACKOFF)
    scale = rule.scale if rule is not None and retried else None
    return Verdict(action, event, failures, disruptions, scale)
