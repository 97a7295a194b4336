"""Rendering work-unit arguments as argv entries, the way XManager does."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from lxr.api.resources import ArgValue

__all__ = ["render_args", "task_argv"]


def _render_value(value: ArgValue) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def render_args(args: Mapping[str, ArgValue]) -> list[str]:
    """``{"lr": 0.1, "fast": True, "eval": False}`` -> ``["--lr=0.1", "--fast", "--noeval"]``.

    Each entry is one argv element: values are passed verbatim (no shell, no quoting), so a
    value with spaces, quotes, ``$(...)`` or newlines reaches the program unchanged.
    """
    argv: list[str] = []
    for key, value in args.items():
        if isinstance(value, bool):
            argv.append(f"--{key}" if value else f"--no{key}")
        else:
            argv.append(f"--{key}={_render_value(value)}")
    return argv


def task_argv(command: Sequence[str], args: Mapping[str, ArgValue]) -> list[str]:
    """The full argv of a task: the executable's command followed by its rendered args."""
    return [*command, *render_args(args)]
