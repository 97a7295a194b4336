"""A work unit's reasons and its ``DependenciesMet`` condition around its dependencies, apart
from the models (no pydantic here): the fast listing path (:mod:`lxr.store.jsonform`) writes
the condition as the model does."""

from __future__ import annotations

__all__ = ["FAILED_REASON", "MET_REASON", "WAITING_REASON", "dependency_condition"]

#: a work unit's reason while it waits, once they were met (until its attempt ends), and when
#: its dependencies can no longer be met
WAITING_REASON = "DependencyNotMet"
MET_REASON = "DependenciesMet"
FAILED_REASON = "DependencyFailed"


def dependency_condition(phase: str, reason: str | None, message: str | None) -> dict[str, str]:
    """A work unit's ``DependenciesMet`` condition (``False`` while it waits, with the unmet
    dependencies as its message, or when they failed; ``True`` from when they were met until
    its attempt ends), or ``{}`` when it has nothing to say."""
    if reason == MET_REASON:
        return {"type": "DependenciesMet", "status": "True", "reason": MET_REASON, "message": ""}
    if reason == FAILED_REASON:
        return {"type": "DependenciesMet", "status": "False", "reason": FAILED_REASON,
                "message": message or ""}  # fmt: skip
    if phase == "Waiting":
        return {"type": "DependenciesMet", "status": "False", "reason": WAITING_REASON,
                "message": message or ""}  # fmt: skip
    return {}
