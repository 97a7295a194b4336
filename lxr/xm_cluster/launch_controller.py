"""The controller a launch starts when none is running: ``lxr controller run`` in a process of
its own, so that waiting on work units in a launch script reads only the store and never runs
a scheduler command itself. It is stopped when the launch ends (at process exit at the
latest); SIGTERM makes it give its lease up."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys

from lxr.store import state_dir

__all__ = ["start_controller", "stop_controller"]

#: controllers started by launches of this process, stopped at exit at the latest
_children: list[subprocess.Popen[bytes]] = []


def start_controller(database_url: str, name: str) -> subprocess.Popen[bytes]:
    """``lxr controller run`` on ``database_url``; its output goes to
    ``$XDG_STATE_HOME/lxr/launch-controllers/<name>.log``."""
    env = {**os.environ, "LXR_DATABASE_URL": database_url}  # never on a command line
    log_dir = state_dir() / "launch-controllers"
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_dir / f"{name}.log", "ab") as out:  # the child keeps its own descriptor
        child = subprocess.Popen(
            [sys.executable, "-m", "lxr.cli", "controller", "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _children.append(child)
    return child


def stop_controller(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the controller gives its lease up), then wait; kill after 10 s."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if child in _children:
        _children.remove(child)


@atexit.register
def _stop_all() -> None:
    while _children:
        stop_controller(_children[-1])
