"""Which programs a cluster lacks: the container runtimes and interpreters work units need,
looked up with ``command -v`` on the machine lxr reaches (the login node, or this machine).

One round trip asks about every name not known yet. A name found is remembered for the
driver's life (the cluster's spec changing makes a new driver); a name missing is asked about
again after :data:`RECHECK_SECONDS`, so installing it is noticed without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from lxr.schedulers.transport import Transport, TransportError

__all__ = ["RECHECK_SECONDS", "ProgramCheck"]

RECHECK_SECONDS = 60.0

#: prints each of its arguments that is not a command on PATH, one per line
_SCRIPT = 'for p do command -v "$p" >/dev/null 2>&1 || printf "%s\\n" "$p"; done'


class ProgramCheck:
    """The programs of a cluster, cached (see the module docstring)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.found: set[str] = set()
        self.missing_since: dict[str, float] = {}  # name -> when it was last found missing
        self.round_trips = 0

    async def missing(self, names: Iterable[str], now: float | None = None) -> frozenset[str]:
        """Those of ``names`` the cluster does not have, asking only about names not known
        (or missing for longer than :data:`RECHECK_SECONDS`). A failed lookup (connection
        lost) raises :class:`TransportError`: the cycle fails and is retried, nothing is held."""
        now = time.time() if now is None else now
        wanted = sorted({n for n in names if n not in self.found})
        ask = [
            n
            for n in wanted
            if now - self.missing_since.get(n, -RECHECK_SECONDS) >= RECHECK_SECONDS
        ]
        if ask:
            res = await self.transport.run(
                ["sh", "-c", _SCRIPT, "sh", *ask], rate_limited=False, name="command-v"
            )
            self.round_trips += 1
            if res.returncode != 0:
                raise TransportError(f"cannot look up {', '.join(ask)}: {res.describe()}")
            absent = set(res.stdout.splitlines())
            for name in ask:
                if name in absent:
                    self.missing_since[name] = now
                else:
                    self.found.add(name)
                    self.missing_since.pop(name, None)
        return frozenset(n for n in wanted if n in self.missing_since)
