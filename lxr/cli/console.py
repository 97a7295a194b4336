"""Where the CLI writes: one console for results (stdout), one for messages (stderr)."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

from lxr.redaction import redact

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "console", "die", "err"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# piped output is read by tools and people with wide screens: don't wrap tables at 80 columns
console = Console(width=None if sys.stdout.isatty() else 250)
# messages are never wrapped: people and tools grep them
err = Console(stderr=True, soft_wrap=True)


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` on stderr (URL passwords masked) and exit with ``code``."""
    err.print(f"[red]error:[/] {redact(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
