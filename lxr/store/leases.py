"""The leader lease: one controller acts at a time; the others wait for it to lapse."""

from __future__ import annotations

import time

from sqlalchemy import delete

from lxr.store.engine import StoreEngine
from lxr.store.tables import LeaseRow

__all__ = ["Leases"]


class Leases(StoreEngine):
    """Take, renew, read and give up a named lease."""

    def try_acquire_lease(
        self, holder: str, ttl: float, address: str | None = None, name: str = "controller"
    ) -> bool:
        """Take or renew the lease; False while another live holder has it."""
        now = time.time()
        with self.session() as s:
            row = s.get(LeaseRow, name, with_for_update=not self.is_sqlite)
            if row is None:
                s.add(
                    LeaseRow(
                        name=name,
                        holder=holder,
                        address=address,
                        acquired_at=now,
                        renewed_at=now,
                        ttl_seconds=ttl,
                    )
                )
                return True
            if row.holder != holder and now - row.renewed_at < row.ttl_seconds:
                return False
            if row.holder != holder:
                row.holder, row.acquired_at = holder, now
            row.renewed_at, row.ttl_seconds, row.address = now, ttl, address
            return True

    def release_lease(self, holder: str, name: str = "controller") -> None:
        """Give the lease up (on clean shutdown), so the next controller need not wait."""
        with self.session() as s:
            s.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder))

    def lease(self, name: str = "controller") -> tuple[str, str | None] | None:
        """``(holder, address)`` of a live lease, else None."""
        with self.session() as s:
            row = s.get(LeaseRow, name)
            if row is None or time.time() - row.renewed_at >= row.ttl_seconds:
                return None
            return row.holder, row.address
