"""The controller's lease: one leader at a time, fenced by the lease's epoch.

A controller leads for one *term*: from taking the lease (which gives it a new epoch, its
fencing token) until it loses it. During a term

- a timer renews the lease every third of its TTL, apart from the work of the term, so a long
  pass does not let it lapse;
- every store write of the term checks, in its own transaction, that the lease still has this
  holder and epoch (the store's fenced view raises :class:`LeaseLost` otherwise);
- :meth:`LeaseKeeper.guard` renews the lease in the store immediately before each scheduler
  call that creates or cancels work: a controller that was paused (a GC pause, a frozen VM,
  SIGSTOP) past the TTL finds that another took over and does nothing.

A standby takes the lease only once it lapsed (the holder stopped renewing), or at once from a
controller of this host whose process is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from lxr.reconciler.storecalls import StoreCalls, is_transient
from lxr.store import LeaseLost

if TYPE_CHECKING:
    from lxr.store import Store

__all__ = ["DEFAULT_TTL_SECONDS", "LeaseKeeper", "LeaseLost", "dead_local_holder"]

log = logging.getLogger("lxr.controller")

#: how long a lease lasts without renewal (``LXR_LEASE_TTL`` overrides it, for tests)
DEFAULT_TTL_SECONDS = 15.0


class LeaseKeeper:
    """Takes, renews and checks the lease of one controller (``holder``)."""

    def __init__(
        self,
        store: Store,
        holder: str,
        address: str | None,
        calls: StoreCalls,
        ttl: float | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        self.address = address
        self.calls = calls
        self.ttl = ttl if ttl is not None else float(os.environ.get("LXR_LEASE_TTL", 0) or 0)
        self.ttl = self.ttl or DEFAULT_TTL_SECONDS
        #: the epoch of the current term, None while not leading
        self.epoch: int | None = None
        self._renewed = 0.0  # monotonic time of the last successful take or renewal
        #: (time, summary) of the last cycle, recorded with the next renewal
        self.last_cycle: tuple[float, str] | None = None

    @property
    def leading(self) -> bool:
        """True while this controller holds the lease as far as it knows."""
        return self.epoch is not None and self.valid_for() > 0

    def valid_for(self) -> float:
        """Seconds the current term is safe for without another renewal (by the local clock,
        which runs on while this process is paused)."""
        if self.epoch is None:
            return 0.0
        # a margin: the other side's clock and the time a renewal takes
        return self._renewed + self.ttl * 0.8 - time.monotonic()

    async def acquire(self) -> bool:
        """Start a term if the lease is free, lapsed, or held by a dead controller of this host.
        True when this controller leads (a new epoch)."""
        self.epoch = None
        started = time.monotonic()
        epoch = await self.calls(self.store.try_acquire_lease, self.holder, self.ttl, self.address)
        if not epoch:
            current = await self.calls(self.store.lease)
            if current and dead_local_holder(current[0]):
                log.info("taking the lease from %s: its process is gone", current[0])
                await self.calls(self.store.release_lease, current[0])
                epoch = await self.calls(
                    self.store.try_acquire_lease, self.holder, self.ttl, self.address
                )
        if epoch:
            self.epoch = int(epoch)
            self._renewed = started
            log.info("leadership acquired (epoch %d)", self.epoch)
        return self.epoch is not None

    async def renew(self) -> bool:
        """Extend the current term; False (and the term ends) when another holder took it."""
        if self.epoch is None:
            return False
        started = time.monotonic()
        ok = await self.calls(
            self.store.renew_lease, self.holder, self.epoch, self.ttl, last_cycle=self.last_cycle
        )
        if ok:
            self._renewed = started
        else:
            self.lost("another controller took it over")
        return ok

    def lost(self, why: str) -> None:
        """End the term (idempotent)."""
        if self.epoch is not None:
            log.warning("lost the lease (epoch %d): %s", self.epoch, why)
        self.epoch = None

    async def guard(self) -> None:
        """Immediately before a scheduler call that creates or cancels work: renew the lease in
        the store, so no standby can take over for a whole TTL. Raises :class:`LeaseLost`."""
        if self.epoch is None:
            raise LeaseLost("this controller does not hold the lease")
        epoch = self.epoch
        try:
            ok = await self.renew()
        except Exception as exc:
            if not is_transient(exc):
                raise
            ok = False
            if self.valid_for() <= 0:
                self.lost(f"could not renew it for {self.ttl:.0f}s: {exc}")
        if not ok:
            raise LeaseLost(f"lease epoch {epoch} is no longer this controller's")

    async def keep(self, on_lost: anyio.CancelScope) -> None:
        """Renew every third of the TTL until the term ends; then cancel ``on_lost``.

        A renewal that fails with a transient store error is retried; when the term runs out
        meanwhile (nobody can be sure any more that no standby took over), it ends too."""
        while self.epoch is not None:
            await anyio.sleep(max(0.05, min(self.ttl / 3, self.valid_for() / 2)))
            if self.epoch is None:
                break
            if self.valid_for() <= 0:
                self.lost(f"not renewed for {self.ttl * 0.8:.1f}s (this process was stalled)")
                break
            try:
                await self.renew()
            except Exception as exc:  # a renewal error must not kill the term early
                if self.valid_for() <= 0:
                    self.lost(f"could not renew it: {exc}")
                else:
                    log.debug("lease renewal failed, retrying: %s", exc)
        on_lost.cancel()

    async def release(self) -> None:
        """Give the lease up, so the next controller need not wait out the TTL."""
        if self.epoch is None:
            return
        self.epoch = None
        await self.calls(self.store.release_lease, self.holder)


def dead_local_holder(holder: str) -> bool:
    """True when ``holder`` is a controller of this host whose process is gone."""
    host, _, rest = holder.partition(":")
    pid_s = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_s.isdigit():
        return False
    try:
        os.kill(int(pid_s), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid_s}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
