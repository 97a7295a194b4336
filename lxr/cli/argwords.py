"""Reading a command's words the way typer reads them, for the commands that run before typer
is imported (:mod:`lxr.cli.fastpath`, :mod:`lxr.cli.applyclient`): the standard library only.

Only the forms ``--opt VALUE``, ``--opt=VALUE``, ``-o VALUE`` and flags are read; for anything
else (``--help``, ``--``, ``-ojson``, an unknown or misspelt option, a missing value) the
reader gives up and typer reads the words, explaining or refusing them in its own words.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (see lxr.cli.main)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["read_words"]


def read_words(
    words: list[str],
    options: dict[str, tuple[str, str]],
    args: dict[str, Any],
    *,
    dash: str | None = None,
) -> list[str] | None:
    """Put the options in ``words`` into ``args`` and return the other words, or None when
    typer should read them. ``options``: option word -> (parameter, kind), the kind "flag",
    "value", "values" (repeatable) or "int". A value starting with ``-`` is typer's, but for
    ``-`` as the value of the parameter ``dash`` (stdin); ``-`` as a word is typer's."""
    positional: list[str] = []
    i = 0
    while i < len(words):
        arg = words[i]
        i += 1
        if not arg.startswith("-"):
            positional.append(arg)
            continue
        opt, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        found = options.get(opt)
        if found is None:
            return None  # --help, --, -, -ojson, a typo: typer's
        param, how = found
        if how == "flag":
            if eq:
                return None
            args[param] = True
            continue
        if not eq:
            if i >= len(words):
                return None
            value = words[i]
            i += 1
        if value.startswith("-") and not (value == "-" and param == dash):
            return None
        if how == "int":
            if not (value.isascii() and value.isdigit()):
                return None
            args[param] = int(value)
        elif how == "values":
            args[param] = [*(args[param] or []), value]
        else:
            args[param] = value
    return positional
