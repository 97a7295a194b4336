"""The local cluster: this machine as a small scheduler of its own. :mod:`.driver` submits,
cancels and observes; :mod:`.dispatch` starts, times out and kills (a thread of its own);
:mod:`.tasks` reads the job files; :mod:`.plugin` is what the ``lxr.schedulers`` entry point
names."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["KILL_AFTER_SECONDS", "LocalDriver"]

# names -> the module that defines them, imported on first use: the entry point names
# this package's plugin module, and importing the package must not import the driver
# (a `get` or the schema would pay for the driver, its transport and SSH)
_WHERE = {
    "KILL_AFTER_SECONDS": "lxr.schedulers.local.driver",
    "LocalDriver": "lxr.schedulers.local.driver",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
