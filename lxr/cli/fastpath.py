"""The reads people run all day, straight from ``argv``: ``lxr get KIND ...`` and ``lxr
describe experiment NAME`` run their bodies (:mod:`lxr.cli.listing`) without importing typer,
which with its click costs more than the whole read on a small store.

Only what this parser understands fully is run here: the options of those commands in the
forms ``--opt VALUE``, ``--opt=VALUE``, ``-o VALUE`` and their flags
(:func:`~lxr.cli.argwords.read_words`), names that do not start with ``-``. Everything else
(``--help``, ``--``, ``-ojson``, an unknown or misspelt option, a missing value, another
command) is left to typer, which parses it, explains it or refuses it in its own words; so
the output is the same either way (a test runs both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxr.cli.argwords import read_words
from lxr.cli.kinds import kind_of

__all__ = ["COMMANDS", "Command", "dispatch", "parse"]


@dataclass(frozen=True)
class Command:
    """One command's options as typer declares them (``lxr.cli.commands``), for the parser."""

    run: Callable[..., None]
    #: option word -> (parameter, kind): "flag", "value", "values" (repeatable) or "int"
    options: dict[str, tuple[str, str]]
    #: defaults of the parameters (the typer declaration's)
    defaults: dict[str, Any] = field(default_factory=dict)
    #: the positional parameter, and how many it takes: "*" (a list), "?" or "1"
    positional: tuple[str, str] = ("names", "*")


def _listing(name: str) -> Callable[..., None]:
    def run(**kwargs: Any) -> None:
        from lxr.cli import listing

        getattr(listing, name)(**kwargs)

    return run


_SELECTOR = {"-l": ("selector", "values"), "--selector": ("selector", "values")}
_OUTPUT = {"-o": ("output", "value"), "--output": ("output", "value")}
_WATCH = {"-w": ("watch", "flag"), "--watch": ("watch", "flag")}
_SORT = {"--sort-by": ("sort_by", "value")}
_NO_HEADERS = {"--no-headers": ("no_headers", "flag")}
_LIST_DEFAULTS = {
    "names": None,
    "selector": None,
    "output": "table",
    "watch": False,
    "sort_by": None,
    "no_headers": False,
}

#: (verb, kind) -> the command; kinds as :func:`lxr.cli.kinds.kind_of` names them
COMMANDS: dict[tuple[str, str], Command] = {
    ("get", "Experiment"): Command(
        _listing("get_experiments"),
        {**_SELECTOR, **_OUTPUT, **_WATCH, **_SORT, **_NO_HEADERS},
        _LIST_DEFAULTS,
    ),
    ("get", "WorkUnit"): Command(
        _listing("get_workunits"),
        {**_SELECTOR, "--phase": ("phase", "value"), **_OUTPUT, **_WATCH, **_SORT, **_NO_HEADERS},
        {**_LIST_DEFAULTS, "phase": None},
    ),
    ("get", "Cluster"): Command(
        _listing("get_clusters"),
        {**_SELECTOR, **_OUTPUT, **_SORT, **_NO_HEADERS},
        {k: v for k, v in _LIST_DEFAULTS.items() if k != "watch"},
    ),
    ("get", "Event"): Command(
        _listing("get_events"),
        {**_WATCH, "--limit": ("limit", "int"), **_OUTPUT, **_NO_HEADERS},
        {"experiment": None, "watch": False, "limit": 50, "output": "table", "no_headers": False},
        ("experiment", "?"),
    ),
    ("describe", "Experiment"): Command(
        _listing("describe_experiment_named"), {}, {}, ("name", "1")
    ),
}


def parse(argv: list[str]) -> tuple[Command, dict[str, Any]] | None:
    """The command and its arguments, or None when typer should read ``argv``."""
    if len(argv) < 2 or argv[0] not in ("get", "describe"):
        return None
    word, sep, name = argv[1].partition("/")
    kind = kind_of(word) if not word.startswith("-") else None
    command = COMMANDS.get((argv[0], kind)) if kind else None
    if command is None:
        return None
    args = dict(command.defaults)
    words = read_words(argv[2:], command.options, args)
    if words is None:
        return None
    positional = [name, *words] if sep else words
    param, count = command.positional
    if count == "1":
        if len(positional) != 1:
            return None
        args[param] = positional[0]
    elif count == "?":
        if len(positional) > 1:
            return None
        args[param] = positional[0] if positional else None
    else:
        args[param] = positional or None
    return command, args


def dispatch(argv: list[str]) -> bool:
    """Run ``argv`` here if :func:`parse` understands it; False leaves it to typer."""
    parsed = parse(argv)
    if parsed is None:
        return False
    from lxr.cli.console import configure_logging

    configure_logging(False)
    command, args = parsed
    command.run(**args)
    return True
