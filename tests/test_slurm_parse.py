"""The Slurm driver's parsers and its command plan, on output captured from the real daemons
(tests/fixtures/slurm/, see its README), with a transport that replays those captures."""

from __future__ import annotations

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
from lxr.schedulers.slurm import (
    SQUEUE_FORMAT,
    STATES,
    SlurmDriver,
    compress_indexes,
    exit_status,
    expand_indexes,
    observation,
    parse_config,
    parse_sacct,
    parse_squeue,
    sbatch_options,
)
from lxr.schedulers.transport import CommandResult, Transport

FX = Path(__file__).parent / "fixtures" / "slurm"


def fx(name: str) -> str:
    return (FX / name).read_text()


def by_task(rows):
    return {(r.job_id, r.array_index): r for r in rows}


def obs_of(rows):
    return {(r.job_id, r.array_index): observation(r) for r in rows}


# ---------------------------------------------------------------------------- formats


def test_squeue_format_is_the_one_captured() -> None:
    # the fixtures were captured with exactly this -O string (README/MANIFEST)
    assert f"-O '{SQUEUE_FORMAT}'" in (FX / "MANIFEST.tsv").read_text()


def test_array_syntax_round_trip() -> None:
    assert compress_indexes([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert compress_indexes([3]) == "3"
    assert compress_indexes([9, 3, 3, 4]) == "3-4,9"
    assert expand_indexes("4-9%4") == [4, 5, 6, 7, 8, 9]
    assert expand_indexes("[1,3,5-7%2]") == [1, 3, 5, 6, 7]
    assert expand_indexes("0-10:5") == [0, 5, 10]
    for idx in ([0], [1, 2, 3], [0, 2, 4, 5, 6, 100, 101, 9999]):
        assert expand_indexes(compress_indexes(idx)) == idx


def test_exit_status_decoding() -> None:
    # squeue exit_code is a wait status; sacct ExitCode is code:signal (README table)
    assert exit_status("768", raw_wait_status=True) == (3, 0)
    assert exit_status("10752", raw_wait_status=True) == (42, 0)
    assert exit_status("9", raw_wait_status=True) == (None, 9)
    assert exit_status("0", raw_wait_status=True) == (0, 0)
    assert exit_status("3:0", raw_wait_status=False) == (3, 0)
    assert exit_status("0:9", raw_wait_status=False) == (None, 9)
    assert exit_status("0:0", raw_wait_status=False) == (0, 0)


def test_config_max_array_size() -> None:
    assert parse_config(fx("scontrol_config_maxarraysize.txt"))["MaxArraySize"] == "10001"


def test_state_table_covers_every_state_seen() -> None:
    seen = {r.state for r in parse_squeue(fx("squeue_all_mine.txt"))}
    seen |= {r.state for r in parse_sacct(fx("sacct_by_name.txt"))}
    assert seen <= set(STATES), seen - set(STATES)
    assert STATES["PREEMPTED"] == (TaskPhase.FAILED, FailureReason.PREEMPTED)
    assert STATES["OUT_OF_MEMORY"] == (TaskPhase.FAILED, FailureReason.OUT_OF_MEMORY)
    assert STATES["NODE_FAIL"] == (TaskPhase.FAILED, FailureReason.NODE_FAIL)
    assert STATES["BOOT_FAIL"] == (TaskPhase.FAILED, FailureReason.BOOT_FAIL)
    assert STATES["DEADLINE"] == (TaskPhase.FAILED, FailureReason.TIMEOUT)
    assert STATES["REQUEUED"][0] is TaskPhase.QUEUED
    assert STATES["COMPLETING"][0] is TaskPhase.RUNNING


# ---------------------------------------------------------------------------- squeue


def test_squeue_mixed_array_after_the_end() -> None:
    rows = parse_squeue(fx("squeue_array_mixed_done.txt"))
    obs = obs_of(rows)
    assert sorted(i for _, i in obs) == list(range(10))
    assert {j for j, _ in obs} == {"31"}  # keyed by the array id, not the task's JobID
    for i in (0, 1, 2, 4, 6, 8, 9):
        assert obs[("31", i)].phase is TaskPhase.SUCCEEDED
        assert obs[("31", i)].exit_code == 0
    assert (obs[("31", 3)].phase, obs[("31", 3)].reason, obs[("31", 3)].exit_code) == (
        TaskPhase.FAILED,
        FailureReason.ERROR,
        3,
    )
    assert obs[("31", 5)].exit_code == 42
    killed = obs[("31", 7)]  # kill -9 $$: FAILED/JobLaunchFailure, wait status 9
    assert (killed.phase, killed.reason, killed.exit_code) == (
        TaskPhase.FAILED,
        FailureReason.ERROR,
        137,
    )
    assert "signal 9" in (killed.message or "")
    # times are the cluster's local time (UTC there): 05:20:56 / 05:21:02
    assert obs[("31", 0)].start_time == 1795238456.0
    assert obs[("31", 0)].end_time == 1795238462.0


def test_squeue_pending_and_running() -> None:
    obs = obs_of(parse_squeue(fx("squeue_array_pending_running.txt")))
    assert {i for (_, i), o in obs.items() if o.phase is TaskPhase.RUNNING} == {0, 1, 2, 3}
    queued = {i for (_, i), o in obs.items() if o.phase is TaskPhase.QUEUED}
    assert queued == {4, 5, 6, 7, 8, 9}
    assert obs[("31", 4)].message == "JobArrayTaskLimit"


def test_squeue_unexpanded_range_is_expanded() -> None:
    rows = parse_squeue(fx("squeue_array_submitted_unexpanded.txt"))
    assert sorted(r.array_index for r in rows) == list(range(10))
    assert by_task(rows)[("31", 9)].state == "PENDING"


def test_squeue_preemption_with_and_without_requeue() -> None:
    obs = obs_of(parse_squeue(fx("squeue_preempted.txt")))
    # --requeue (Scheduler mode): PENDING/BeginTime, RestartCnt 1 -> Queued with restarts
    for i in (0, 1):
        o = obs[("47", i)]
        assert (o.phase, o.restarts, o.message) == (TaskPhase.QUEUED, 1, "BeginTime")
    # --no-requeue (lxr's default): PREEMPTED, a disruption
    for i in (0, 1):
        o = obs[("49", i)]
        assert (o.phase, o.reason, o.exit_code) == (
            TaskPhase.FAILED,
            FailureReason.PREEMPTED,
            None,
        )
    assert obs[("51", None)].phase is TaskPhase.RUNNING  # the plain urgent job
    rerun = obs_of(parse_squeue(fx("squeue_requeued_rerunning.txt")))
    assert all(o.phase is TaskPhase.RUNNING and o.restarts == 1 for o in rerun.values())
    done = obs_of(parse_squeue(fx("squeue_preempt_done.txt")))
    assert done[("47", 0)].phase is TaskPhase.SUCCEEDED and done[("47", 0)].restarts == 1


def test_squeue_timeout_and_memory_kill() -> None:
    (timeout,) = obs_of(parse_squeue(fx("squeue_timeout.txt"))).values()
    assert (timeout.phase, timeout.reason) == (TaskPhase.FAILED, FailureReason.TIMEOUT)
    assert timeout.exit_code is None
    running = next(iter(obs_of(parse_squeue(fx("squeue_timeout_running.txt"))).values()))
    assert running.phase is TaskPhase.RUNNING
    # OverMemoryKill without cgroups looks like kill -9 (README): an Error with 137
    (oom,) = obs_of(parse_squeue(fx("squeue_oom.txt"))).values()
    assert (oom.phase, oom.reason, oom.exit_code) == (TaskPhase.FAILED, FailureReason.ERROR, 137)


def test_squeue_cancelled_and_held() -> None:
    obs = obs_of(parse_squeue(fx("squeue_cancel_running_task.txt")))
    assert obs[("38", 0)].phase is TaskPhase.CANCELLED
    assert obs[("38", 3)].phase is TaskPhase.QUEUED
    whole = obs_of(parse_squeue(fx("squeue_cancel_whole_array.txt")))
    assert all(o.phase is TaskPhase.CANCELLED for o in whole.values()) and len(whole) == 4
    held = obs_of(parse_squeue(fx("squeue_held_array.txt")))
    assert sorted(i for _, i in held) == [1, 3, 5, 6, 7]
    assert all(o.phase is TaskPhase.QUEUED and o.message == "JobHeldUser" for o in held.values())
    # cancelled pending tasks vanish from squeue at once
    after = obs_of(parse_squeue(fx("squeue_held_array_cancelled.txt")))
    assert sorted(i for _, i in after) == [3, 7]


# ---------------------------------------------------------------------------- sacct


def test_sacct_mixed_array() -> None:
    obs = obs_of(parse_sacct(fx("sacct_array_mixed.txt")))
    assert len(obs) == 10
    assert obs[("31", 3)].exit_code == 3 and obs[("31", 3)].reason is FailureReason.ERROR
    assert obs[("31", 5)].exit_code == 42
    assert obs[("31", 7)].exit_code == 137  # 0:9
    assert obs[("31", 9)].phase is TaskPhase.SUCCEEDED
    assert all(o.restarts == 0 for o in obs.values())


def test_sacct_steps_are_skipped_and_plain_jobs_kept() -> None:
    rows = parse_sacct(fx("sacct_steps_mixed_oom_timeout.txt"))
    assert len([r for r in rows if r.array_index is not None]) == 10
    plain = {r.job_id: observation(r) for r in rows if r.array_index is None}
    assert plain["36"].reason is FailureReason.TIMEOUT  # TIMEOUT with ExitCode 0:0: use State
    assert plain["37"].exit_code == 137


def test_sacct_cancelled_by_uid() -> None:
    obs = obs_of(parse_sacct(fx("sacct_cancelled.txt")))
    assert {o.state for o in obs.values()} == {"CANCELLED"}  # "CANCELLED by 1001"
    assert all(o.phase is TaskPhase.CANCELLED for o in obs.values())
    assert obs[("38", 3)].start_time is None  # never started: Start "None"


def test_sacct_requeue_history_counts_restarts() -> None:
    obs = obs_of(parse_sacct(fx("sacct_preempted_requeue.txt")))
    # -D: a PREEMPTED row for the first run, then the rerun that completed
    assert all(o.phase is TaskPhase.SUCCEEDED and o.restarts == 1 for o in obs.values())
    no_d = obs_of(parse_sacct(fx("sacct_preempted_requeue_no_D.txt")))
    assert all(o.restarts == 0 for o in no_d.values())
    norq = obs_of(parse_sacct(fx("sacct_preempted_norequeue.txt")))
    assert {o.reason for o in norq.values()} == {FailureReason.PREEMPTED}


def test_sacct_by_name_finds_lxr_jobs() -> None:
    rows = parse_sacct(fx("sacct_by_name.txt"))
    names = {r.name: r.job_id for r in rows}
    assert names["lxr-preempt-norq"] in ("25", "49")
    obs = obs_of(rows)
    # 24_*: preempted with --requeue, then scancel'ed while pending: 1 restart, Cancelled
    assert obs[("24", 0)].phase is TaskPhase.CANCELLED and obs[("24", 0)].restarts == 1
    assert obs[("25", 1)].reason is FailureReason.PREEMPTED


def test_sacct_collapsed_range_row() -> None:
    # the exact row an earlier capture run printed (README: "sacct may collapse ...")
    line = "15_[2-3%2]|15|lxr-cancel|CANCELLED by 1001|0:0|None|2026-11-21T05:17:40|None|\n"
    obs = obs_of(parse_sacct(line))
    assert set(obs) == {("15", 2), ("15", 3)}
    assert all(o.phase is TaskPhase.CANCELLED for o in obs.values())


# ---------------------------------------------------------------------------- submission


def _job(**kw: object) -> ArrayJob:
    tasks = [
        TaskSpec(array_index=i, argv=["python", "train.py", f"--lr={i}"]) for i in (0, 1, 2, 7)
    ]
    base = dict(
        tag="sweep-0123456789",
        experiment="sweep",
        experiment_uid="uid",
        tasks=tasks,
        resources=Resources(
            cpus=4,
            memory="2Gi",
            gpus=2,
            gpu_type="a100",
            time_limit_seconds=3601,
            partition="batch",
            account="proj",
            qos="high",
            extra={"constraint": "ib", "exclusive": ""},
        ),
        throttle=3,
    )
    base.update(kw)
    return ArrayJob(**base)  # type: ignore[arg-type]


def test_sbatch_options() -> None:
    opts = sbatch_options(_job(), "/home/u/.lxr/staging/jobs/sweep-0123456789")
    assert opts == [
        "--job-name=lxr-sweep-0123456789",
        "--comment=lxr:sweep:sweep-0123456789",
        "--output=/home/u/.lxr/staging/jobs/sweep-0123456789/logs/%a.out",
        "--error=/home/u/.lxr/staging/jobs/sweep-0123456789/logs/%a.err",
        "--open-mode=append",
        "--no-requeue",
        "--cpus-per-task=4",
        "--mem=2048M",
        "--gres=gpu:a100:2",
        "--time=0-01:01:00",  # 3601 s rounds up to 61 min
        "--partition=batch",
        "--account=proj",
        "--qos=high",
        "--constraint=ib",
        "--exclusive",
    ]
    assert "--requeue" in sbatch_options(_job(scheduler_requeue=True), "/x")
    spaced = sbatch_options(_job(resources=Resources()), "/home/a b")
    assert '--output="/home/a b/logs/%a.out"' in spaced


class Replay(Transport):
    """Answers each command with captured output; records what was run."""

    def __init__(self, answers: Mapping[str, CommandResult | str]) -> None:
        super().__init__()
        self.answers = answers
        self.argvs: list[tuple[str, ...]] = []
        self.files: dict[str, bytes] = {}
        self.writes = 0

    async def _run(self, argv: tuple[str, ...], input: bytes | None) -> CommandResult:
        self.argvs.append(argv)
        answer = self.answers.get(argv[0], "")
        if isinstance(answer, CommandResult):
            return answer
        return CommandResult(argv, 0, answer, "", 0.0)

    async def write_files(self, files: Mapping[str, bytes], mode: int = 0o644) -> None:
        self.writes += 1
        self.files.update(files)

    async def read_file(self, path: str) -> bytes:
        raise FileNotFoundError(path)

    def follow(self, path: str):
        raise NotImplementedError


def _driver(answers: Mapping[str, CommandResult | str]) -> tuple[SlurmDriver, Replay]:
    t = Replay(
        {
            "sh": "/home/lxr +0000\n",
            "scontrol": fx("scontrol_config_maxarraysize.txt"),
            **answers,
        }
    )
    d = SlurmDriver("dev", t, ".lxr/staging", ClusterSpec(scheduler="slurm"))
    anyio.run(d.prepare)
    return d, t


def test_prepare_resolves_staging_and_reads_max_array_size() -> None:
    d, t = _driver({})
    assert d.staging_dir == "/home/lxr/.lxr/staging"
    assert d.max_array_size == 10001
    assert d.array_indexes([3, 7, 10000]) == [3, 7, 10000]
    assert d.array_indexes([3, 10001]) == [0, 1]  # an index >= MaxArraySize: dense
    anyio.run(d.prepare)  # cached: no second scontrol
    assert [a[0] for a in t.argvs] == ["sh", "scontrol"]


def test_submit_is_one_upload_and_one_sbatch() -> None:
    d, t = _driver({"sbatch": fx("sbatch_parsable_array.txt")})
    job_id = anyio.run(d.submit, _job())
    assert job_id == "31"
    assert t.writes == 1
    argv = t.argvs[-1]
    jd = "/home/lxr/.lxr/staging/jobs/sweep-0123456789"
    assert argv == ("sbatch", "--parsable", "--array=0-2,7%3", f"{jd}/job.sbatch")
    script = t.files[f"{jd}/job.sbatch"].decode()
    assert script.startswith("#!/bin/bash\n#SBATCH --job-name=lxr-sweep-0123456789\n")
    assert f'exec bash {jd}/run-task.sh {jd} "$SLURM_ARRAY_TASK_ID"' in script
    assert f"{jd}/logs/.keep" in t.files and f"{jd}/tasks.tsv" in t.files


@pytest.mark.parametrize(
    ("name", "exc"),
    [
        ("sbatch_invalid_partition", SubmitRejected),
        ("sbatch_invalid_gres", SubmitRejected),
        ("sbatch_invalid_array", SubmitRejected),
    ],
)
def test_sbatch_rejections(name: str, exc: type[Exception]) -> None:
    err = fx(f"{name}.stderr.txt")
    d, _ = _driver({"sbatch": CommandResult(("sbatch",), 1, "", err, 0.0)})
    with pytest.raises(exc):
        anyio.run(d.submit, _job())


def test_sbatch_transient_errors_are_not_rejections() -> None:
    err = "sbatch: error: Batch job submission failed: Unable to contact slurm controller\n"
    d, _ = _driver({"sbatch": CommandResult(("sbatch",), 1, "", err, 0.0)})
    with pytest.raises(SchedulerError) as info:
        anyio.run(d.submit, _job())
    assert not isinstance(info.value, SubmitRejected)


# ---------------------------------------------------------------------------- observe / cancel


def test_observe_squeue_then_sacct_then_exit_files() -> None:
    exit_files = (
        "/home/lxr/.lxr/staging/byid/77/exit/4:3\n/home/lxr/.lxr/staging/byid/77/exit/5:0\n"
    )
    d, t = _driver(
        {
            "squeue": fx("squeue_all_mine.txt"),
            "sacct": fx("sacct_array_mixed.txt"),
            "grep": exit_files,
        }
    )
    t.argvs.clear()
    query = ObserveQuery(
        jobs={
            "47": frozenset({0, 1}),  # in squeue
            "31": frozenset({3}),  # in squeue too (MinJobAge)
            "4242": frozenset({0}),  # in no output at all
            "77": frozenset({4, 5}),  # only the exit files know
        },
        intents=frozenset({"mixed", "gone-tag"}),
    )
    snap = anyio.run(d.observe, query)
    cmds = [a[0] for a in t.argvs]
    assert cmds == ["squeue", "sacct", "sacct", "grep"]
    assert snap.commands == 4
    assert t.argvs[0][:6] == ("squeue", "--me", "-h", "-t", "all", "-O")
    assert "-j" in t.argvs[1] and t.argvs[1][-1] == "4242,77"
    assert t.argvs[2][-1] == "--name=lxr-gone-tag"  # "mixed" was found in squeue
    assert snap.tags["mixed"] in ("8", "31")
    assert snap.task("47", 0).restarts == 1
    assert snap.task("31", 3).exit_code == 3
    assert snap.task("4242", 0) is None
    assert (snap.task("77", 4).phase, snap.task("77", 4).exit_code) == (TaskPhase.FAILED, 3)
    assert snap.task("77", 5).phase is TaskPhase.SUCCEEDED
    assert ("28", 0) not in snap.tasks  # plain jobs are not lxr's tasks


def test_observe_without_accounting_skips_sacct() -> None:
    d, t = _driver({"squeue": "", "sacct": "Slurm accounting storage is disabled\n"})
    t.argvs.clear()
    anyio.run(d.observe, ObserveQuery(jobs={"5": frozenset({1})}))
    anyio.run(d.observe, ObserveQuery(jobs={"5": frozenset({1})}))
    assert [a[0] for a in t.argvs] == ["squeue", "sacct", "grep", "squeue", "grep"]


def test_observe_only_squeue_when_everything_is_queued() -> None:
    d, t = _driver({"squeue": fx("squeue_held_array.txt").replace("lxr-fx-held", "lxr-x")})
    t.argvs.clear()
    snap = anyio.run(d.observe, ObserveQuery(jobs={"67": frozenset({1, 3, 5, 6, 7})}))
    assert [a[0] for a in t.argvs] == ["squeue"]
    assert len(snap.tasks) == 5


def test_cancel_is_one_scancel() -> None:
    d, t = _driver({"scancel": fx("scancel_task_range.txt")})
    t.argvs.clear()
    anyio.run(d.cancel, [("67", 1), ("67", 5), ("67", 6), ("70", None), ("70", 2), ("71", 4)])
    assert t.argvs == [("scancel", "70", "67_[1,5-6]", "71_4")]


SLURMDBD_DOWN = (
    "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection "
    "to host:localhost:1: Connection refused\n"
    "sacct: error: Sending PersistInit msg: Connection refused\n"
    "sacct: error: Problem talking to the database: Connection refused\n"
)  # what sacct printed on the dev cluster with nothing listening on its accounting port


def test_observe_degrades_to_squeue_and_exit_files_when_sacct_fails() -> None:
    exit_files = (
        "/home/lxr/.lxr/staging/byid/77/exit/4:3\n/home/lxr/.lxr/staging/byid/77/exit/5:0\n"
    )
    down = CommandResult(("sacct",), 1, "", SLURMDBD_DOWN, 0.0)
    d, t = _driver({"squeue": fx("squeue_all_mine.txt"), "sacct": down, "grep": exit_files})
    t.argvs.clear()
    snap = anyio.run(d.observe, ObserveQuery(jobs={"47": frozenset({0}), "77": frozenset({4, 5})}))
    assert [a[0] for a in t.argvs] == ["squeue", "sacct", "grep"]
    assert snap.degraded is not None and "Problem talking to the database" in snap.degraded
    assert snap.task("47", 0).restarts == 1  # from squeue
    assert (snap.task("77", 4).phase, snap.task("77", 4).exit_code) == (TaskPhase.FAILED, 3)
    assert snap.task("77", 5).phase is TaskPhase.SUCCEEDED
    assert d.accounting, "a failing sacct is not 'no accounting': it is asked again next cycle"
    # an unconfirmed submission cannot be looked up without accounting: the cycle fails
    # rather than submit the intent again while its job may exist
    with pytest.raises(SchedulerError):
        anyio.run(d.observe, ObserveQuery(jobs={"77": frozenset({4})}, intents=frozenset({"t"})))
    ok, _ = _driver({"squeue": fx("squeue_all_mine.txt"), "sacct": "", "grep": exit_files})
    assert anyio.run(ok.observe, ObserveQuery(jobs={"77": frozenset({4})})).degraded is None


def _big_queue(n: int, *, every_kind: bool) -> list[str]:
    """``n`` lines as squeue printed them: the captured lines of array tasks (running,
    finished, failed), each again under more array indexes and job ids, so the output is
    long enough to be read in pieces; ``every_kind``: also a pending range (printed again
    and again here, so its tasks are on more than one line), plain, other users' and
    heterogeneous jobs."""
    captured = (fx("squeue_all_mine.txt") + fx("squeue_array_pending_running.txt")).splitlines()
    if every_kind:
        captured += fx("squeue_array_submitted_unexpanded.txt").splitlines()
        captured += fx("hetjob-running.txt").splitlines()
    else:
        captured = [line for line in captured if line.split("|")[2].isdigit()]
    out = []
    for i in range(n):
        fields = captured[i % len(captured)].split("|", 4)
        if fields[2].isdigit():  # one array task: give it index i and a job id of its own
            fields[0], fields[2], fields[3] = f"{fields[1]}_{i}", str(i), str(90_500 + i)
        out.append("|".join(fields))
    return out


@pytest.mark.parametrize("every_kind", [True, False])
def test_observe_reads_again_only_the_piece_with_a_changed_line(
    monkeypatch: pytest.MonkeyPatch, every_kind: bool
) -> None:
    from lxr.schedulers.slurm import driver as module

    reads: list[str] = []
    read_piece = module._read_piece

    def counting(text, *args):
        reads.append(text)
        return read_piece(text, *args)

    monkeypatch.setattr(module, "_read_piece", counting)
    lines = _big_queue(12_000, every_kind=every_kind)
    text = "\n".join(lines) + "\n"
    assert "".join(module._pieces(text)) == text
    assert len(list(module._pieces(text))) > 20

    def observed(d: SlurmDriver, squeue: str):
        d.transport.answers = {"squeue": squeue, "grep": ""}  # type: ignore[attr-defined]
        return anyio.run(d.observe_tasks, ObserveQuery())

    def fresh(squeue: str):
        return observed(_driver({})[0], squeue)

    d, _ = _driver({})
    first = observed(d, text)
    assert len(first.tasks) > 1000 and first.tasks == fresh(text).tasks
    reads.clear()
    again = observed(d, text)
    assert reads == [] and again.tasks == first.tasks and again.tags == first.tags
    # no task on two lines: the tasks of the pieces are kept whole, to be patched next cycle
    assert (d._tasks is not None) is not every_kind
    # one running task fails with a longer line: its piece alone is read again, and the
    # pieces after it, shifted, are still recognised
    i = next(i for i, ln in enumerate(lines) if "|RUNNING|None|" in ln and i > 3000)
    lines[i] = lines[i].replace("|RUNNING|None|0|0|", "|FAILED|NonZeroExitCode|0|768|")
    changed = "\n".join(lines) + "\n"
    reads.clear()
    after = observed(d, changed)
    assert len(reads) == 1 and lines[i] in reads[0]
    assert after.tasks == fresh(changed).tasks and after.tags == first.tags
    key = (lines[i].split("|")[1], i)
    assert after.tasks[key].phase is TaskPhase.FAILED and after.tasks[key].exit_code == 3
    assert first.tasks[key].phase is TaskPhase.RUNNING
    assert {k: v for k, v in after.tasks.items() if k != key} == {
        k: v for k, v in first.tasks.items() if k != key
    }
    # a line gone (the task left the queue) and another clock: read as a fresh driver does
    del lines[i]
    gone = "\n".join(lines) + "\n"
    assert observed(d, gone).tasks == fresh(gone).tasks
    d.utc_offset = 3600.0
    reads.clear()
    shifted = observed(d, gone)
    assert len(reads) == len(list(module._pieces(gone)))
    assert shifted.tasks != fresh(gone).tasks  # the times moved with the clock
