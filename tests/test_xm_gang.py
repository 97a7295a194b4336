"""XManager launch scripts of several ranks and of job groups on the dev cluster's Slurm, over
SSH, through ``lxr launch``: ``xm.JobRequirements(replicas=4)`` is one work unit of 4 ranks
that rendezvous, and xmanager-slurm's job-group idiom (``xm.JobGroup(server=..., client=...)``
with per-job args) is one heterogeneous job whose client reaches the server."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("xmanager")

from lxr.store import Store
from tests.test_xm_clusters import EXAMPLES, _lxr, _scheduler_up, _ssh

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _launch(dev_cluster: dict[str, str], script: str) -> None:
    _scheduler_up(dev_cluster, "sinfo -h -p multi -o %D", "slurm")
    applied = _lxr("apply", "-f", str(EXAMPLES / "slurm" / "cluster.yaml"))
    assert applied.returncode == 0, applied.stderr
    res = _lxr("launch", str(EXAMPLES / "xm" / script), "--wait", "--timeout", "300")
    assert res.returncode == 0, res.stdout + res.stderr


def test_replicas_through_lxr_launch(dev_cluster: dict[str, str], store: Store) -> None:
    _launch(dev_cluster, "launch_replicas.py")
    (exp,) = store.list_experiments()
    assert exp.spec.resources.nodes == 2 and exp.spec.resources.tasks_per_node == 2
    (unit,) = store.list_work_units(exp.metadata.name)
    assert unit.status.phase.value == "Succeeded"
    assert unit.status.attempts[0].rank_exit_codes == [0, 0, 0, 0]
    gathered = []
    for rank in range(4):
        out = _lxr("logs", "experiment", exp.metadata.name, "--wu", "0", "--rank", str(rank))
        assert out.returncode == 0, out.stderr
        (line,) = [x for x in out.stdout.splitlines() if x.startswith("ALLGATHER ")]
        gathered.append(json.loads(line.removeprefix("ALLGATHER ")))
    assert all(g == gathered[0] for g in gathered)
    assert [i["RANK"] for i in gathered[0]] == ["0", "1", "2", "3"]
    assert len({i["NODE"] for i in gathered[0]}) == 2


def test_job_group_idiom_through_lxr_launch(dev_cluster: dict[str, str], store: Store) -> None:
    _launch(dev_cluster, "launch_job_group.py")
    (exp,) = store.list_experiments()
    assert list(exp.spec.components or {}) == ["server", "client"]
    (unit,) = store.list_work_units(exp.metadata.name)
    assert unit.status.phase.value == "Succeeded", unit.status
    (att,) = unit.status.attempts
    parts = _ssh(dev_cluster, f"squeue --me -h -t all -j {att.job_id} -O JobArrayID").stdout
    assert sorted(parts.split()) == [f"{att.job_id}+0", f"{att.job_id}+1"]
    client = _lxr("logs", "experiment", exp.metadata.name, "--wu", "0", "--component", "client")
    assert client.returncode == 0 and "CLIENT pong ping" in client.stdout, client.stderr
