"""How ``--help`` names values: a word a person reads (``FILE``, ``SECONDS``, ``KEY=VALUE``),
never typer's Python type (``<list[str]>``, ``<float>``, ``<bool>``).

Typer writes an option's type after it unless it has a metavar, and an argument's type after
it always. :func:`plain_metavars` gives every option that takes a value a metavar (its
declared one, else a name from :data:`METAVARS`, else its name in capitals) and shows an
argument by its name alone (``KIND``, ``NAME``; ``NAME...`` for several), as kubectl's help
does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["METAVARS", "plain_metavars"]

#: option (its parameter's name) -> the word for its value, where the name alone says less
METAVARS = {
    "attempt": "N",
    "filename": "FILE",
    "for_": "CONDITION",
    "interval": "SECONDS",
    "limit": "N",
    "max_work_units": "N",
    "metrics_addr": "HOST:PORT",
    "since": "DURATION",
    "tail": "N",
    "timeout": "SECONDS",
    "wu": "INDEX",
}


def _no_type(ctx: Any) -> None:
    """An argument's help shows its metavar alone."""
    return None


def plain_metavars(command: Any) -> Any:
    """``command`` (a click command or group, as typer built it) and its subcommands with
    plain metavars; returns ``command``."""
    for param in command.params:
        name = param.name or ""
        if param.param_type_name == "argument":
            if param.metavar is None:
                # several names: NAME... (kubectl's words), not NAMES...
                many = param.nargs != 1 and name.endswith("s")
                param.metavar = (name[:-1] if many else name).upper()
            param.display_type_rich = _no_type  # this instance's help: the name alone
        elif not getattr(param, "is_flag", False) and not getattr(param, "count", False):
            if param.metavar is None:
                param.metavar = METAVARS.get(name, name.upper().replace("_", "-"))
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)
    return command
