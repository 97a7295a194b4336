"""Experiments on clusters the controller cannot reach: telling them apart while ``delete``
waits, and removing them here with a warning that names what may still run there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxr.api.resources import Condition, ConditionStatus
from lxr.cli.console import EXIT_OK, warn

__all__ = ["forget_unreachable", "on_unreachable_clusters", "unreachable_condition"]


def unreachable_condition(store: Any, cluster: str) -> Condition | None:
    """``Reachable=False`` of ``cluster``, or None when it is reachable or not known yet."""
    for c in store.cluster_status(cluster).conditions:
        if c.type == "Reachable" and c.status is ConditionStatus.FALSE:
            return c
    return None


def _remaining(store: Any, clusters: Mapping[str, str]) -> dict[str, str]:
    from lxr.store import NotFound

    left = {}
    for name, cluster in clusters.items():
        try:
            store.experiment_uid(name)
        except NotFound:
            continue
        left[name] = cluster
    return left


def on_unreachable_clusters(store: Any, clusters: Mapping[str, str]) -> bool:
    """True when every experiment of ``clusters`` (name -> cluster) not yet gone is on a
    cluster whose ``Reachable`` condition is False."""
    left = _remaining(store, clusters)
    down = {c for c in set(left.values()) if unreachable_condition(store, c) is not None}
    return bool(left) and all(c in down for c in left.values())


def forget_unreachable(store: Any, clusters: Mapping[str, str]) -> int:
    """Remove here every experiment of ``clusters`` not yet gone (their clusters cannot be
    reached to cancel their tasks), each with a warning; the exit code."""
    from lxr.store import NotFound

    for name, cluster in _remaining(store, clusters).items():
        cond = unreachable_condition(store, cluster)
        why = f"cluster {cluster} is unreachable ({cond.message if cond else 'unknown cause'})"
        try:
            gone = store.forget_experiment(name, why)
        except NotFound:
            continue  # the controller finished the deletion meanwhile
        left = []
        if gone.job_ids:
            left.append(f"job(s) {', '.join(gone.job_ids)} may still run there")
        if gone.unconfirmed:
            left.append(f"submission(s) tagged {', '.join(gone.unconfirmed)} may have reached it")
        if not left:
            warn(f"{why}: experiment/{name} removed here; none of its tasks had been submitted.")
            continue
        warn(
            f"{why}: experiment/{name} removed here without cancelling its tasks: "
            f"{'; '.join(left)}. Cancel them on the cluster, or delete with --wait-for-cancel "
            "to wait until the cluster can be reached."
        )
    return EXIT_OK
