"""The Slurm driver against the real dev cluster (deploy/dev-cluster), through its sshd on
127.0.0.1:2222 as user ``lxr``: sweeps converge, preempted tasks come back, failures are retried
per policy, a controller killed at the submit point does not submit twice, and the number of
scheduler commands per cycle does not grow with the number of tasks.

Every test uses its own experiment name (``it<run>-<what>``) and cancels its leftover jobs.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from lxr.api.resources import Cluster, Experiment, Resources, WorkUnit
from lxr.reconciler.controller import Controller
from lxr.schedulers.base import (
    ArrayJob,
    ObserveQuery,
    SchedulerError,
    Snapshot,
    TaskPhase,
    TaskSpec,
)
from lxr.schedulers.registry import make_driver
from lxr.schedulers.slurm import SlurmDriver, compress_indexes, expand_indexes
from lxr.schedulers.ssh import SSHTransport
from lxr.store import Store
from lxr.testing import converge, finished
from tests.conftest import dev_ssh, require

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN = secrets.token_hex(2)
CLUSTER = "dev-slurm"
CLI = [sys.executable, "-c", "from lxr.cli.main import main; main()"]


def ssh(env: dict[str, str], command: str, check: bool = True) -> str:
    """Run a shell command on the dev cluster's login node as user lxr."""
    res = subprocess.run(
        ["ssh", "-F", env["LXR_DEV_SSH_CONFIG"], "lxr-dev", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"ssh {command!r} exited {res.returncode}: {res.stderr}")
    return res.stdout


def cluster_spec(env: dict[str, str]) -> dict:
    return {
        "scheduler": "slurm",
        "ssh": dev_ssh(env),
        "defaults": {"cpus": 1, "memory": "256Mi"},
    }


@dataclass
class Slurm:
    """What a test needs: the store, the cluster's settings, and every command lxr ran."""

    store: Store
    env: dict[str, str]
    prefix: str
    commands: list[tuple[str, ...]] = field(default_factory=list)

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def apply(self, what: str, command: list[str], n: int, **spec: object) -> str:
        name = self.name(what)
        exp = Experiment.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "cluster": CLUSTER,
                    "executable": {"command": command},
                    "sweep": {"grid": {"i": list(range(n))}},
                    **spec,
                },
            }
        )
        self.store.apply(exp)
        return name

    def units(self, name: str) -> list[WorkUnit]:
        return self.store.list_work_units(name)

    def sbatches(self) -> list[tuple[str, ...]]:
        """Every sbatch argv, also when it runs behind a wrapper (``sh -c ... exec sbatch``)."""
        return [c[c.index("sbatch") :] for c in self.commands if "sbatch" in c]

    def urgent(self, seconds: int) -> str:
        """A plain job on the urgent partition that needs the whole node: it preempts."""
        return ssh(
            self.env,
            f"sbatch --parsable -p urgent -c 8 --mem=1G -J lxr-{self.prefix}-urgent "
            f"-o /dev/null --wrap 'sleep {seconds}'",
        ).strip()


@pytest.fixture
def slurm(
    dev_cluster: dict[str, str], store: Store, monkeypatch: pytest.MonkeyPatch, request
) -> Iterator[Slurm]:
    env = dev_cluster
    probe = subprocess.run(
        ["ssh", "-F", env["LXR_DEV_SSH_CONFIG"], "lxr-dev", "squeue --me -h -o %i"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    require(probe.returncode == 0, f"squeue over ssh failed: {probe.stderr!r}")
    test = request.node.name.removeprefix("test_").replace("_", "")[:10]
    ctx = Slurm(store, env, f"it{RUN}-{test}")
    original = SSHTransport._run

    async def recording(self: SSHTransport, argv: tuple[str, ...], input: bytes | None):
        # a submission is one `sh -c SCRIPT sh sbatch ...` (job files on its stdin): record sbatch
        wrapped = argv[:2] == ("sh", "-c") and argv[3:4] == ("sh",) and input is not None
        ctx.commands.append(argv[4:] if wrapped else argv)
        return await original(self, argv, input)

    monkeypatch.setattr(SSHTransport, "_run", recording)
    store.apply(Cluster.model_validate({"metadata": {"name": CLUSTER}, "spec": cluster_spec(env)}))
    try:
        yield ctx
    finally:
        # cancel whatever this test left behind (its jobs are all named lxr-<prefix>-...)
        ids = [
            line.split()[0]
            for line in ssh(env, "squeue --me -h -o '%A %j'", check=False).splitlines()
            if len(line.split()) == 2 and line.split()[1].startswith(f"lxr-{ctx.prefix}-")
        ]
        if ids:
            ssh(env, "scancel " + " ".join(sorted(set(ids))), check=False)


def run_until(store: Store, until: Callable[[], bool], timeout: float) -> Controller:
    """Reconcile in this process until ``until()`` holds."""
    return converge(store, [], timeout=timeout, until=until, interval=0.5)


def attempts_of(wu: WorkUnit) -> list:
    return wu.status.attempts


# ---------------------------------------------------------------------------- (a) (f)


def test_sweep_of_20_converges_over_ssh(slurm: Slurm) -> None:
    name = slurm.apply(
        "sweep", ["bash", "-c", "echo hello wu=$LXR_WORK_UNIT attempt=$LXR_ATTEMPT; sleep 1"], 20
    )
    ctl = converge(slurm.store, [name], timeout=150, interval=0.5)
    units = slurm.units(name)
    assert len(units) == 20
    assert all(wu.status.phase.value == "Succeeded" for wu in units), [
        (wu.spec.index, wu.status.phase) for wu in units
    ]
    assert all(len(attempts_of(wu)) == 1 and wu.status.exit_code == 0 for wu in units)
    assert len(slurm.sbatches()) == 1  # one array for the whole sweep
    assert "--array=0-19" in slurm.sbatches()[0]
    driver = ctl.drivers[CLUSTER][0]
    assert isinstance(driver, SlurmDriver)
    assert driver.transport.connects == 1  # one pooled SSH connection for everything


def test_logs_over_ssh(slurm: Slurm) -> None:
    name = slurm.apply(
        "logs", ["bash", "-c", 'echo "hello from wu=$LXR_WORK_UNIT"; echo oops >&2'], 2
    )
    converge(slurm.store, [name], timeout=90, interval=0.5)
    env = {**os.environ}  # XDG_STATE_HOME points at this test's state dir
    out = subprocess.run(
        [*CLI, "logs", "experiment", name, "--wu", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello from wu=1\n"
    err = subprocess.run(
        [*CLI, "logs", "experiment", name, "--wu", "0", "--stderr"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert err.stdout == "oops\n", err.stderr


# ---------------------------------------------------------------------------- (b) preemption


def test_preempted_tasks_are_resubmitted_exactly(slurm: Slurm) -> None:
    name = slurm.apply("preempt", ["bash", "-c", "sleep 10"], 6)
    state = {"urgent": None}

    def until() -> bool:
        units = slurm.units(name)
        if state["urgent"] is None:
            running = [wu for wu in units if wu.status.phase.value == "Running"]
            if len(running) >= 4:
                state["urgent"] = slurm.urgent(6)
            return False
        return finished(slurm.store, name)

    run_until(slurm.store, until, timeout=150)
    assert state["urgent"], "the sweep never had 4 tasks running"
    units = slurm.units(name)
    preempted = {wu.spec.index for wu in units if attempts_of(wu)[0].reason == "Preempted"}
    resubmitted = {wu.spec.index for wu in units if len(attempts_of(wu)) > 1}
    assert preempted, "the urgent job preempted nothing"
    assert resubmitted == preempted  # exactly the preempted indexes came back
    for wu in units:
        atts = attempts_of(wu)
        assert wu.status.phase.value == "Succeeded"
        assert [a.phase for a in atts].count("Succeeded") == 1  # succeeded exactly once
        assert wu.status.failures == 0  # the failure budget is untouched
        assert wu.status.disruptions == len(atts) - 1
        assert all(a.reason == "Preempted" for a in atts[:-1])
    # resubmissions hold exactly the preempted indexes, packed per cycle: tasks end PREEMPTED
    # when Slurm has killed them (KillWait), so one preemption may be seen over two cycles
    sbatches = slurm.sbatches()
    assert f"--array={compress_indexes(range(6))}" in sbatches[0]
    resubmitted_per_index: dict[int, int] = {}
    for argv in sbatches[1:]:
        (array,) = [a.removeprefix("--array=") for a in argv if a.startswith("--array=")]
        for idx in expand_indexes(array.split("%")[0]):
            resubmitted_per_index[idx] = resubmitted_per_index.get(idx, 0) + 1
    assert set(resubmitted_per_index) == preempted
    for wu in units:
        assert resubmitted_per_index.get(wu.spec.index, 0) == len(attempts_of(wu)) - 1
    assert len(sbatches) - 1 <= sum(resubmitted_per_index.values())  # arrays, not one per task


# ---------------------------------------------------------------------------- (c) failures


def test_failing_task_is_retried_with_backoff_then_fails(slurm: Slurm) -> None:
    name = slurm.apply(
        "fail",
        ["bash", "-c", '[ "$LXR_WORK_UNIT" = 1 ] && exit 3; exit 0'],
        2,
        backoffLimitPerIndex=2,
        backoff={"initialSeconds": 1, "factor": 1, "jitter": 0},
    )
    converge(slurm.store, [name], timeout=120, interval=0.5)
    ok, bad = slurm.units(name)
    assert ok.status.phase.value == "Succeeded" and len(attempts_of(ok)) == 1
    assert bad.status.phase.value == "Failed"
    assert bad.status.exit_code == 3
    assert bad.status.reason == "BackoffLimitExceeded"
    assert bad.status.failures == 3
    atts = attempts_of(bad)
    assert len(atts) == 3  # the first run and backoffLimitPerIndex=2 retries
    assert all(a.reason == "Error" and a.exit_code == 3 for a in atts)
    for before, after in zip(atts, atts[1:], strict=False):
        gap = (after.submit_time - before.end_time).total_seconds()
        assert gap >= 0.9, f"retry {after.attempt} came {gap:.2f}s after the failure"


# ---------------------------------------------------------------------------- (d) crash


def test_controller_killed_after_sbatch_does_not_submit_twice(
    slurm: Slurm, state_home: Path
) -> None:
    name = slurm.apply("crash", ["bash", "-c", "sleep 1"], 5)
    env = {**os.environ, "LXR_TEST_CRASH_AT": "job-submitted"}
    proc = subprocess.run(
        [*CLI, "controller", "run", "--interval", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr  # it SIGKILLed itself right after sbatch
    assert len(slurm.sbatches()) == 0  # (the subprocess' commands are not recorded here)
    units = slurm.units(name)
    assert all(len(attempts_of(wu)) == 1 and attempts_of(wu)[0].job_id is None for wu in units)
    tag = slurm.store.find_attempt(name, 0)[1]
    # the job exists in Slurm, but lxr never recorded its id
    assert ssh(slurm.env, f"squeue --me -h -r -t all -n lxr-{tag} -o %i").strip()

    # restart: a new controller adopts the job by its name instead of submitting again
    converge(slurm.store, [name], timeout=120, interval=0.5)
    units = slurm.units(name)
    assert all(wu.status.phase.value == "Succeeded" for wu in units)
    assert all(len(attempts_of(wu)) == 1 for wu in units)
    assert len(slurm.sbatches()) == 0  # the restarted controller submitted nothing
    assert {slurm.store.find_attempt(name, wu.spec.index)[1] for wu in units} == {tag}
    events = [e.reason for e in slurm.store.list_events(name)]
    assert "Adopted" in events
    # accounting: exactly one job for that attempt's tag
    jobs: set[str] = set()
    for _ in range(20):  # records reach slurmdbd asynchronously
        out = ssh(slurm.env, f"sacct -X -n -P -S now-1hour -o JobID --name=lxr-{tag}")
        jobs = {line.split("_")[0] for line in out.split()}
        if len(out.split()) >= 5:
            break
        time.sleep(0.5)
    assert len(jobs) == 1, jobs


# ---------------------------------------------------------------------------- (e) scaling


def test_commands_per_observe_do_not_grow_with_tasks(slurm: Slurm) -> None:
    spec = slurm.store.get_cluster(CLUSTER).spec

    async def main() -> dict[int, int]:
        driver = make_driver(CLUSTER, spec)
        assert isinstance(driver, SlurmDriver)
        await driver.prepare()
        costs: dict[int, int] = {}
        jobs = []
        try:
            for n in (10, 1000):
                job = ArrayJob(
                    tag=f"{slurm.prefix}-{n}-{secrets.token_hex(3)}",
                    experiment=slurm.prefix,
                    experiment_uid="uid",
                    tasks=[TaskSpec(array_index=i, argv=["true"]) for i in range(n)],
                    resources=Resources(extra={"hold": ""}),
                )
                job_id = await driver.submit(job)
                jobs.append(job_id)
                # in flight (held), plus a job that is gone from queue and accounting alike
                query = ObserveQuery({job_id: frozenset(range(n)), "999999": frozenset({0})})
                before = driver.transport.calls
                snap = await driver.observe(query)
                costs[n] = driver.transport.calls - before
                assert snap.commands == costs[n]
                mine = [snap.task(job_id, i) for i in range(n)]
                assert all(o is not None and o.phase is TaskPhase.QUEUED for o in mine)
            before = driver.transport.calls
            await driver.cancel([(j, None) for j in jobs])
            assert driver.transport.calls - before == 1
        finally:
            await driver.close()
        return costs

    costs = anyio.run(main)
    assert costs[10] == costs[1000] == 3  # squeue, sacct, exit files


# ---------------------------------------------------------------------------- (g) delete


def test_delete_cancels_with_one_scancel(slurm: Slurm) -> None:
    name = slurm.apply("delete", ["bash", "-c", "sleep 300"], 4)
    run_until(
        slurm.store,
        lambda: sum(wu.status.phase.value == "Running" for wu in slurm.units(name)) == 4,
        timeout=90,
    )
    job_id = attempts_of(slurm.units(name)[0])[0].job_id
    slurm.store.delete_experiment(name)
    converge(slurm.store, [name], timeout=90, interval=0.5)
    assert [c for c in slurm.commands if c[0] == "scancel"] == [("scancel", f"{job_id}_[0-3]")]
    deleted = [e for e in slurm.store.list_events() if e.name == name and e.reason == "Deleted"]
    assert deleted and "all tasks stopped" in deleted[0].message
    states = ssh(slurm.env, f"squeue --me -h -r -t all -j {job_id} -o %T").split()
    assert states == ["CANCELLED"] * 4


# ---------------------------------------------------------------------------- (h) requeue


def test_scheduler_requeue_is_not_resubmitted(slurm: Slurm) -> None:
    name = slurm.apply("requeue", ["bash", "-c", "sleep 8"], 2, requeue="Scheduler")
    state: dict[str, object] = {"urgent": None, "nudged": 0.0}

    def until() -> bool:
        units = slurm.units(name)
        if state["urgent"] is None:
            if all(wu.status.phase.value == "Running" for wu in units):
                state["urgent"] = slurm.urgent(3)
            return False
        requeued = [
            a
            for wu in units
            for a in attempts_of(wu)
            if a.restarts >= 1 and a.phase == "Queued" and a.job_id
        ]
        # Slurm holds a requeued job ~121 s (BeginTime); release it once it shows PENDING
        if requeued and time.monotonic() - float(state["nudged"]) > 2:  # type: ignore[arg-type]
            ids = " ".join(f"jobid={a.job_id}_{a.index}" for a in requeued)
            for one in ids.split():
                ssh(slurm.env, f"scontrol update {one} StartTime=now", check=False)
            state["nudged"] = time.monotonic()
        return finished(slurm.store, name)

    run_until(slurm.store, until, timeout=150)
    units = slurm.units(name)
    assert all(wu.status.phase.value == "Succeeded" for wu in units)
    assert all(len(attempts_of(wu)) == 1 for wu in units)  # never resubmitted by lxr
    assert max(attempts_of(wu)[0].restarts for wu in units) >= 1
    assert len(slurm.sbatches()) == 1
    tag = slurm.store.find_attempt(name, 0)[1]
    script = ssh(slurm.env, f"cat .lxr/staging/jobs/{tag}/job.sbatch")
    assert "#SBATCH --requeue\n" in script


# ---------------------------------------------------------------------------- accounting down


def test_observation_degrades_to_squeue_and_exit_files_when_sacct_fails(
    slurm: Slurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """slurmdbd unreachable, as sacct sees it, without touching the shared daemons: over the
    real SSH transport, sacct runs with a copy of slurm.conf whose accounting port has nothing
    listening ("Problem talking to the database"). The snapshot still holds what squeue and the
    exit-code files know, and says it is degraded."""
    env = slurm.env
    broken = f".lxr-{slurm.prefix}-slurmdbd-down.conf"
    ssh(
        env,
        'c=$(scontrol show config | sed -n "s/^SLURM_CONF *= *//p"); '
        f'sed "/^AccountingStorage\\(Host\\|Port\\)/d" "$c" > {broken} && '
        f"echo AccountingStoragePort=1 >> {broken}",
    )
    recording = SSHTransport._run  # the fixture's: it records every command

    async def accounting_down(self: SSHTransport, argv: tuple[str, ...], input: bytes | None):
        if argv[:1] == ("sacct",):
            argv = ("env", f"SLURM_CONF={broken}", *argv)
        return await recording(self, argv, input)

    monkeypatch.setattr(SSHTransport, "_run", accounting_down)
    spec = slurm.store.get_cluster(CLUSTER).spec
    # a job that left the queue (real ones stay in squeue for MinJobAge, 300 s here), with
    # the exit-code files its job script would have left
    gone = str(9_000_000 + secrets.randbelow(999_999))

    async def main() -> tuple[Snapshot, str, str]:
        driver = make_driver(CLUSTER, spec)
        await driver.prepare()
        assert isinstance(driver, SlurmDriver)
        byid = f"{driver.byid_dir()}/{gone}"
        ssh(env, f"mkdir -p {byid}/exit && echo 0 > {byid}/exit/0 && echo 3 > {byid}/exit/1")
        job = ArrayJob(
            tag=f"{slurm.prefix}-{secrets.token_hex(3)}",
            experiment=slurm.prefix,
            experiment_uid="uid",
            tasks=[TaskSpec(array_index=i, argv=["true"]) for i in range(2)],
            resources=Resources(extra={"hold": ""}),
        )
        job_id = await driver.submit(job)
        try:
            snap = await driver.observe(
                ObserveQuery({job_id: frozenset({0, 1}), gone: frozenset({0, 1, 2})})
            )
            with pytest.raises(SchedulerError, match="Problem talking to the database"):
                await driver.observe(ObserveQuery({gone: frozenset({2})}, frozenset({"lost"})))
        finally:
            await driver.cancel([(job_id, None)])
            ssh(env, f"rm -rf {byid} {broken}", check=False)
            await driver.close()
        return snap, job_id, byid

    snap, job_id, _ = anyio.run(main)
    assert snap.degraded is not None and "Problem talking to the database" in snap.degraded
    assert [c[0] for c in slurm.commands if c[:1] in (("squeue",), ("env",), ("grep",))][:3] == [
        "squeue",
        "env",
        "grep",
    ]
    assert all(snap.task(job_id, i).phase is TaskPhase.QUEUED for i in (0, 1))  # type: ignore[union-attr]
    assert snap.task(gone, 0).phase is TaskPhase.SUCCEEDED  # type: ignore[union-attr]
    assert snap.task(gone, 1).exit_code == 3  # type: ignore[union-attr]
    assert snap.task(gone, 2) is None  # known nowhere: the planner's Lost timer decides


def test_env_from_a_file_and_a_command_resolved_on_the_cluster(slurm: Slurm) -> None:
    from tests.test_secrets import assert_shown_nowhere, remote_env_from

    name = slurm.name("envfrom")
    executable, tokens = remote_env_from(lambda cmd: ssh(slurm.env, cmd), name)
    slurm.store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "cluster": CLUSTER,
                    "executable": executable,
                    "sweep": {"grid": {"i": [0, 1]}},
                    "backoffLimitPerIndex": 0,
                },
            }
        )
    )
    converge(slurm.store, [name], timeout=120, interval=0.5)
    units = slurm.units(name)
    assert [(wu.status.phase.value, wu.status.exit_code) for wu in units] == [
        ("Succeeded", 0),
        ("Succeeded", 0),
    ], [wu.status for wu in units]
    assert_shown_nowhere(name, tokens)
    # nor in the job files lxr wrote on the cluster
    found = ssh(slurm.env, f"grep -rl {tokens[0]} ~/.lxr/staging/jobs || true").strip()
    assert found == ""


# ---------------------------------------------------------------------------- scaled retry


@pytest.mark.timeout(720)  # a 60 s limit hit, then a 100 s run: minutes of real Slurm time
def test_a_timed_out_task_is_retried_with_a_scaled_time_limit(slurm: Slurm) -> None:
    """A task that runs past its 1-minute limit ends Timeout; the failurePolicy rule scales the
    retry's limit 3x: the second sbatch asks for --time 3 minutes, the attempt records it, and
    the same task now succeeds (issue 15.5). It sleeps 100 s under its 1-minute limit and 65 s
    under the scaled one: past the old limit, without a second 100 s in the suite."""
    name = slurm.apply(
        "scaledtime",
        ["bash", "-c", '[ "$(squeue -h -j "$SLURM_JOB_ID" -o %l)" = 1:00 ] && sleep 100; sleep 65'],
        1,
        resources={"timeLimitSeconds": 60},
        backoff={"initialSeconds": 1, "jitter": 0},
        backoffLimitPerIndex=1,
        failurePolicy={
            "rules": [{"action": "Count", "onReasons": ["Timeout"], "scale": {"timeLimit": 3}}]
        },
    )
    converge(slurm.store, [name], timeout=600, interval=1.0)
    [unit] = slurm.units(name)
    attempts = attempts_of(unit)
    assert unit.status.phase.value == "Succeeded", unit.status
    # other jobs on the shared cluster may preempt an attempt (resubmitted, not counted):
    # what matters is one Timeout, before it the 1-minute limit, after it the scaled one
    reasons = [a.reason for a in attempts]
    assert reasons.count("Timeout") == 1 and reasons[-1] == "Completed", reasons
    assert set(reasons) <= {"Timeout", "Completed", "Preempted"}, reasons
    timeout_at = reasons.index("Timeout")
    asked = [(a.resources or {}).get("timeLimitSeconds") for a in attempts]
    assert asked == [60] * (timeout_at + 1) + [180] * (len(attempts) - timeout_at - 1), asked
    assert attempts[-1].exit_code == 0
    assert len(slurm.sbatches()) == len(attempts)  # the retry is an array of its own
    first, last = attempts[timeout_at], attempts[-1]
    tags = [slurm.store.find_attempt(name, 0, a.attempt)[1] for a in (first, last)]
    scripts = [ssh(slurm.env, f"cat .lxr/staging/jobs/{tag}/job.sbatch") for tag in tags]
    assert "#SBATCH --time=0-00:01:00\n" in scripts[0]
    assert "#SBATCH --time=0-00:03:00\n" in scripts[1]
    limits = [
        ssh(slurm.env, f"sacct -X -n -P -o Timelimit -j {a.job_id}").split()[0]
        for a in (first, last)
    ]
    assert limits == ["00:01:00", "00:03:00"]  # what Slurm itself was asked for


# ---------------------------------------------------------------------------- sweep edits, rerun

#: each task appends "<work unit> <attempt> start|end" to ~/<marks file> on the cluster
MARKING = (
    'echo "$LXR_WORK_UNIT $LXR_ATTEMPT start" >> ~/"$MARKS"; sleep "${SLEEP:-0}"; '
    '[ "${0#--i=}" != "${FAIL_I:--1}" ] || [ "$LXR_ATTEMPT" -gt 1 ] || exit 3; '
    'echo "$LXR_WORK_UNIT $LXR_ATTEMPT end" >> ~/"$MARKS"'
)


def _sweep(slurm: Slurm, what: str, points: list[int], **env: str) -> tuple[str, str]:
    name = slurm.name(what)
    marks = f"marks-{name}"
    slurm.store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "cluster": CLUSTER,
                    "executable": {
                        "command": ["bash", "-c", MARKING],
                        "env": {"MARKS": marks, **env},
                    },
                    "sweep": {"grid": {"i": points}},
                    "backoffLimitPerIndex": 0,
                },
            }
        )
    )
    return name, marks


def _cancelled(
    scancels: list[tuple[str, ...]], tasks: set[tuple[str | None, int | None]]
) -> set[tuple[str | None, int | None]]:
    """The tasks among ``tasks`` that these scancel argvs name (``J_i``, ``J_[a-b]``, or ``J``:
    every task of job J)."""
    named: set[tuple[str | None, int | None]] = set()
    for argv in scancels:
        for arg in argv[argv.index("scancel") + 1 :]:
            job, sep, rest = arg.partition("_")
            if not sep:
                named |= {t for t in tasks if t[0] == job}
                continue
            named |= {(job, i) for i in expand_indexes(rest.strip("[]"))}
    return named


def _marks(slurm: Slurm, marks: str) -> list[tuple[str, str, str]]:
    text = ssh(slurm.env, f"cat ~/{marks} 2>/dev/null", check=False)
    return [tuple(line.split()) for line in text.splitlines() if line.strip()]  # type: ignore[misc]


def test_a_grown_sweep_runs_exactly_the_new_points_on_slurm(slurm: Slurm) -> None:
    name, marks = _sweep(slurm, "grow", [0, 1, 2])
    try:
        converge(slurm.store, [name], timeout=180, interval=0.5)
        assert len([m for m in _marks(slurm, marks) if m[2] == "start"]) == 3
        _sweep(slurm, "grow", [0, 1, 2, 3, 4])
        converge(slurm.store, [name], timeout=180, interval=0.5)
        runs = [m for m in _marks(slurm, marks) if m[2] == "start"]
        assert len(runs) == 5 and sorted(runs[3:]) == [("3", "1", "start"), ("4", "1", "start")]
        assert len(slurm.sbatches()) == 2 and "--array=3-4" in slurm.sbatches()[1]
        assert [wu.status.phase.value for wu in slurm.units(name)] == ["Succeeded"] * 5
        _sweep(slurm, "grow", [0, 1, 2, 3, 4])  # unchanged: nothing runs
        converge(slurm.store, [name], timeout=60, interval=0.5)
        assert len(slurm.sbatches()) == 2 and len(_marks(slurm, marks)) == 10
    finally:
        ssh(slurm.env, f"rm -f ~/{marks}", check=False)


def test_removing_a_point_of_a_running_sweep_cancels_that_task_alone_on_slurm(
    slurm: Slurm,
) -> None:
    name, marks = _sweep(slurm, "shrink", [0, 1, 2], SLEEP="25")
    try:
        run_until(
            slurm.store,
            lambda: [wu.status.phase.value for wu in slurm.units(name)] == ["Running"] * 3,
            timeout=120,
        )
        _sweep(slurm, "shrink", [0, 2], SLEEP="25")
        converge(slurm.store, [name], timeout=180, interval=0.5)
        assert [(wu.spec.index, wu.status.phase.value) for wu in slurm.units(name)] == [
            (0, "Succeeded"),
            (2, "Succeeded"),
        ]
        ended = sorted(m[0] for m in _marks(slurm, marks) if m[2] == "end")
        assert ended == ["0", "2"]  # unit 1 was cancelled mid-sleep
        # (an attempt preempted by another job on the shared cluster is resubmitted: the kept
        # units may have several jobs; none of their tasks is ever cancelled)
        kept = {(a.job_id, a.index) for wu in slurm.units(name) for a in attempts_of(wu)}
        scancels = [c for c in slurm.commands if "scancel" in c]
        assert scancels, slurm.commands
        assert not kept & _cancelled(scancels, kept), scancels
    finally:
        ssh(slurm.env, f"rm -f ~/{marks}", check=False)


def test_rerun_failed_reruns_exactly_the_failed_units_on_slurm(slurm: Slurm) -> None:
    name, marks = _sweep(slurm, "rerun", [0, 1, 2], FAIL_I="1")
    try:
        converge(slurm.store, [name], timeout=180, interval=0.5)
        assert [wu.status.phase.value for wu in slurm.units(name)] == [
            "Succeeded",
            "Failed",
            "Succeeded",
        ]
        assert slurm.store.rerun_work_units(name, failed=True).indexes == [1]
        converge(slurm.store, [name], timeout=180, interval=0.5)
        assert [wu.status.phase.value for wu in slurm.units(name)] == ["Succeeded"] * 3
        starts = sorted((m[0], m[1]) for m in _marks(slurm, marks) if m[2] == "start")
        assert starts == [("0", "1"), ("1", "1"), ("1", "2"), ("2", "1")]
        assert len(slurm.sbatches()) == 2 and "--array=1" in slurm.sbatches()[1]
        [rerun] = [wu for wu in slurm.units(name) if wu.spec.index == 1]
        assert [a.exit_code for a in attempts_of(rerun)] == [3, 0]
    finally:
        ssh(slurm.env, f"rm -f ~/{marks}", check=False)
