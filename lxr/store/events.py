"""Events: what happened to an object, for ``describe`` and ``lxr events``."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select

from lxr.store.codecs import event_row
from lxr.store.engine import StoreEngine
from lxr.store.queries import experiment_uid_of
from lxr.store.reads import EventInfo
from lxr.store.tables import EventRow

__all__ = ["EventInfo", "Events"]


class Events(StoreEngine):
    """Events in and out."""

    def add_events(
        self,
        events: Iterable[tuple[str, str, str, str, str]],
        experiment_uid: str | None = None,
        cluster: str | None = None,
    ) -> None:
        """Store events ``(type, reason, message, kind, name)``."""
        now = time.time()
        rows = [event_row(now, t, r, m, k, n, experiment_uid, cluster) for t, r, m, k, n in events]
        if rows:
            with self.session() as s:
                s.add_all(rows)

    def list_events(
        self, experiment: str | None = None, *, after_id: int = 0, limit: int = 200
    ) -> list[EventInfo]:
        """Events, oldest first; with ``experiment``, only that experiment's (newest ``limit``)."""
        with self.session() as s:
            q = select(EventRow).where(EventRow.id > after_id)
            if experiment:
                q = q.where(EventRow.experiment_uid == experiment_uid_of(s, experiment))
            rows = s.scalars(q.order_by(EventRow.id.desc()).limit(limit)).all()
            return [
                EventInfo(r.id, r.time, r.type, r.reason, r.message, r.kind, r.name)
                for r in reversed(rows)
            ]
