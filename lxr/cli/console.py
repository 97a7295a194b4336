"""Where the CLI writes: results to stdout, messages to stderr, always verbatim.

User text (names, args, paths, messages) is never read as markup: results are written as
plain text, and the rich console (only for live displays) gets ``rich.text.Text`` objects.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import TYPE_CHECKING, NoReturn

import typer

from lxr.redaction import redact

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "die",
    "error",
    "note",
    "out",
    "rich_console",
    "warn",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_COLORS = {"error": "31", "warning": "33", "dim": "2"}


def _paint(word: str, color: str) -> str:
    """``word`` in an ANSI colour when stderr is a terminal (and NO_COLOR is unset)."""
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        return word
    return f"\x1b[{_COLORS[color]}m{word}\x1b[0m"


def out(line: str = "") -> None:
    """One line of results on stdout, verbatim."""
    sys.stdout.write(line + "\n")


def error(message: str) -> None:
    """``error: message`` on stderr, verbatim and unwrapped (people and tools grep it), with
    URL passwords masked."""
    sys.stderr.write(f"{_paint('error:', 'error')} {redact(message)}\n")


def warn(message: str) -> None:
    """``warning: message`` on stderr (URL passwords masked)."""
    sys.stderr.write(f"{_paint('warning:', 'warning')} {redact(message)}\n")


def note(message: str, *, dim: bool = False) -> None:
    """A message on stderr (progress remarks, hints)."""
    sys.stderr.write((_paint(message, "dim") if dim else message) + "\n")


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    error(message)
    raise typer.Exit(code)


@cache
def rich_console() -> Console:
    """The console of live displays (progress bars, ``get -w`` on a terminal)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 250)
