"""Grid Engine parsers and command rendering, on output captured from the real daemons
(tests/fixtures/sge/, see its README for the commands and scenarios)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import anyio
import pytest

from lxr.api.resources import ClusterSpec, FailureReason, Resources
from lxr.schedulers.base import (
    ArrayJob,
    ObserveQuery,
    SchedulerError,
    SubmitRejected,
    TaskPhase,
    TaskSpec,
)
from lxr.schedulers.common import compress_ranges, expand_ranges, hms, parse_utc_offset
from lxr.schedulers.sge import (
    RERUN_DECLINED_EXIT,
    QacctRecord,
    SGEDriver,
    accounting_observation,
    parse_qacct,
    parse_qstat_errors,
    parse_qstat_xml,
    parse_qsub,
    qdel_targets,
    qstat_observation,
    state_phase,
)
from lxr.schedulers.transport import CommandResult, LocalTransport, Transport
from tests.conftest import FIXTURES, REPO

SGE = FIXTURES / "sge"


def fixture(name: str) -> str:
    return (SGE / name).read_text()


def by_task(text: str) -> dict[tuple[str, int], list[QacctRecord]]:
    out: dict[tuple[str, int], list[QacctRecord]] = {}
    for rec in parse_qacct(text):
        out.setdefault((rec.job_id, rec.array_index), []).append(rec)
    return out


# ---------------------------------------------------------------------------- common helpers


def test_ranges_round_trip() -> None:
    assert expand_ranges("3-10:1") == list(range(3, 11))
    assert expand_ranges("9,10") == [9, 10]
    assert expand_ranges("1-7:2") == [1, 3, 5, 7]
    assert expand_ranges("[1-3,5%2]") == [1, 2, 3, 5]
    assert compress_ranges([9, 1, 2, 3, 7, 10]) == [(1, 3), (7, 7), (9, 10)]
    assert hms(90061) == "25:01:01" and hms(5) == "00:00:05"
    assert parse_utc_offset("+0200") == 7200.0 and parse_utc_offset("-0130") == -5400.0


# ---------------------------------------------------------------------------- qstat


def test_qstat_xml_expands_pending_ranges_and_keeps_states() -> None:
    tasks = parse_qstat_xml(fixture("qstat_mixed.xml"))
    got = {(t.job_id, t.array_index): t.state for t in tasks}
    # array 10: tasks 1-2 running, 3-10 pending as one "3-10:1" element
    assert got[("10", 1)] == got[("10", 2)] == "r"
    assert [i for (j, i), s in got.items() if j == "10" and s == "qw"] == list(range(3, 11))
    assert [got[("12", i)] for i in (1, 2, 3)] == ["hqw"] * 3  # held array, 1-3:1
    assert got[("13", 1)] == "Eqw" and got[("11", 1)] == "Rq"  # non-array jobs are task 1
    assert len(tasks) == 15
    assert all(t.name.startswith("lxr-") for t in tasks)
    running = next(t for t in tasks if t.state == "r")
    assert running.start_time is not None and running.submit_time is None


def test_qstat_xml_with_g_d_gives_the_same_tasks() -> None:
    plain = parse_qstat_xml(fixture("qstat_mixed.xml"))
    expanded = parse_qstat_xml(fixture("qstat_mixed_gd.xml"))
    key = lambda t: (t.job_id, t.array_index, t.state)  # noqa: E731
    assert sorted(map(key, plain)) == sorted(map(key, expanded))


def test_qstat_local_times_use_the_cluster_offset() -> None:
    (t,) = [t for t in parse_qstat_xml(fixture("qstat_mixed.xml")) if t.array_index == 1][:1]
    shifted = parse_qstat_xml(fixture("qstat_mixed.xml"), utc_offset=3600)[0]
    assert t.start_time is not None and shifted.start_time == t.start_time - 3600


@pytest.mark.parametrize(
    ("state", "phase", "restarts"),
    [
        ("qw", TaskPhase.QUEUED, 0),
        ("hqw", TaskPhase.QUEUED, 0),
        ("hRwq", TaskPhase.QUEUED, 1),
        ("Rq", TaskPhase.QUEUED, 1),
        ("r", TaskPhase.RUNNING, 0),
        ("t", TaskPhase.RUNNING, 0),
        ("Rr", TaskPhase.RUNNING, 1),
        ("Rt", TaskPhase.RUNNING, 1),
        ("s", TaskPhase.RUNNING, 0),
        ("S", TaskPhase.RUNNING, 0),
        ("T", TaskPhase.RUNNING, 0),
        ("dr", TaskPhase.RUNNING, 0),
        ("dRr", TaskPhase.RUNNING, 1),
        ("Eqw", TaskPhase.FAILED, 0),
        ("Ehqw", TaskPhase.FAILED, 0),
        ("dRS", TaskPhase.RUNNING, 1),  # not in the table: classified by its letters
    ],
)
def test_state_table(state: str, phase: TaskPhase, restarts: int) -> None:
    assert state_phase(state) == (phase, restarts)


def test_every_state_seen_on_the_real_daemon_maps() -> None:
    seen = set()
    for name in SGE.glob("qstat_*.xml"):
        seen |= {t.state for t in parse_qstat_xml(name.read_text())}
    assert {"r", "t", "qw", "hqw", "Eqw", "Rq", "Rr", "S"} <= seen
    for t in (t for n in SGE.glob("qstat_*.xml") for t in parse_qstat_xml(n.read_text())):
        obs = qstat_observation(t)
        assert obs.phase in (TaskPhase.QUEUED, TaskPhase.RUNNING, TaskPhase.FAILED), t


def test_suspended_tasks_are_running_not_failed() -> None:
    tasks = parse_qstat_xml(fixture("qstat_suspended.xml"))
    susp = [qstat_observation(t) for t in tasks if t.name == "lxr-susp"]
    assert len(susp) == 3
    assert all(o.phase is TaskPhase.RUNNING and o.state == "S" for o in susp)
    assert all(o.message == "suspended" and o.reason is None for o in susp)


def test_rescheduled_task_counts_a_restart() -> None:
    queued = [t for t in parse_qstat_xml(fixture("qstat_mixed.xml")) if t.job_id == "11"]
    running = [
        t for t in parse_qstat_xml(fixture("qstat_rescheduled_running.xml")) if t.job_id == "11"
    ]
    q, r = qstat_observation(queued[0]), qstat_observation(running[0])
    assert (q.phase, q.state, q.restarts) == (TaskPhase.QUEUED, "Rq", 1)
    assert (r.phase, r.state, r.restarts) == (TaskPhase.RUNNING, "Rr", 1)


def test_eqw_is_a_submit_error_with_the_qstat_j_reason() -> None:
    errors = parse_qstat_errors(fixture("qstat_j_eqw.txt"))
    assert errors == {
        ("13", 1): 'error: can\'t open output file "/nonexistent/dir/": No such file or directory'
    }
    assert parse_qstat_errors(fixture("qstat_j_array.txt")) == {}
    eqw = next(t for t in parse_qstat_xml(fixture("qstat_mixed.xml")) if t.state == "Eqw")
    obs = qstat_observation(eqw, errors[("13", 1)])
    assert obs.phase is TaskPhase.FAILED and obs.reason is FailureReason.SUBMIT_ERROR
    assert "can't open output file" in (obs.message or "")


# ---------------------------------------------------------------------------- qacct


def test_qacct_mixed_array_exit_codes() -> None:
    runs = by_task(fixture("qacct_array_mixed.txt"))
    assert sorted(i for _, i in runs) == list(range(1, 11))
    obs = {i: accounting_observation(r) for (_, i), r in runs.items()}
    assert obs[1].phase is TaskPhase.SUCCEEDED and obs[1].exit_code == 0
    assert (obs[3].phase, obs[3].reason, obs[3].exit_code) == (
        TaskPhase.FAILED,
        FailureReason.ERROR,
        3,
    )
    assert (obs[5].reason, obs[5].exit_code) == (FailureReason.ERROR, 42)
    # killed by SIGKILL from outside the launcher: "failed 100 : assumedly after job", 137
    assert (obs[7].phase, obs[7].reason, obs[7].exit_code) == (TaskPhase.CANCELLED, None, 137)
    assert "signal 9" in (obs[7].message or "")
    assert obs[1].start_time is not None and obs[1].end_time is not None


def test_qacct_h_rt_is_timeout() -> None:
    ((_, runs),) = by_task(fixture("qacct_h_rt.txt")).items()
    obs = accounting_observation(runs)
    assert (obs.phase, obs.reason, obs.exit_code) == (
        TaskPhase.FAILED,
        FailureReason.TIMEOUT,
        137,
    )
    assert "h_rt" in (obs.message or "")


def test_qacct_h_vmem_is_the_programs_own_error() -> None:
    # h_vmem is an address-space rlimit: the allocation fails inside the program (exit 1)
    ((_, runs),) = by_task(fixture("qacct_h_vmem.txt")).items()
    obs = accounting_observation(runs)
    assert (obs.reason, obs.exit_code) == (FailureReason.ERROR, 1)


def test_qacct_failed_37_on_h_vmem_only_is_out_of_memory() -> None:
    rec = parse_qacct(fixture("qacct_h_rt.txt"))[0]
    vmem = QacctRecord(**{**rec.__dict__, "category": "-l h_vmem=200M", "wallclock": 3.0})
    assert accounting_observation([vmem]).reason is FailureReason.OUT_OF_MEMORY


def test_qacct_rescheduled_with_rerun_is_the_rerun_plus_a_restart() -> None:
    ((_, runs),) = by_task(fixture("qacct_rescheduled.txt")).items()
    assert [r.failed for r in runs] == [25, 0]
    assert runs[0].start_time is None  # "-/-"
    obs = accounting_observation(runs)
    assert (obs.phase, obs.restarts) == (TaskPhase.SUCCEEDED, 1)
    # the killed run alone (the task gone before its rerun): a disruption
    alone = accounting_observation(runs[:1])
    assert (alone.phase, alone.reason, alone.exit_code) == (
        TaskPhase.FAILED,
        FailureReason.RESCHEDULED,
        None,
    )


def test_rerun_declined_by_the_job_script_is_rescheduled() -> None:
    runs = by_task(fixture("qacct_rerun_declined.txt"))
    assert [r.failed for r in runs[("39", 1)]] == [25, 0]
    assert runs[("39", 1)][-1].exit_status == RERUN_DECLINED_EXIT
    obs = accounting_observation(runs[("39", 1)])
    assert (obs.phase, obs.reason, obs.restarts, obs.exit_code) == (
        TaskPhase.FAILED,
        FailureReason.RESCHEDULED,
        1,
        None,
    )
    assert accounting_observation(runs[("39", 2)]).phase is TaskPhase.SUCCEEDED
    # the same exit code without a reschedule before it is the program's own
    assert accounting_observation(runs[("39", 1)][-1:]).reason is FailureReason.ERROR


def test_qacct_lost_execd_is_node_fail() -> None:
    # execd died under a running array: "failed 19 : before writing exit_status"
    runs = by_task(fixture("qacct_execd_lost.txt"))
    obs = {k: accounting_observation(v) for k, v in runs.items()}
    assert {o.reason for o in obs.values()} == {FailureReason.NODE_FAIL}
    assert all(o.exit_code is None and "failed 19" in (o.message or "") for o in obs.values())
    # task 1 had been rescheduled (failed 25) before: counted as a restart
    assert max(o.restarts for o in obs.values()) == 1


def test_qacct_qdel_and_eqw_records() -> None:
    qdel = [accounting_observation(r) for r in by_task(fixture("qacct_qdel.txt")).values()]
    assert len(qdel) == 3 and all(o.phase is TaskPhase.CANCELLED for o in qdel)
    ((_, eqw),) = by_task(fixture("qacct_eqw.txt")).items()
    assert accounting_observation(eqw).reason is FailureReason.SUBMIT_ERROR


def test_qacct_by_name_and_unknown() -> None:
    recs = parse_qacct(fixture("qacct_by_name.txt"))
    assert {r.name for r in recs} == {"lxr-mixed"}
    assert {r.job_id for r in recs} == {"2", "10"}  # every job with that name
    assert parse_qacct(fixture("qacct_unknown.txt")) == []
    assert parse_qacct(fixture("qacct_held_deleted.txt")) == []


def test_filtered_qacct_output_parses_the_same() -> None:
    text = fixture("qacct_array_mixed.txt")
    keep = ("==", "jobname ", "jobnumber ", "taskid ", "failed ", "exit_status ", "start_time ")
    filtered = "\n".join(ln for ln in text.splitlines() if ln.startswith(keep))
    full = [(r.job_id, r.array_index, r.failed, r.exit_status) for r in parse_qacct(text)]
    part = [(r.job_id, r.array_index, r.failed, r.exit_status) for r in parse_qacct(filtered)]
    assert full == part and len(full) == 10


# ---------------------------------------------------------------------------- qsub / qdel


def res(rc: int, out: str = "", err: str = "") -> CommandResult:
    return CommandResult(("qsub",), rc, out, err, 0.01)


def test_qsub_job_ids_from_real_terse_output() -> None:
    assert parse_qsub(res(0, fixture("qsub_terse_array.txt"))) == "10"
    assert parse_qsub(res(0, fixture("qsub_terse_single.txt"))) == "11"


@pytest.mark.parametrize(
    "err",
    [
        'Unable to run job: Job was rejected because job requests unknown queue "nosuch.q"\n'
        "Exiting.\n",
        'Unable to run job: unknown resource "foo"\nExiting.\n',
        "Unable to run job: job rejected: the requested parallel environment "
        '"nope" does not exist\nExiting.\n',
    ],
)
def test_qsub_rejections(err: str) -> None:
    # messages as qsub 8.1.9 printed them on the dev cluster
    with pytest.raises(SubmitRejected):
        parse_qsub(res(1, "", err))


def test_qsub_transient_error_is_not_a_rejection() -> None:
    from lxr.schedulers.base import SchedulerError

    err = (
        "error: commlib error: got select error (Connection refused)\n"
        'Unable to run job: unable to send message to qmaster using port 6444 on host "vm": '
        "got send error\nExiting.\n"
    )
    with pytest.raises(SchedulerError) as info:
        parse_qsub(res(1, "", err))
    assert not isinstance(info.value, SubmitRejected)


def test_qdel_targets_compress_tasks() -> None:
    targets = [("5", 1), ("5", 2), ("5", 3), ("5", 7), ("12", None), ("12", 4), ("6", 1)]
    assert qdel_targets(targets) == "12,5.1-3,5.7,6.1"
    assert qdel_targets([]) == ""


def job(n: int = 3, **kw: object) -> ArrayJob:
    return ArrayJob(
        tag="exp-0123456789",
        experiment="exp",
        experiment_uid="uid",
        tasks=[TaskSpec(array_index=i, argv=["echo", str(i)]) for i in range(1, n + 1)],
        resources=kw.pop("resources", Resources()),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def driver(transport: Transport | None = None, **spec: object) -> SGEDriver:
    d = SGEDriver(
        "sge",
        transport or LocalTransport(),
        "/home/lxr/.lxr/staging",
        ClusterSpec(scheduler="sge", sge=spec),  # type: ignore[call-arg]
    )
    d.user = "lxr"
    d._prepared = True
    return d


def test_render_qsub_argv_and_script() -> None:
    resources = Resources(
        cpus=4,
        memory="8Gi",
        gpus=2,
        time_limit_seconds=3661,
        queue="gpu.q",
        project="ml",
        extra={"scratch": "10G"},
    )
    files, argv = driver(gpu_resource="gpu_card").render(
        job(resources=resources, throttle=2, scheduler_requeue=False)
    )
    jd = "/home/lxr/.lxr/staging/jobs/exp-0123456789"
    assert argv[:2] == ["qsub", "-terse"]

    def opt(flag: str) -> str:
        return argv[argv.index(flag) + 1]

    assert (opt("-N"), opt("-r"), opt("-S")) == ("lxr-exp-0123456789", "n", "/bin/bash")
    assert (opt("-o"), opt("-e")) == (f"{jd}/logs/$TASK_ID.out", f"{jd}/logs/$TASK_ID.err")
    assert argv[argv.index("-pe") + 1 : argv.index("-pe") + 3] == ["smp", "4"]
    ls = [argv[i + 1] for i, a in enumerate(argv) if a == "-l"]
    assert ls == ["h_vmem=2048M", "h_rt=01:01:01", "gpu_card=2", "scratch=10G"]
    assert (opt("-q"), opt("-P")) == ("gpu.q", "ml")
    assert argv[-5:] == ["-t", "1-3", "-tc", "2", f"{jd}/job.sge"]
    script = files[f"{jd}/job.sge"].decode()
    assert f'exec bash {jd}/run-task.sh {jd} "$SGE_TASK_ID"' in script
    assert f"exit {RERUN_DECLINED_EXIT}" in script and "RESTARTED" in script
    assert f"{jd}/logs/.keep" in files and f"{jd}/tasks.tsv" in files


def test_render_scheduler_requeue_reruns_instead_of_declining() -> None:
    files, argv = driver().render(job(scheduler_requeue=True))
    assert argv[argv.index("-r") + 1] == "y"
    script = next(v for k, v in files.items() if k.endswith("job.sge")).decode()
    assert f"exit {RERUN_DECLINED_EXIT}" not in script and "/restarts" in script


def test_render_refuses_names_with_spaces_and_sparse_indexes() -> None:
    bad = ArrayJob(
        "t", "e", "u", [TaskSpec(1, ["x"]), TaskSpec(2, ["x"]), TaskSpec(5, ["x"])], Resources()
    )
    with pytest.raises(SubmitRejected):
        driver().render(bad)
    with pytest.raises(SubmitRejected):
        driver().render(job(resources=Resources(queue="a b")))


# ---------------------------------------------------------------------------- observe


class Scripted(Transport):
    """Answers each command from canned output; counts commands."""

    def __init__(self, answers: Mapping[str, CommandResult]) -> None:
        super().__init__()
        self.answers = answers
        self.argvs: list[tuple[str, ...]] = []
        self.inputs: list[bytes | None] = []

    async def _run(self, argv: tuple[str, ...], input: bytes | None) -> CommandResult:
        self.argvs.append(argv)
        self.inputs.append(input)
        key = argv[0] if argv[0] != "qstat" or "-xml" in argv else "qstat -j"
        return self.answers.get(key, CommandResult(argv, 0, "", "", 0.0))

    async def write_files(self, files: Mapping[str, bytes], mode: int = 0o644) -> None:
        pass

    async def read_file(self, path: str) -> bytes:
        raise FileNotFoundError(path)

    def follow(self, path: str):  # type: ignore[override]
        raise NotImplementedError


def ok(out: str) -> CommandResult:
    return CommandResult((), 0, out, "", 0.0)


def test_observe_uses_one_qstat_and_clears_eqw_once() -> None:
    t = Scripted(
        {"qstat": ok(fixture("qstat_mixed.xml")), "qstat -j": ok(fixture("qstat_j_eqw.txt"))}
    )
    d = driver(t)
    snap = anyio.run(d.observe, ObserveQuery())
    # observing only observes: the Eqw task is reported held, and the plan deletes it
    # (lxr.reconciler.planner.delete_held), here carried out as the actor would
    assert snap.held == {("13", 1)}
    anyio.run(d.cancel, sorted(snap.held))
    assert [a[0] for a in t.argvs] == ["qstat", "qstat", "qdel"]
    assert t.argvs[0] == ("qstat", "-u", "lxr", "-xml")
    assert t.argvs[2] == ("qdel", "13.1")
    assert snap.commands == 2 and len(snap.tasks) == 15  # qstat -xml, qstat -j; qdel is the plan's
    assert snap.tags["mixed"] == "10" and snap.tags["eqw"] == "13"
    assert snap.task("13", 1).reason is FailureReason.SUBMIT_ERROR  # type: ignore[union-attr]


def test_observe_looks_up_gone_tasks_in_one_command() -> None:
    t = Scripted(
        {"qstat": ok(fixture("qstat_suspended.xml")), "bash": ok(fixture("qacct_array_mixed.txt"))}
    )
    query = ObserveQuery(
        {"10": frozenset(range(1, 11)), "16": frozenset({1})}, frozenset({"gone-tag"})
    )
    snap = anyio.run(driver(t).observe, query)
    assert [a[0] for a in t.argvs] == ["qstat", "bash"]
    lookup = (t.inputs[1] or b"").decode().splitlines()
    # every task of job 10 (job 16 is still queued), then the unconfirmed tag
    assert lookup == [f"job 10 {i}" for i in range(1, 11)] + ["name lxr-gone-tag"]
    assert snap.task("10", 5).exit_code == 42  # type: ignore[union-attr]
    assert snap.task("16", 1).state == "S"  # type: ignore[union-attr]
    assert snap.tags.get("mixed") == "10"  # found through qacct's jobname


def test_lookup_script_reads_qacct_and_exit_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shell loop itself, run here with a stand-in qacct that prints real output."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    qacct = bin_dir / "qacct"
    calls = tmp_path / "qacct-calls"
    qacct.write_text(
        f'#!/bin/sh\necho "$2" >> {calls}\n'
        f'[ "$2" = 10 ] && exec cat {SGE / "qacct_array_mixed.txt"}\n'
        'echo "error: job id $2 not found" >&2; exit 1\n'
    )
    qacct.chmod(0o755)
    staging = tmp_path / "staging"
    exits = staging / "jobs" / "t1" / "exit"
    exits.mkdir(parents=True)
    (exits / "1").write_text("0\n")
    (exits / "2").write_text("7\n")
    (exits.parent / "restarts").mkdir()
    (exits.parent / "restarts" / "2").write_text("77\n77\n")  # rerun twice (-r y)
    (staging / "sge-byid").mkdir()
    (staging / "sge-byid" / "77").symlink_to(staging / "jobs" / "t1")

    d = SGEDriver("sge", LocalTransport(), str(staging), ClusterSpec(scheduler="sge"))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    found, tags = anyio.run(d._lookup, {"10": {3, 7}, "77": {1, 2, 3}}, ["never-submitted"])
    # job 77's task 3 has no exit file: accounting is asked about it (and about job 10)
    assert sorted(calls.read_text().split()) == ["10", "77", "lxr-never-submitted"]
    calls.unlink()
    found_all, _ = anyio.run(d._lookup, {"77": {1, 2}}, [])
    assert not calls.exists(), "every task had an exit file: no qacct at all"
    assert set(found_all) == {("77", 1), ("77", 2)}
    assert found[("10", 3)].exit_code == 3 and found[("10", 7)].phase is TaskPhase.CANCELLED
    assert (found[("77", 1)].phase, found[("77", 2)].exit_code) == (TaskPhase.SUCCEEDED, 7)
    assert (found[("77", 1)].restarts, found[("77", 2)].restarts) == (0, 2)
    assert ("77", 3) not in found
    assert tags == {"mixed": "10"}


def test_examples_load_and_render() -> None:
    from lxr.api.loader import load_objects

    objs = {type(o.obj).__name__: o.obj for o in load_objects(REPO / "examples" / "sge")}
    spec = objs["Cluster"].spec
    exp = objs["Experiment"].spec
    assert spec.scheduler == "sge" and exp.cluster == objs["Cluster"].metadata.name
    res = exp.resources.merged_over(spec.defaults)
    _, argv = driver().render(job(resources=res, throttle=exp.parallelism))
    assert "h_vmem=512M" in argv and "h_rt=00:05:00" in argv and argv[-3:-1] == ["-tc", "4"]


def test_qacct_failing_degrades_to_exit_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """qacct cannot read accounting: tasks with exit-code files are still observed, the
    snapshot says it is degraded, and an unconfirmed tag (only accounting knows it once it
    left the queue) fails the cycle instead of being submitted again."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qacct").write_text(
        "#!/bin/sh\necho 'error: unable to open accounting file: No such file or directory' >&2\n"
        "exit 1\n"
    )
    (bin_dir / "qacct").chmod(0o755)
    (bin_dir / "qstat").write_text(f"#!/bin/sh\ncat {SGE / 'qstat_suspended.xml'}\n")
    (bin_dir / "qstat").chmod(0o755)
    staging = tmp_path / "staging"
    exits = staging / "jobs" / "t1" / "exit"
    exits.mkdir(parents=True)
    (exits / "1").write_text("0\n")
    (staging / "sge-byid").mkdir()
    (staging / "sge-byid" / "77").symlink_to(staging / "jobs" / "t1")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    d = SGEDriver("sge", LocalTransport(), str(staging), ClusterSpec(scheduler="sge"))
    d.user, d._prepared = "lxr", True
    snap = anyio.run(d.observe, ObserveQuery({"77": frozenset({1, 2})}))
    assert snap.degraded is not None and "unable to open accounting file" in snap.degraded
    assert snap.task("77", 1).phase is TaskPhase.SUCCEEDED  # type: ignore[union-attr]
    assert snap.task("77", 2) is None
    with pytest.raises(SchedulerError, match="qacct failed"):
        anyio.run(d.observe, ObserveQuery({"77": frozenset({2})}, frozenset({"lost-tag"})))
