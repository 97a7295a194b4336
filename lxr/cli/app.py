"""The ``lxr`` command line as a typer app: every command, its options and ``--help``.

Each command lives in its own module under ``lxr.cli.commands`` with a ``register(app)``
function; adding a command is a new module plus one line in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer

from lxr import __version__
from lxr.cli.console import configure_logging, out

__all__ = ["COMMANDS", "app", "command"]

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
    "gc",
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
    configure_logging(verbose)


for _name in COMMANDS:
    importlib.import_module(f"lxr.cli.commands.{_name}").register(app)


def command() -> Any:
    """The click command typer builds from :data:`app`, its help in plain metavars
    (:mod:`lxr.cli.helptext`): what ``lxr`` runs."""
    import typer.main

    from lxr.cli.helptext import plain_metavars

    return plain_metavars(typer.main.get_command(app))
