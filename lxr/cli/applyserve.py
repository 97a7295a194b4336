"""``lxr apply`` done by a running controller for the process that ran it: the controller's
half of :mod:`lxr.cli.applyclient`.

The request carries what the command read and what apply-time resolution needs: the file's
text, the name the user gave it, its directory (relative paths in it are relative to that),
the options, and the user's home directory (``~`` in a path). The controller loads and
validates it, builds nothing (a file whose experiments name a package, built at apply time
on the user's side, is handed back: ``fallback``), resolves paths, writes the desired state
with the command's own code (:func:`lxr.cli.commands.apply.write_loaded`) and answers with
what the command prints on stdout and stderr and its exit code, so the user sees the same
either way. Desired state is resolved here and now, at apply time, as in the command.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from lxr.cli.applyclient import PROTOCOL
from lxr.cli.console import EXIT_OK, Sink, sink

__all__ = ["serve_apply"]


class _HandBack(Exception):
    """The client applies this file itself (in its own process, as with no controller)."""


def serve_apply(store: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Apply a file for a client (see the module's docstring); in a controller's thread."""
    if request.get("protocol") != PROTOCOL or request.get("command") != "apply":
        return {"fallback": "a request of another version"}
    if request.get("home") != os.environ.get("HOME"):
        # `~` in a workingDir would name this process's home, not the user's
        return {"fallback": "another home directory"}
    stdout, stderr = io.StringIO(), io.StringIO()
    token = sink.set(Sink(stdout, stderr, bool(request.get("color"))))
    try:
        code = _apply(store, request)
    except _HandBack as exc:
        return {"fallback": str(exc)}
    finally:
        sink.reset(token)
    return {
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
        "code": code,
        "wake": code == EXIT_OK and not request["dry_run"],
    }


def _apply(store: Any, request: dict[str, Any]) -> int:
    from lxr.api.limits import DEFAULT_MAX_WORK_UNITS
    from lxr.cli.commands.apply import load_or_exit, needs_build, write_loaded

    try:
        loaded = load_or_exit(
            Path(request["source"]),
            request["max_work_units"] or DEFAULT_MAX_WORK_UNITS,
            text=request["text"],
            base_dir=request["base_dir"],
        )
        if needs_build(loaded):
            raise _HandBack("packages are built by the applying process")
        write_loaded(store, loaded, bool(request["dry_run"]))
    except SystemExit as exc:  # die() without typer
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        code = getattr(exc, "exit_code", None)  # typer's Exit, as die() raises it
        if isinstance(code, int):
            return code
        raise
    return EXIT_OK
