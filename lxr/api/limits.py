"""Bounds on what one input may ask for, so that hostile or mistaken files fail fast.

Kept free of heavy imports: the CLI reads the defaults to build its ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "DEFAULT_MAX_WORK_UNITS", "InputLimits"]

#: Work units one experiment may have unless the caller raises it (``apply --max-work-units``).
DEFAULT_MAX_WORK_UNITS = 100_000


@dataclass(frozen=True)
class InputLimits:
    """Bounds on one input file. The defaults hold any real experiment many times over."""

    max_file_bytes: int = 4 * 1024 * 1024
    """Size of one file, before parsing (4 MiB)."""
    max_depth: int = 32
    """Nesting of mappings and sequences, aliases expanded (the schema itself needs 7)."""
    max_alias_nodes: int = 100_000
    """Nodes that aliases add to one document when expanded (each use counts again)."""


DEFAULT_LIMITS = InputLimits()
