"""The environment a task starts with on the local cluster: a small documented set of the
controller's variables, never the rest of it.

The controller may run with secrets in its environment (``LXR_DATABASE_URL`` with a password,
a systemd ``EnvironmentFile``, cloud credentials). A local task gets only :data:`INHERITED`
(and the ``LC_*`` locale variables) from it; the job's launcher then adds the experiment's
``env``, what ``envFrom`` resolves to, and the ``LXR_*`` variables of the task.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["INHERITED", "INHERITED_PREFIXES", "task_environment"]

#: the controller's variables a local task inherits, when set
INHERITED = ("HOME", "LANG", "LANGUAGE", "LOGNAME", "PATH", "SHELL", "TERM", "TMPDIR", "TZ", "USER")
#: and every variable with one of these prefixes
INHERITED_PREFIXES = ("LC_",)


def task_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The part of ``parent`` (the controller's environment) that a local task inherits."""
    return {
        name: value
        for name, value in parent.items()
        if name in INHERITED or name.startswith(INHERITED_PREFIXES)
    }
