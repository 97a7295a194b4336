"""What the store raises: callers (the CLI, launch scripts) map each to an exit code."""

from __future__ import annotations

__all__ = ["Conflict", "Invalid", "LeaseLost", "NotFound"]


class NotFound(LookupError):
    """No such object."""


class Conflict(RuntimeError):
    """The object changed under us (resourceVersion moved); read it again and retry."""


class Invalid(ValueError):
    """The request is well-formed but not allowed (e.g. changing an immutable field)."""


class LeaseLost(RuntimeError):
    """A fenced write (or a lease check) found that the lease has another holder or epoch:
    the controller that planned it no longer leads, and whatever it planned is void."""
