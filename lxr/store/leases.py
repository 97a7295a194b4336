"""The leader lease: one controller acts at a time; the others wait for it to lapse.

Every new term (a take-over, or the same holder taking it again) gets the next *epoch*, the
fencing token that the controller's writes check (:meth:`~lxr.store.engine.StoreEngine.fenced`).
Giving the lease up leaves its row behind, lapsed, so epochs only ever grow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import update

from lxr.store.engine import StoreEngine
from lxr.store.tables import LeaseRow

__all__ = ["LeaseInfo", "Leases"]


@dataclass(frozen=True)
class LeaseInfo:
    """The lease as stored, live or lapsed."""

    holder: str
    address: str | None
    epoch: int
    renewed_at: float
    ttl_seconds: float
    acquired_at: float = 0.0  # when this term began
    last_cycle_at: float | None = None  # when the holder last finished a cluster's cycle
    last_cycle: str | None = None  # what that cycle did, in one line

    def live(self, now: float | None = None) -> bool:
        """True while the holder keeps renewing it."""
        return (time.time() if now is None else now) - self.renewed_at < self.ttl_seconds


class Leases(StoreEngine):
    """Take, renew, read and give up a named lease."""

    def try_acquire_lease(
        self, holder: str, ttl: float, address: str | None = None, name: str = "controller"
    ) -> int:
        """Start a term: take the lease if it is free, lapsed or already ``holder``'s. Returns
        the new epoch (one more than the last), or 0 while another live holder has it."""
        with self.session() as s:
            row = s.get(LeaseRow, name, with_for_update=not self.is_sqlite)
            now = time.time()  # after the lock: waiting for it must not age the lease
            if row is None:
                s.add(
                    LeaseRow(
                        name=name,
                        holder=holder,
                        address=address,
                        acquired_at=now,
                        renewed_at=now,
                        ttl_seconds=ttl,
                        epoch=1,
                    )
                )
                return 1
            if row.holder != holder and now - row.renewed_at < row.ttl_seconds:
                return 0
            row.holder, row.acquired_at, row.epoch = holder, now, (row.epoch or 0) + 1
            row.renewed_at, row.ttl_seconds, row.address = now, ttl, address
            return row.epoch

    def renew_lease(
        self,
        holder: str,
        epoch: int,
        ttl: float,
        name: str = "controller",
        *,
        last_cycle: tuple[float, str] | None = None,
    ) -> bool:
        """Extend the term ``epoch`` of ``holder``; False when the lease moved on (another
        holder or epoch), in which case nothing is written. ``last_cycle``: when the holder
        last finished a cycle and what it did, recorded with the renewal (no write of its own)."""
        with self.session() as s:
            row = s.get(LeaseRow, name, with_for_update=not self.is_sqlite)
            if row is None or (row.holder, row.epoch) != (holder, epoch):
                return False
            row.renewed_at, row.ttl_seconds = time.time(), ttl
            if last_cycle is not None:
                row.last_cycle_at, row.last_cycle = last_cycle
            return True

    def release_lease(self, holder: str, name: str = "controller") -> None:
        """Give the lease up (on clean shutdown), so the next controller need not wait. The
        row stays, lapsed, so the next term's epoch is still higher."""
        with self.session() as s:
            s.execute(
                update(LeaseRow)
                .where(LeaseRow.name == name, LeaseRow.holder == holder)
                .values(renewed_at=0.0)
            )

    def lease(self, name: str = "controller") -> tuple[str, str | None] | None:
        """``(holder, address)`` of a live lease, else None."""
        info = self.lease_info(name)
        if info is None or not info.live():
            return None
        return info.holder, info.address

    def lease_info(self, name: str = "controller") -> LeaseInfo | None:
        """The lease as stored, also when it lapsed (None when it was never taken)."""
        with self.session() as s:
            row = s.get(LeaseRow, name)
            if row is None:
                return None
            return LeaseInfo(
                row.holder,
                row.address,
                row.epoch or 0,
                row.renewed_at,
                row.ttl_seconds,
                row.acquired_at,
                row.last_cycle_at,
                row.last_cycle,
            )
