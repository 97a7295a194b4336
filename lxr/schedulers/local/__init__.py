"""The local cluster: this machine as a small scheduler of its own. :mod:`.driver` submits,
cancels and observes; :mod:`.dispatch` starts, times out and kills (a thread of its own);
:mod:`.tasks` reads the job files; :mod:`.plugin` is what the ``lxr.schedulers`` entry point
names."""

from __future__ import annotations

from lxr.schedulers.local.driver import KILL_AFTER_SECONDS, LocalDriver

__all__ = ["KILL_AFTER_SECONDS", "LocalDriver"]
