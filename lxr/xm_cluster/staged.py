"""What a launch's artifacts became: recorded in the store when the launch wrote them, staged
by the controller afterwards (read back from each experiment's ``status.artifacts``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from lxr.api.resources import ArtifactPhase, Experiment
from lxr.staging import StagingReport
from lxr.store import NotFound, Store

__all__ = ["all_staged", "recorded_line", "report_of", "staging_reports"]

_POLL_SECONDS = 0.3


def _experiments(store: Store, names: Sequence[str]) -> list[Experiment]:
    out = []
    for name in names:
        try:
            out.append(store.get_experiment(name))
        except NotFound:
            continue
    return out


def recorded_line(store: Store, writes: Sequence[Sequence[str]]) -> str:
    """``staging: <n> artifacts, <bytes> bytes recorded, staged by the controller``."""
    digests: dict[str, int] = {}
    for exp in _experiments(store, [n for names in writes for n in names]):
        for ref in exp.spec.needed_artifacts:
            digests[ref.digest] = ref.bytes
    return (
        f"staging: {len(digests)} artifacts, {sum(digests.values())} bytes recorded in the "
        "store; the controller stages them"
    )


def all_staged(exp: Experiment) -> bool:
    """Every artifact of ``exp`` is on its cluster (or it has none, or it is gone)."""
    want = {a.digest for a in exp.spec.needed_artifacts}
    if not want or exp.metadata.deletion_timestamp is not None:
        return True
    got = exp.status.artifacts if exp.status is not None else []
    return want <= {a.digest for a in got if a.phase is ArtifactPhase.STAGED}


def report_of(cluster: str, exps: Sequence[Experiment]) -> StagingReport:
    """One cluster's staging of these experiments, from their ``status.artifacts``."""
    sent: dict[str, int] = {}
    for exp in exps:
        for a in exp.status.artifacts if exp.status is not None else []:
            sent[a.digest] = max(sent.get(a.digest, 0), a.bytes_uploaded)
    uploaded = sum(1 for n in sent.values() if n > 0)
    return StagingReport(
        cluster=cluster,
        root="",
        artifacts=len(sent),
        uploaded=uploaded,
        present=len(sent) - uploaded,
        bytes_uploaded=sum(sent.values()),
    )


def staging_reports(
    store: Store,
    writes: Sequence[Sequence[str]],
    ensure_controller: Callable[[], None],
    timeout: float = 600.0,
) -> list[StagingReport]:
    """Per write and cluster, what the controller staged, once every artifact is staged."""
    deadline = time.monotonic() + timeout
    names = [n for group in writes for n in group]
    while True:
        exps = {e.metadata.name: e for e in _experiments(store, names)}
        if all(all_staged(e) for e in exps.values()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"artifacts of {', '.join(names)} not staged in {timeout:.0f}s")
        if store.lease() is None:
            ensure_controller()
        time.sleep(_POLL_SECONDS)
    out: list[StagingReport] = []
    for group in writes:
        by_cluster: dict[str, list[Experiment]] = {}
        for name in group:
            if name in exps and exps[name].spec.needed_artifacts:
                by_cluster.setdefault(exps[name].spec.cluster, []).append(exps[name])
        out.extend(report_of(cluster, members) for cluster, members in by_cluster.items())
    return out
