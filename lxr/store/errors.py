"""What the store raises: callers (the CLI, launch scripts) map each to an exit code."""

from __future__ import annotations

__all__ = ["Conflict", "Invalid", "NotFound"]


class NotFound(LookupError):
    """No such object."""


class Conflict(RuntimeError):
    """The object changed under us (resourceVersion moved); read it again and retry."""


class Invalid(ValueError):
    """The request is well-formed but not allowed (e.g. changing an immutable field)."""
