"""A pipeline across the real schedulers of the dev cluster: train (3 work units on Slurm) then
eval (3 on Grid Engine), ``dependsOn: {experiment: train, match: SameIndex}``. Each eval-i
starts after train-i ended Succeeded (the tasks' own marker files say when); train-0 is
preempted mid-run, resubmitted by lxr, and eval-0 waits for the rerun; train-1 fails for good
and eval-1 ends Stopped with reason DependencyFailed while the other two evals run.

The trains run on node lxr-n3 of partition ``multi``; a job of partition ``urgent`` that needs
that whole node preempts train-0 alone (the other trains have ended by then).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from lxr.api.resources import Cluster, Experiment, WorkUnit
from lxr.store import Store
from lxr.testing import converge, finished
from tests.conftest import require
from tests.test_sge_integration import cluster as sge_cluster
from tests.test_slurm_integration import cluster_spec, ssh

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN = secrets.token_hex(3)
NODE = "lxr-n3"
MARKS = f"/tmp/lxr-deps-{RUN}"

#: ``bash -c TRAIN train --i=N``: markers around the work; unit 0 runs long on its first
#: attempt (to be preempted), unit 1 fails
TRAIN = f"""
d={MARKS}; mkdir -p $d; i=${{1#--i=}}
date +%s.%N > $d/train-$i-$LXR_ATTEMPT.start
case $i in
  0) if [ "$LXR_ATTEMPT" = 1 ]; then sleep 45; else sleep 3; fi ;;
  1) sleep 1; exit 3 ;;
  *) sleep 2 ;;
esac
date +%s.%N > $d/train-$i-$LXR_ATTEMPT.end
"""
EVAL = f"""
d={MARKS}; mkdir -p $d; i=${{1#--i=}}
date +%s.%N > $d/eval-$i.start
sleep 1
date +%s.%N > $d/eval-$i.end
"""


@pytest.fixture
def clusters(dev_cluster: dict[str, str], store: Store) -> Iterator[dict[str, str]]:
    env = dev_cluster
    probe = ssh(env, f"sinfo -h -n {NODE} -o %t && qstat -u lxr -xml >/dev/null", check=False)
    require(bool(probe.strip()), f"Slurm node {NODE} or Grid Engine not answering over ssh")
    slurm = Cluster.model_validate({"metadata": {"name": "dev-slurm"}, "spec": cluster_spec(env)})
    store.apply(slurm)
    store.apply(sge_cluster(env))
    try:
        yield env
    finally:
        # this test's jobs carry its run id in their names (lxr names jobs after experiments)
        left = "squeue --me -h -o '%A %j' | awk '/" + RUN + "/ {print $1}' | xargs -r scancel"
        ssh(env, f"{left}; rm -rf {MARKS}", check=False)


def experiment(name: str, cluster: str, script: str, **spec: object) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "cluster": cluster,
                "executable": {"command": ["bash", "-c", script, name]},
                "sweep": {"grid": {"i": [0, 1, 2]}},
                **spec,
            },
        }
    )


def marks(env: dict[str, str]) -> dict[str, float]:
    """Every marker file the tasks wrote: ``train-0-2.end`` -> its time."""
    out = ssh(env, f'cd {MARKS} && for f in *; do echo "$f $(cat $f)"; done', check=False)
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if " " in line}


def by_index(store: Store, name: str) -> dict[int, WorkUnit]:
    return {u.spec.index: u for u in store.list_work_units(name)}


def test_train_on_slurm_then_eval_on_sge_same_index(clusters: dict[str, str], store: Store) -> None:
    env = clusters
    train, evals = f"train-{RUN}", f"eval-{RUN}"
    resources = {"partition": "multi", "extra": {"nodelist": NODE}, "timeLimitSeconds": 300}
    store.apply(experiment(train, "dev-slurm", TRAIN, resources=resources, backoffLimitPerIndex=0))
    dep = {"experiment": train, "condition": "Succeeded", "match": "SameIndex"}
    store.apply(experiment(evals, "sge-dev", EVAL, dependsOn=[dep]))
    seen: dict[str, object] = {"urgent": None, "rerun_waiting": False, "first_waiting": False}

    def until() -> bool:
        t, e = by_index(store, train), by_index(store, evals)
        if len(e) == 3 and all(u.status.phase.value == "Waiting" for u in e.values()):
            seen["first_waiting"] = True
        if seen["urgent"] is None:
            ready = (
                t[0].status.phase.value == "Running"
                and t[1].status.phase.value == "Failed"
                and t[2].status.phase.value == "Succeeded"
            )
            if ready:
                seen["urgent"] = ssh(
                    env,
                    f"sbatch --parsable -p urgent -w {NODE} -c 2 --mem=1G -J lxr-{RUN}-urgent "
                    "-o /dev/null --wrap 'sleep 8'",
                ).strip()
            return False
        rerun = len(t[0].status.attempts) > 1 and t[0].status.phase.value != "Succeeded"
        if rerun and e[0].status.phase.value == "Waiting":
            seen["rerun_waiting"] = True
        return finished(store, train) and finished(store, evals)

    converge(store, [], timeout=300, until=until, interval=0.5)
    assert seen["urgent"], "train-1 never failed while train-0 ran"
    assert seen["first_waiting"], "the evals were never all Waiting"
    t, e = by_index(store, train), by_index(store, evals)

    # train-0 was preempted mid-run, resubmitted, and succeeded; eval-0 waited for the rerun
    atts = t[0].status.attempts
    assert t[0].status.phase.value == "Succeeded"
    assert [a.reason for a in atts[:-1]] == ["Preempted"] * (len(atts) - 1)
    assert seen["rerun_waiting"], "eval-0 did not wait while train-0 was resubmitted"
    m = marks(env)
    print({k: round(v - min(m.values()), 2) for k, v in sorted(m.items(), key=lambda kv: kv[1])})
    assert "train-0-1.start" in m and "train-0-1.end" not in m  # killed mid-run
    last = len(atts)
    assert m["eval-0.start"] > m[f"train-0-{last}.end"]
    assert e[0].status.phase.value == "Succeeded"

    # train-1 failed for good: eval-1 never ran
    assert t[1].status.phase.value == "Failed"
    assert e[1].status.phase.value == "Stopped"
    assert e[1].status.reason == "DependencyFailed"
    assert e[1].status.message == f"{train}/1 ended Failed"
    assert not e[1].status.attempts and "eval-1.start" not in m

    # train-2 succeeded: eval-2 ran after it
    assert e[2].status.phase.value == "Succeeded"
    assert m["eval-2.start"] > m["train-2-1.end"]

    events = {(ev.reason, ev.name) for ev in store.list_events(evals, limit=200)}
    assert ("DependencyMet", f"{evals}/0") in events
    assert ("DependencyMet", f"{evals}/2") in events
    assert ("DependencyFailed", f"{evals}/1") in events
