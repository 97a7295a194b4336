"""Grid Engine end to end: the real SGE 8.1.9 of the dev cluster, over SSH (127.0.0.1:2222).

The scenarios of the Slurm acceptance that apply to Grid Engine: a sweep converges; a failing
task is retried ``backoffLimitPerIndex`` times, then Failed with its exit code; SIGKILL of the
controller at the submit point never submits twice; delete cancels; and a task Grid Engine
reschedules on its own is resubmitted by lxr without spending the failure budget.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lxr.api.resources import Cluster, Experiment
from lxr.store import Store
from lxr.testing import converge
from tests.conftest import REPO, controller_logs, dev_ssh, have, require, start_controller

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLUSTER = "sge-dev"

# The task: "--key=value" args become shell variables; attempt 1 sleeps --first extra seconds
# (not when Grid Engine reruns it); attempts up to --fail_until exit --code.
TASK = r"""
sleep=0 code=0 fail_until=0 first=0
for a; do case $a in --*=*) k=${a%%=*}; printf -v "${k#--}" %s "${a#*=}" ;; esac; done
echo "wu=$LXR_WORK_UNIT attempt=$LXR_ATTEMPT restarted=${RESTARTED:-0} job=$JOB_ID.$SGE_TASK_ID"
if [ "$LXR_ATTEMPT" = 1 ] && [ "${RESTARTED:-0}" = 0 ]; then sleep "$first"; fi
sleep "$sleep"
if [ "$LXR_ATTEMPT" -le "$fail_until" ]; then exit "$code"; fi
exit 0
"""


def remote(env: dict[str, str], command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """A shell command on the dev cluster as its user, through the dev ssh config."""
    return subprocess.run(
        ["ssh", "-F", env["LXR_DEV_SSH_CONFIG"], "lxr-dev", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def sge(dev_cluster: dict[str, str]) -> dict[str, str]:
    """The dev cluster, with Grid Engine answering through ssh."""
    require(have("ssh"), "no ssh client")
    res = remote(dev_cluster, "qstat -u lxr -xml >/dev/null && qconf -sq all.q | grep ^slots")
    require(
        res.returncode == 0,
        f"Grid Engine is not answering over ssh ({res.stderr.strip()[:200]}): "
        "run deploy/dev-cluster/up.sh as root",
    )
    return dev_cluster


@pytest.fixture(autouse=True)
def execd_alive(sge: dict[str, str]) -> None:
    """Grid Engine 8.1.9's execd sometimes dies some seconds after forced reschedules
    (``qmod -f -rj``); its queues then show state ``u`` and nothing runs. That is the daemon's
    fault, not lxr's: bring it back (idempotent sge-up.sh) so one test's fallout does not fail
    the next."""
    res = remote(sge, "qstat -f -q all.q | awk 'NR==3 {print $6}'")
    if "u" not in res.stdout:
        return
    require(os.geteuid() == 0, "sge_execd is down and only root can restart it (sge-up.sh)")
    print("sge_execd is down (queue state u): restarting it with deploy/dev-cluster/sge-up.sh")
    subprocess.run(["bash", str(REPO / "deploy/dev-cluster/sge-up.sh")], check=True, timeout=120)
    wait_for(
        lambda: "u" not in remote(sge, "qstat -f -q all.q | awk 'NR==3 {print $6}'").stdout,
        60,
        "sge_execd to report again",
    )


def cluster(env: dict[str, str]) -> Cluster:
    return Cluster.model_validate(
        {
            "metadata": {"name": CLUSTER},
            "spec": {
                "scheduler": "sge",
                "ssh": dev_ssh(env),
                "rateLimit": {"commandsPerSecond": 20, "burst": 20},
            },
        }
    )


def unique(prefix: str) -> str:
    """Experiment names are unique per run: Grid Engine's accounting remembers earlier runs."""
    return f"{prefix}-{secrets.token_hex(3)}"


def experiment(name: str, units: list[dict], **spec: object) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "cluster": CLUSTER,
                "executable": {"command": ["bash", "-c", TASK, "task"]},
                "workUnits": [{"args": a} for a in units],
                "backoff": {"initialSeconds": 0.5, "factor": 1, "jitter": 0},
                **spec,
            },
        }
    )


def sge_jobs(env: dict[str, str], experiment: str) -> dict[str, set[str]]:
    """Every Grid Engine job of the experiment ever, queued or finished: job id -> its names."""
    name = f"lxr-{experiment}-*"
    res = remote(
        env,
        f"qstat -u lxr -xml; echo '#ACCT'; qacct -j {shlex.quote(name)} 2>/dev/null "
        "| grep -E '^(jobnumber|jobname) '",
    )
    queued, _, acct = res.stdout.partition("#ACCT")
    jobs: dict[str, set[str]] = {}
    for number, jname in re.findall(
        r"<JB_job_number>(\d+)</JB_job_number>\s*<JAT_prio>[^<]*</JAT_prio>\s*"
        r"<JB_name>([^<]*)</JB_name>",
        queued,
    ):
        if jname.startswith(f"lxr-{experiment}-"):
            jobs.setdefault(number, set()).add(jname)
    names = re.findall(r"^jobname\s+(\S+)", acct, re.M)
    numbers = re.findall(r"^jobnumber\s+(\d+)", acct, re.M)
    for jname, number in zip(names, numbers, strict=True):
        jobs.setdefault(number, set()).add(jname)
    return jobs


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def statuses(store: Store, name: str) -> dict[int, object]:
    return {w.spec.index: w.status for w in store.list_work_units(name)}


# ---------------------------------------------------------------------------- scenarios


def test_sweep_converges_over_ssh(sge: dict[str, str], store: Store) -> None:
    store.apply(cluster(sge))
    name = unique("sge-sweep")
    store.apply(experiment(name, [{"sleep": 1, "i": i} for i in range(8)], parallelism=4))
    started = time.monotonic()
    converge(store, [name], timeout=120)
    elapsed = time.monotonic() - started

    st = statuses(store, name)
    assert sorted(st) == list(range(8))
    assert all(s.phase.value == "Succeeded" for s in st.values()), st
    assert all(len(s.attempts) == 1 and s.attempts[0].exit_code == 0 for s in st.values())
    jobs = sge_jobs(sge, name)
    assert len(jobs) == 1, jobs  # one qsub for the whole sweep
    # per-task logs landed where the driver says
    (job_id,) = jobs
    out = remote(sge, f"cat .lxr/staging/sge-byid/{job_id}/logs/3.out")
    assert out.stdout.startswith("wu=") and "attempt=1" in out.stdout, out
    print(f"8-task sweep converged in {elapsed:.1f}s")


def test_failing_task_is_retried_then_fails_with_its_exit_code(
    sge: dict[str, str], store: Store
) -> None:
    store.apply(cluster(sge))
    name = unique("sge-fail")
    units = [{"code": 0}, {"code": 3, "fail_until": 99}, {"code": 5, "fail_until": 1}]
    store.apply(experiment(name, units, backoffLimitPerIndex=2))
    converge(store, [name], timeout=150)

    st = statuses(store, name)
    assert st[0].phase.value == "Succeeded" and len(st[0].attempts) == 1
    failed = st[1]
    assert failed.phase.value == "Failed"
    assert (failed.reason, failed.exit_code, failed.failures) == ("BackoffLimitExceeded", 3, 3)
    assert [a.exit_code for a in failed.attempts] == [3, 3, 3]
    assert all(a.reason == "Error" for a in failed.attempts)
    assert st[2].phase.value == "Succeeded"
    assert [a.exit_code for a in st[2].attempts] == [5, 0]
    exp = store.get_experiment(name)
    assert exp.status is not None and exp.status.failed_indexes == [1]
    # retries resubmit exactly the affected indexes: 1 first job + 2 retry arrays
    assert len(sge_jobs(sge, name)) == 3


@pytest.mark.parametrize("point", ["intent-recorded", "job-submitted"])
def test_kill_controller_at_submit_point_never_submits_twice(
    point: str, sge: dict[str, str], state_home: Path, store: Store
) -> None:
    store.apply(cluster(sge))
    name = unique(f"sge-crash-{point.split('-')[0]}")
    store.apply(experiment(name, [{"sleep": 2}] * 4))
    crashing = start_controller(state_home, LXR_TEST_CRASH_AT=point)
    try:
        assert crashing.wait(90) == -signal.SIGKILL, controller_logs(state_home)
    finally:
        crashing.kill()
    after_crash = sge_jobs(sge, name)
    assert len(after_crash) == (1 if point == "job-submitted" else 0), after_crash

    converge(store, [name], timeout=120)
    st = statuses(store, name)
    assert all(s.phase.value == "Succeeded" for s in st.values()), st
    assert all(len(s.attempts) == 1 for s in st.values())
    jobs = sge_jobs(sge, name)
    assert len(jobs) == 1, f"one Grid Engine job for the one submission, got {jobs}"
    if point == "job-submitted":
        assert set(jobs) == set(after_crash)
        assert "Adopted" in [e.reason for e in store.list_events(name)]


def test_delete_cancels_running_tasks(
    sge: dict[str, str], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply(cluster(sge))
    name = unique("sge-delete")
    store.apply(experiment(name, [{"sleep": 120}] * 6, parallelism=3))

    def running() -> bool:
        return sum(s.phase.value == "Running" for s in statuses(store, name).values()) >= 2

    converge(store, [name], timeout=60, until=running)
    (job_id,) = sge_jobs(sge, name)
    uid = store.experiment_uid(name)

    # the experiment row goes away with its work units once all are done: record what the
    # controller wrote on the way
    final: dict[int, str] = {}
    apply_update = store.apply_update

    def recording(upd, cluster):
        if upd.experiment_uid == uid:
            final.update({p.index: p.phase for p in upd.work_units})
        return apply_update(upd, cluster)

    monkeypatch.setattr(store, "apply_update", recording)
    store.delete_experiment(name)
    started = time.monotonic()
    converge(store, [name], timeout=90)
    elapsed = time.monotonic() - started

    assert final == dict.fromkeys(range(6), "Stopped"), final
    queued = remote(sge, "qstat -u lxr -xml").stdout
    assert f"<JB_job_number>{job_id}</JB_job_number>" not in queued
    acct = remote(sge, f"qacct -j {job_id} | grep -E '^(taskid|failed)'").stdout
    # the running tasks were killed by qdel; the pending ones never ran (no record)
    assert 2 <= len(re.findall(r"^failed\s+100\b", acct, re.M)) <= 3, acct
    cancelling = [e for e in store.list_events() if e.reason == "Cancelling" and e.name == name]
    assert len(cancelling) == 1, cancelling
    print(f"delete of 6 tasks (3 running) took {elapsed:.1f}s")


def test_task_rescheduled_by_the_system_is_resubmitted_without_spending_failures(
    sge: dict[str, str], store: Store
) -> None:
    # forcing a reschedule needs a Grid Engine manager: root on the dev cluster's host
    require(have("qmod") and os.geteuid() == 0, "qmod -f -rj needs root on the SGE host")
    store.apply(cluster(sge))
    name = unique("sge-resched")
    store.apply(experiment(name, [{"first": 40}, {"sleep": 1}], backoffLimitPerIndex=0))

    def running() -> bool:
        st = statuses(store, name)
        return st[0].phase.value == "Running" and st[0].attempts[-1].state == "r"

    converge(store, [name], timeout=60, until=running)
    job_id = statuses(store, name)[0].attempts[0].job_id
    # lxr submitted with -r n; a forced reschedule (as a lost host would) reruns it anyway
    res = subprocess.run(
        ["qmod", "-f", "-rj", f"{job_id}.1"], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0 and "rescheduling" in res.stdout, res
    converge(store, [name], timeout=120)

    wu = statuses(store, name)[0]
    assert wu.phase.value == "Succeeded", wu
    assert wu.failures == 0 and wu.disruptions >= 1, wu
    first, last = wu.attempts[0], wu.attempts[-1]
    assert first.reason == "Rescheduled" and first.restarts == 1, first
    assert last.exit_code == 0 and len(wu.attempts) == 2
    assert statuses(store, name)[1].phase.value == "Succeeded"


def test_requeue_scheduler_lets_grid_engine_rerun_the_task(
    sge: dict[str, str], store: Store
) -> None:
    """``requeue: Scheduler`` submits ``-r y``: the owner's ``qmod -rj`` reruns the task in
    place; lxr records the restart and never resubmits."""
    store.apply(cluster(sge))
    name = unique("sge-requeue")
    store.apply(experiment(name, [{"first": 40}], requeue="Scheduler", backoffLimitPerIndex=0))

    def running() -> bool:
        att = statuses(store, name)[0].attempts
        return bool(att) and att[-1].state == "r"

    converge(store, [name], timeout=60, until=running)
    job_id = statuses(store, name)[0].attempts[0].job_id
    res = remote(sge, f"qmod -rj {job_id}.1")  # as the owner, over ssh: no root needed
    assert res.returncode == 0 and "rescheduling" in res.stdout, res
    converge(store, [name], timeout=120)

    wu = statuses(store, name)[0]
    assert wu.phase.value == "Succeeded", wu
    assert (len(wu.attempts), wu.failures, wu.disruptions) == (1, 0, 0), wu
    assert wu.attempts[0].restarts == 1 and wu.attempts[0].exit_code == 0
    assert "Requeued" in [e.reason for e in store.list_events(name)]
    assert len(sge_jobs(sge, name)) == 1


def test_commands_per_cycle_do_not_grow_with_tasks(sge: dict[str, str]) -> None:
    """10 vs 1000 tasks, queued and then gone from the queue: the same number of commands."""
    import anyio

    from lxr.api.resources import Resources
    from lxr.schedulers.base import ArrayJob, ObserveQuery, TaskSpec
    from lxr.schedulers.registry import make_driver

    spec = cluster(sge).spec

    async def main() -> dict[int, tuple[int, int, int, int]]:
        driver = make_driver(CLUSTER, spec)
        await driver.prepare()
        out = {}
        try:
            for n in (10, 1000):
                tag = unique(f"sge-scale{n}")
                job = ArrayJob(
                    tag,
                    "scale",
                    "uid",
                    [TaskSpec(i, ["true"]) for i in range(1, n + 1)],
                    Resources(),
                )
                files, argv = driver.render(job)  # type: ignore[attr-defined]
                await driver.transport.write_files(files)
                # held: the tasks must stay queued while they are counted
                res = await driver.transport.run([argv[0], "-h", *argv[1:]])
                job_id = res.stdout.strip().split(".")[0]
                query = ObserveQuery({job_id: frozenset(range(1, n + 1))})
                queued = await driver.observe(query)
                in_queue = sum(1 for (j, _), o in queued.tasks.items() if j == job_id)
                await driver.cancel([(job_id, None)])
                await anyio.sleep(1.5)
                gone = await driver.observe(query)
                out[n] = (queued.commands, in_queue, gone.commands, len(gone.tasks))
        finally:
            await driver.close()
        return out

    counts = anyio.run(main)
    assert counts[10][1] == 10 and counts[1000][1] == 1000, counts
    assert counts[10][0] == counts[1000][0] == 1, counts  # one qstat
    assert counts[10][2] == counts[1000][2] == 2, counts  # one qstat + one lookup


def test_eqw_task_is_observed_failed_and_the_plan_deletes_it(sge: dict[str, str]) -> None:
    """A task Grid Engine holds in Eqw (here: an output directory that does not exist) is
    reported Failed with the error from qstat -j and listed as held; observing deletes
    nothing, the plan's Cancel does."""
    import anyio

    from lxr.api.records import AttemptRecord, ExperimentRecord, WorkUnitRecord
    from lxr.api.resources import ExperimentSpec, Resources
    from lxr.reconciler.actions import Cancel
    from lxr.reconciler.planner import plan
    from lxr.schedulers.base import ArrayJob, ObserveQuery, TaskPhase, TaskSpec
    from lxr.schedulers.registry import make_driver

    spec = cluster(sge).spec
    tag = unique("sge-eqw")

    async def main() -> tuple[object, list, bool, bool]:
        driver = make_driver(CLUSTER, spec)
        await driver.prepare()
        try:
            job = ArrayJob(tag, "eqw", "uid", [TaskSpec(1, ["true"])], Resources())
            files, argv = driver.render(job)  # type: ignore[attr-defined]
            await driver.transport.write_files(files)
            argv[argv.index("-o") + 1] = "/nonexistent-lxr/$TASK_ID.out"
            res = await driver.transport.run(argv)
            job_id = res.stdout.strip().split(".")[0]
            query = ObserveQuery({job_id: frozenset({1})})
            for _ in range(60):
                snap = await driver.observe(query)
                if snap.held:
                    break
                await anyio.sleep(0.5)
            after_observe = await driver.observe(query)  # observing twice deletes nothing
            attempt = AttemptRecord(
                id=1,
                number=1,
                submission_id=1,
                submission_tag=tag,
                submission_state="Submitted",
                submission_error=None,
                job_id=job_id,
                array_index=1,
                phase="Queued",
            )
            record = ExperimentRecord(
                uid="uid",
                name="eqw",
                cluster=CLUSTER,
                generation=1,
                spec=ExperimentSpec.model_validate({"executable": {"command": ["true"]}}),
                work_units=(
                    WorkUnitRecord(
                        id=1, index=0, name="0", phase="Queued", attempt_count=1, active=attempt
                    ),
                ),
            )
            actions = plan([record], snap, time.time())
            cancels = [a for a in actions if isinstance(a, Cancel)]
            for action in cancels:
                await driver.cancel(list(action.targets))
            await anyio.sleep(1.5)
            gone = await driver.observe(query)
        finally:
            await driver.close()
        return snap, cancels, bool(after_observe.held), (job_id, 1) in gone.held

    snap, cancels, still_held, held_after_cancel = anyio.run(main)
    ((job_id, index),) = snap.held  # type: ignore[attr-defined]
    task = snap.task(job_id, index)  # type: ignore[attr-defined]
    assert task.phase is TaskPhase.FAILED and task.state.startswith("E")
    assert "can't open output file" in (task.message or "")
    assert still_held, "observing deleted the task"
    assert [c.targets for c in cancels] == [((job_id, 1),)]
    assert not held_after_cancel


def test_env_from_a_file_and_a_command_resolved_on_the_cluster(
    sge: dict[str, str], store: Store
) -> None:
    from tests.test_secrets import assert_shown_nowhere, remote_env_from

    store.apply(cluster(sge))
    name = unique("sge-envfrom")
    executable, tokens = remote_env_from(lambda cmd: remote(sge, cmd), name)
    store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "cluster": CLUSTER,
                    "executable": executable,
                    "workUnits": [{"args": {"i": 0}}, {"args": {"i": 1}}],
                    "backoffLimitPerIndex": 0,
                },
            }
        )
    )
    converge(store, [name], timeout=120)
    st = statuses(store, name)
    assert [(s.phase.value, s.exit_code) for s in st.values()] == [
        ("Succeeded", 0),
        ("Succeeded", 0),
    ], st
    assert_shown_nowhere(name, tokens)
    found = remote(sge, f"grep -rl {tokens[0]} ~/.lxr/staging || true").stdout.strip()
    assert found == ""
