"""Whether the controller can reach each cluster: the ``Reachable`` condition, its events and
the ``lxr_cluster_connect_errors_total`` metric, from the outcome of each reconcile cycle.

A cycle that fails to connect (a :class:`~lxr.schedulers.transport.ConnectError`, found also
inside exception groups) makes the cluster ``Reachable=False`` with the cause as reason and
message; a cycle that succeeds makes it ``Reachable=True``. The store is written, and an event
added, only when that changes: a cluster down for an hour costs one event, not one per retry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lxr.api.resources import ConditionStatus
from lxr.schedulers.transport import ConnectError

if TYPE_CHECKING:
    from lxr.metrics import Metrics
    from lxr.store import Store

__all__ = ["REACHABLE", "Reachability", "connect_error", "describe_error", "leaf_errors"]

log = logging.getLogger("lxr.controller")

#: the condition's type
REACHABLE = "Reachable"


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[exc]`` itself."""
    inner = getattr(exc, "exceptions", None)
    if not isinstance(inner, tuple):
        return [exc]
    return [leaf for sub in inner for leaf in leaf_errors(sub)]


def connect_error(exc: BaseException) -> ConnectError | None:
    """The connection failure ``exc`` is or holds (in a group, or as a cause), if any."""
    for leaf in leaf_errors(exc):
        seen: set[int] = set()
        cur: BaseException | None = leaf
        while cur is not None and id(cur) not in seen:
            if isinstance(cur, ConnectError):
                return cur
            seen.add(id(cur))
            cur = cur.__cause__
    return None


def describe_error(exc: BaseException) -> str:
    """One line naming the cause: exception groups unwrapped (``unhandled errors in a
    TaskGroup`` says nothing), the connection failure first when there is one."""
    found = connect_error(exc)
    if found is not None:
        return found.message
    leaves = leaf_errors(exc)
    text = "; ".join(f"{type(e).__name__}: {e}" for e in leaves[:3])
    return text + (f" (and {len(leaves) - 3} more)" if len(leaves) > 3 else "")


class Reachability:
    """Keeps each cluster's ``Reachable`` condition in step with the controller's cycles.

    The store is passed to each call (the controller's fenced view of its current term), and
    the calls are blocking: the controller runs them off its event loop."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        # (status, reason, message) last written per cluster: the store is written on a change
        self._known: dict[str, tuple[ConditionStatus, str, str]] = {}

    def _current(self, store: Store, cluster: str) -> tuple[ConditionStatus, str, str] | None:
        if cluster not in self._known:
            for c in store.cluster_status(cluster).conditions:
                if c.type == REACHABLE:
                    self._known[cluster] = (c.status, c.reason, c.message)
        return self._known.get(cluster)

    def connect_failure(self, cluster: str, exc: BaseException) -> ConnectError | None:
        """The connection failure a cycle of ``cluster`` raised (counted in the metric), or
        None when ``exc`` is another error. No I/O."""
        err = connect_error(exc)
        if err is not None and self.metrics:
            self.metrics.cluster_connect_error(cluster, err.reason)
        return err

    def failed(self, store: Store, cluster: str, err: ConnectError) -> None:
        """A cycle of ``cluster`` could not connect: the cluster is ``Reachable=False``."""
        current = self._current(store, cluster)
        if current == (ConditionStatus.FALSE, err.reason, err.message):
            return
        if current is None or current[:2] != (ConditionStatus.FALSE, err.reason):
            log.info("cluster %s is unreachable: %s", cluster, err.message)
        self._write(
            store,
            cluster,
            ConditionStatus.FALSE,
            err.reason,
            err.message,
            "Warning",
            "Unreachable",
        )

    def succeeded(self, store: Store, cluster: str) -> None:
        """A cycle of ``cluster`` went through."""
        current = self._current(store, cluster)
        if current is not None and current[0] is ConditionStatus.TRUE:
            return
        self._write(
            store,
            cluster,
            ConditionStatus.TRUE,
            "Connected",
            "the controller reaches the cluster",
            "Normal" if current is not None else None,  # an event only after being down
            "Reachable",
        )

    def _write(
        self,
        store: Store,
        cluster: str,
        status: ConditionStatus,
        reason: str,
        message: str,
        event_type: str | None,
        event_reason: str,
    ) -> None:
        changed = store.set_cluster_condition(cluster, REACHABLE, status, reason, message)
        self._known[cluster] = (status, reason, message)
        if changed and event_type is not None:
            store.add_events(
                [(event_type, event_reason, message[:2000], "Cluster", cluster)], cluster=cluster
            )
