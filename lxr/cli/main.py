"""The ``lxr`` command line: kubectl habits for experiments on HPC clusters.

The commands and their options are a typer app (:mod:`lxr.cli.app`). Reads that people run
all day (``get``, ``describe experiment``) first go through :mod:`lxr.cli.fastpath`, which
runs the same command bodies straight from ``argv`` when it understands every word of it, so
they start without importing typer; ``apply -f FILE`` is first offered to a running
controller (:mod:`lxr.cli.applyclient`); anything else (``--help``, a typo, another command)
is typer's.
"""

from __future__ import annotations

import os
import sys

# typing is not imported at run time: `lxr apply` to a running controller starts on the
# standard library's cheapest modules (tests/test_cli_imports.py)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from lxr.cli.app import COMMANDS, app

__all__ = ["COMMANDS", "app", "main"]


def main(*, fast: bool = True) -> None:
    """Entry point of the ``lxr`` command. Usage errors are one line, ``error: ...``.
    ``fast=False`` leaves every command to typer (tests compare the two)."""
    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    sys.excepthook = _redacted_excepthook
    if fast and "_LXR_COMPLETE" not in os.environ and sys.argv[1:2] == ["apply"]:
        from lxr.cli.applyclient import handoff

        code = handoff(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    elif fast and "_LXR_COMPLETE" not in os.environ:
        from lxr.cli.fastpath import dispatch

        try:
            handled = dispatch(sys.argv[1:])
        except BrokenPipeError:
            _reader_left()
        if handled:
            sys.exit(0)
    _typer_main()


def _reader_left() -> NoReturn:
    """The reader of stdout went away (``lxr get wu NAME | head``): stop quietly with exit 1,
    as typer's commands do, without a traceback or a failing flush at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


def _typer_main() -> None:
    # typer's own exception types (typer re-exports only some of them)
    from typer import Abort
    from typer._click.exceptions import ClickException

    from lxr.cli.app import command
    from lxr.cli.console import error

    if "_LXR_COMPLETE" in os.environ:
        # a shell asks for completions: register typer's shell classes (add_completion=False
        # leaves them out, with the --install-completion that would not ask)
        from typer._completion_classes import completion_init

        completion_init()
    try:
        code = command()(prog_name="lxr", standalone_mode=False)
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        if exc.format_message():  # empty after no_args_is_help printed the help
            error(f"{exc.format_message()}{hint}")
        sys.exit(exc.exit_code)
    except Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _redacted_excepthook(kind, value, tb) -> None:  # sys.excepthook's shape
    """An unexpected error still prints its traceback, with URL passwords masked."""
    import traceback

    from lxr.redaction import redact

    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


def __getattr__(name: str) -> Any:
    # the typer app, imported when asked for (``from lxr.cli.main import app``)
    if name in ("COMMANDS", "app"):
        from lxr.cli import app as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
