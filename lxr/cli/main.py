"""The ``lxr`` command line: kubectl habits for experiments on HPC clusters.

Each command lives in its own module under ``lxr.cli.commands`` with a ``register(app)``
function; adding a command is a new module plus one line in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Annotated

import typer

from lxr import __version__
from lxr.cli.console import out
from lxr.redaction import install_log_redaction, redact

__all__ = ["COMMANDS", "app", "main"]

# the order of `lxr --help`; a group's subcommands may come from several modules
COMMANDS = (
    "apply",
    "launch",
    "describe",
    "delete",
    "delete_cluster",
    "stop",
    "rerun",
    "wait",
    "logs",
    "check",
    "schema",
    "get",
    "controller",
    "controller_service",
    "config",
    "import_config",
)

app = typer.Typer(
    name="lxr",
    help=(
        "lxr reconciles ML experiments on HPC clusters.\n\n"
        "You describe experiments (sweeps of work units) in YAML or an XManager launch script; "
        "lxr stores that desired state and a controller submits job arrays, watches the "
        "scheduler, retries preempted and failed tasks, and cancels what you delete.\n\n"
        "Start here:  lxr apply -f examples/quickstart.yaml --wait"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    # lxr's own --install-completion asks before editing a dotfile
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        out(f"lxr {__version__}")
        raise typer.Exit()


def _install_completion(value: bool) -> None:
    from lxr.cli.completion import install_completion

    install_completion(value)


def _show_completion(value: bool) -> None:
    from lxr.cli.completion import show_completion

    show_completion(value)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the controller does.")
    ] = False,
    install_completion: Annotated[
        bool,
        typer.Option(
            "--install-completion",
            callback=_install_completion,
            is_eager=True,
            help="Install completion for the current shell (says which file it edits and "
            "asks first).",
        ),
    ] = False,
    show_completion: Annotated[
        bool,
        typer.Option(
            "--show-completion",
            callback=_show_completion,
            is_eager=True,
            help="Print the completion script for the current shell.",
        ),
    ] = False,
) -> None:
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


for _name in COMMANDS:
    importlib.import_module(f"lxr.cli.commands.{_name}").register(app)


def main() -> None:
    """Entry point of the ``lxr`` command. Usage errors are one line, ``error: ...``."""
    # typer's own exception types (typer re-exports only some of them)
    from typer import Abort
    from typer._click.exceptions import ClickException

    from lxr.cli.console import error

    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    sys.excepthook = _redacted_excepthook
    if "_LXR_COMPLETE" in os.environ:
        # a shell asks for completions: register typer's shell classes (add_completion=False
        # leaves them out, with the --install-completion that would not ask)
        from typer._completion_classes import completion_init

        completion_init()
    try:
        code = app(prog_name="lxr", standalone_mode=False)
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

    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))
