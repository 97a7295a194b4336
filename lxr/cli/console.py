"""Where the CLI writes: results to stdout, messages to stderr, always verbatim.

User text (names, args, paths, messages) is never read as markup: results are written as
plain text, and the rich console (only for live displays) gets ``rich.text.Text`` objects.
"""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, NoReturn, TextIO

from lxr.redaction import redact

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Sink",
    "configure_logging",
    "die",
    "error",
    "exit_with",
    "note",
    "out",
    "rich_console",
    "sink",
    "warn",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_COLORS = {"error": "31", "warning": "33", "dim": "2"}


@dataclass(frozen=True)
class Sink:
    """Where a command's lines go when it runs for another process (a running controller
    applying a file for ``lxr apply``): its stdout and stderr, and whether that process's
    stderr takes colours."""

    stdout: TextIO
    stderr: TextIO
    color: bool


#: the current thread's sink; None: this process's own stdout and stderr
sink: ContextVar[Sink | None] = ContextVar("lxr_console_sink", default=None)


def _stdout() -> TextIO:
    current = sink.get()
    return sys.stdout if current is None else current.stdout


def _stderr() -> TextIO:
    current = sink.get()
    return sys.stderr if current is None else current.stderr


def _paint(word: str, color: str) -> str:
    """``word`` in an ANSI colour when stderr is a terminal (and NO_COLOR is unset)."""
    current = sink.get()
    if current is not None:
        painted = current.color
    else:
        painted = not os.environ.get("NO_COLOR") and sys.stderr.isatty()
    if not painted:
        return word
    return f"\x1b[{_COLORS[color]}m{word}\x1b[0m"


def configure_logging(verbose: bool) -> None:
    """Log lines on stderr, INFO with ``-v``, URL passwords masked (every command does this)."""
    import logging

    from lxr.redaction import install_log_redaction

    # -v is about lxr: the database layer's own INFO lines (Alembic's plugin list) stay out
    for quiet in ("alembic", "sqlalchemy"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    # one line per controller cycle: only with -v (a busy local cluster cycles twice a second)
    logging.getLogger("lxr.cycles").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()  # no database password in any log line
    # asyncssh logs every connection and channel at INFO: only with -v (launch scripts'
    # absl logging would show them otherwise)
    logging.getLogger("asyncssh").setLevel(logging.INFO if verbose else logging.WARNING)


def out(line: str = "") -> None:
    """One line of results on stdout, verbatim."""
    _stdout().write(line + "\n")


def error(message: str) -> None:
    """``error: message`` on stderr, verbatim and unwrapped (people and tools grep it), with
    URL passwords masked."""
    _stderr().write(f"{_paint('error:', 'error')} {redact(message)}\n")


def warn(message: str) -> None:
    """``warning: message`` on stderr (URL passwords masked)."""
    _stderr().write(f"{_paint('warning:', 'warning')} {redact(message)}\n")


def note(message: str, *, dim: bool = False) -> None:
    """A message on stderr (progress remarks, hints)."""
    _stderr().write((_paint(message, "dim") if dim else message) + "\n")


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    error(message)
    raise exit_with(code)


def exit_with(code: int) -> BaseException:
    """The exception that ends a command with ``code``: typer's ``Exit`` when typer runs the
    command (it turns that into the exit code, also for tests calling a command's body), a
    plain ``SystemExit`` on the fast path of reads, which runs without importing typer."""
    typer = sys.modules.get("typer")
    return typer.Exit(code) if typer is not None else SystemExit(code)


@cache
def rich_console() -> Console:
    """The console of live displays (progress bars, ``get -w`` on a terminal)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 250)
