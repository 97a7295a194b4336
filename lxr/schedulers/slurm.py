"""Slurm: one ``sbatch --array`` per submission, one ``squeue`` per cycle, ``sacct`` only for
what left the queue, exit-code files when there is no accounting.

Job arrays use the work units' own indexes as array indexes when they fit under
``MaxArraySize`` (``--array=3,7,12`` is legal), so ``31_7`` is work unit 7. Jobs are named
``lxr-<tag>`` (the tag is recorded before ``sbatch`` runs), which is how a submission whose job
id was never recorded (the controller died right after ``sbatch``) is found and adopted.

By default lxr owns retries and submits with ``--no-requeue``: a preempted task ends
``PREEMPTED`` and the planner resubmits it. With ``requeue: Scheduler`` Slurm requeues it: the
task shows ``PENDING`` (reason ``BeginTime``) with ``RestartCnt`` >= 1 and is reported
``Queued`` with its restart count, never as finished.

Facts this module relies on, observed on Slurm 22.05 (tests/fixtures/slurm/README.md):
squeue's ``exit_code`` is the raw wait status, sacct's ``ExitCode`` is ``code:signal``;
``sacct --json`` exit codes are wrong in 22.05 (so text, ``-P``); sacct ``State`` may read
``CANCELLED by 1001``; sacct may collapse never-started tasks into ``38_[2-3%2]``.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import anyio

from lxr.api.resources import ClusterSpec, FailureReason, Resources, parse_memory_mib
from lxr.schedulers.base import (
    ArrayJob,
    Driver,
    ObserveQuery,
    SchedulerError,
    Snapshot,
    SubmitRejected,
    TaskObservation,
    TaskPhase,
)
from lxr.schedulers.common import (
    absolute_path,
    compress_ranges,
    expand_ranges,
    local_timestamp,
    parse_utc_offset,
)
from lxr.schedulers.jobscript import job_files, render_template
from lxr.schedulers.transport import CommandResult, Transport

__all__ = [
    "JOB_NAME_PREFIX",
    "SACCT_FIELDS",
    "SQUEUE_FIELDS",
    "SQUEUE_FORMAT",
    "STATES",
    "SlurmDriver",
    "SlurmRow",
    "compress_indexes",
    "exit_status",
    "expand_indexes",
    "observation",
    "parse_config",
    "parse_sacct",
    "parse_squeue",
    "sbatch_options",
]

#: every lxr job is named JOB_NAME_PREFIX + its submission tag
JOB_NAME_PREFIX = "lxr-"

#: squeue ``-O`` fields. Every field but the last has the suffix ``|`` and no width, so nothing
#: is padded or cut; ``Comment`` is last so a ``|`` inside it cannot shift the other columns.
SQUEUE_FIELDS = (
    "JobArrayID",
    "ArrayJobID",
    "ArrayTaskID",
    "JobID",
    "State",
    "Reason",
    "RestartCnt",
    "exit_code",
    "SubmitTime",
    "EligibleTime",
    "StartTime",
    "EndTime",
    "TimeLimit",
    "Partition",
    "Name",
    "Comment",
)
SQUEUE_FORMAT = ",".join(f"{f}:|" for f in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}:"

#: sacct ``-o`` fields (all exist in 22.05; there is no ``Restarts``: count ``-D`` rows)
SACCT_FIELDS = ("JobID", "JobIDRaw", "JobName", "State", "ExitCode", "Start", "End", "Reason")

#: how far back ``sacct --name`` looks for a submission that was never confirmed
INTENT_LOOKBACK = "now-14days"

_Q, _R = TaskPhase.QUEUED, TaskPhase.RUNNING
_S, _F, _C = TaskPhase.SUCCEEDED, TaskPhase.FAILED, TaskPhase.CANCELLED

#: Slurm job state (first word) -> lxr phase and, for failures, the reason. The planner decides
#: what a reason costs (disruptions are free); whether a CANCELLED task was lxr's doing is
#: the planner's call too (it knows what lxr cancelled).
STATES: dict[str, tuple[TaskPhase, FailureReason | None]] = {
    "PENDING": (_Q, None),
    "CONFIGURING": (_Q, None),  # nodes being booted for it: not started yet
    "REQUEUED": (_Q, None),
    "REQUEUE_HOLD": (_Q, None),
    "REQUEUE_FED": (_Q, None),
    "RESV_DEL_HOLD": (_Q, None),
    "RUNNING": (_R, None),
    "COMPLETING": (_R, None),
    "SIGNALING": (_R, None),
    "STAGE_OUT": (_R, None),
    "RESIZING": (_R, None),
    "SUSPENDED": (_R, None),  # holds its allocation; resumes where it was
    "STOPPED": (_R, None),
    "COMPLETED": (_S, None),
    "FAILED": (_F, FailureReason.ERROR),
    "SPECIAL_EXIT": (_F, FailureReason.ERROR),
    "OUT_OF_MEMORY": (_F, FailureReason.OUT_OF_MEMORY),
    "TIMEOUT": (_F, FailureReason.TIMEOUT),
    "DEADLINE": (_F, FailureReason.TIMEOUT),
    "PREEMPTED": (_F, FailureReason.PREEMPTED),
    "NODE_FAIL": (_F, FailureReason.NODE_FAIL),
    "BOOT_FAIL": (_F, FailureReason.BOOT_FAIL),
    "CANCELLED": (_C, None),
    "REVOKED": (_C, None),  # federation: the job runs on a sibling cluster instead
}

#: sbatch errors that may pass on their own: the cluster is retried, the job is not failed
_TRANSIENT = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Connection refused|"
    r"temporarily unable|Resource temporarily unavailable|Zero Bytes were transmitted|"
    r"Slurm backup controller in standby|MaxSubmitJob|Communication connection failure|"
    r"Transport endpoint|slurm_load_jobs error|Insane message length",
    re.IGNORECASE,
)
#: scancel complaints about jobs that are already gone: nothing left to cancel
_GONE = re.compile(r"already completing or completed|Invalid job id|does not exist", re.I)
_RANGE_JOBID = re.compile(r"^(\d+)_\[([^\]]*)\]$")
_NOT_A_TIME = {"", "N/A", "NONE", "None", "Unknown", "(null)"}


# ---------------------------------------------------------------------------- pure parsing


def compress_indexes(indexes: Iterable[int]) -> str:
    """Slurm's array syntax for ``indexes``: ``[0,1,2,5,7,8]`` -> ``0-2,5,7-8``."""
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in compress_ranges(indexes))


def expand_indexes(spec: str) -> list[int]:
    """The indexes of an array expression: ``4-9%4`` / ``1,3,5-7`` / ``0-10:2`` -> ints."""
    return expand_ranges(spec)


def exit_status(value: str, *, raw_wait_status: bool) -> tuple[int | None, int]:
    """``(exit code, signal)`` of a task. squeue's ``exit_code`` is a wait status (``768`` is
    exit 3, ``9`` is SIGKILL); sacct/scontrol ``ExitCode`` reads ``3:0`` / ``0:9``."""
    value = value.strip()
    if raw_wait_status:
        if not value.lstrip("-").isdigit():
            return None, 0
        status = int(value)
        if status & 0x7F:
            return None, status & 0x7F
        return (status >> 8) & 0xFF, 0
    code, _, sig = value.partition(":")
    try:
        signal = int(sig or 0)
        return (None if signal else int(code)), signal
    except ValueError:
        return None, 0


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config`` as a dict (``MaxArraySize`` -> ``10001``)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


# Cached: a squeue of thousands of tasks repeats a handful of times (tasks of an array share
# them), and strptime was most of the cost of parsing it.
@lru_cache(maxsize=4096)
def _parse_time(value: str, utc_offset: float) -> float | None:
    value = value.strip()
    if value in _NOT_A_TIME:
        return None
    if value.isdigit():  # SLURM_TIME_FORMAT=%s
        return float(value)
    # Slurm prints the cluster's local time: convert with the cluster's UTC offset
    return local_timestamp(value, "%Y-%m-%dT%H:%M:%S", utc_offset)


@dataclass(frozen=True)
class SlurmRow:
    """One array task as squeue or sacct printed it."""

    job_id: str  # the array's id (what sbatch returned)
    array_index: int | None  # None for a plain (non-array) job, which lxr never submits
    state: str  # first word of Slurm's state: CANCELLED, not "CANCELLED by 1001"
    reason: str
    restarts: int
    exit_code: int | None
    signal: int
    name: str
    start_time: float | None = None
    end_time: float | None = None
    source: str = "squeue"


def parse_squeue(text: str, utc_offset: float = 0.0) -> list[SlurmRow]:
    """Rows of ``squeue -h -r -O SQUEUE_FORMAT``; pending ranges (``4-9%4``) are expanded.
    A plain job (ArrayTaskID ``N/A``) gets ``array_index`` None."""
    rows: list[SlurmRow] = []
    for line in text.splitlines():
        fields = line.split("|", len(SQUEUE_FIELDS) - 1)
        if len(fields) != len(SQUEUE_FIELDS):
            continue
        f = dict(zip(SQUEUE_FIELDS, fields, strict=True))
        task = f["ArrayTaskID"].strip()
        plain = not task or task == "N/A"
        code, signal = exit_status(f["exit_code"], raw_wait_status=True)
        restarts = f["RestartCnt"].strip()
        # one row per task of an unexpanded pending range (``4-9%4``), all alike but the index
        row = SlurmRow(
            job_id=f["JobID" if plain else "ArrayJobID"].strip(),
            array_index=None,
            state=f["State"].strip().split(" ", 1)[0],
            reason=f["Reason"].strip(),
            restarts=int(restarts) if restarts.isdigit() else 0,
            exit_code=code,
            signal=signal,
            name=f["Name"].strip(),
            start_time=_parse_time(f["StartTime"], utc_offset),
            end_time=_parse_time(f["EndTime"], utc_offset),
        )
        if plain:
            rows.append(row)
        else:
            rows.extend(replace(row, array_index=idx) for idx in expand_indexes(task))
    return rows


def parse_sacct(text: str, utc_offset: float = 0.0) -> list[SlurmRow]:
    """Rows of ``sacct -X -D -P -n -o SACCT_FIELDS``: one per array task and *run*, oldest
    first (``-D``), so the last row of a task is its current run and ``restarts`` counts the
    rows before it. Steps (``31_3.batch``) are skipped; a plain job gets ``array_index``
    None."""
    runs: dict[tuple[str, int | None], list[SlurmRow]] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < len(SACCT_FIELDS):
            continue
        f = dict(zip(SACCT_FIELDS, fields, strict=False))
        jobid = f["JobID"].strip()
        if "." in jobid or not jobid:
            continue
        ranged = _RANGE_JOBID.match(jobid)
        indexes: list[int | None]
        if "_" not in jobid:
            array_id, indexes = jobid, [None]
        elif ranged:
            array_id, indexes = ranged.group(1), expand_indexes(ranged.group(2))
        else:
            array_id, _, idx = jobid.partition("_")
            if not idx.isdigit():
                continue
            indexes = [int(idx)]
        code, signal = exit_status(f["ExitCode"], raw_wait_status=False)
        for idx in indexes:
            runs.setdefault((array_id, idx), []).append(
                SlurmRow(
                    job_id=array_id,
                    array_index=idx,
                    state=f["State"].strip().split(" ", 1)[0],
                    reason=f["Reason"].strip(),
                    restarts=0,
                    exit_code=code,
                    signal=signal,
                    name=f["JobName"].strip(),
                    start_time=_parse_time(f["Start"], utc_offset),
                    end_time=_parse_time(f["End"], utc_offset),
                    source="sacct",
                )
            )
    out = []
    for rows in runs.values():
        out.append(replace(rows[-1], restarts=len(rows) - 1))  # earlier runs = restarts
    return out


def observation(row: SlurmRow) -> TaskObservation:
    """What lxr makes of one row, by :data:`STATES`."""
    phase, reason = STATES.get(row.state, (TaskPhase.QUEUED, None))
    message: str | None = None
    exit_code: int | None = None
    if row.state not in STATES:
        message = f"unknown Slurm state {row.state}; treated as queued"
    if phase in (TaskPhase.QUEUED, TaskPhase.RUNNING):
        if row.reason and row.reason != "None":
            message = row.reason
        return TaskObservation(
            row.job_id,
            row.array_index or 0,  # a plain job reads as index 0
            phase,
            row.state,
            exit_code=None,
            message=message,
            start_time=row.start_time if phase is TaskPhase.RUNNING else None,
            restarts=row.restarts,
        )
    if phase is TaskPhase.SUCCEEDED:
        exit_code = 0
    elif reason in (FailureReason.ERROR, FailureReason.OUT_OF_MEMORY):
        # a signal is reported the way a shell does (128 + n), and said in the message
        exit_code = 128 + row.signal if row.signal else row.exit_code
        if row.signal:
            message = f"killed by signal {row.signal}"
            if row.signal == 9 and reason is FailureReason.ERROR:
                message += " (also how Slurm ends a job over its --mem without cgroups)"
        elif row.reason and row.reason not in ("None", "NonZeroExitCode"):
            message = row.reason
    elif row.signal:
        message = f"{row.state} (signal {row.signal})"
    return TaskObservation(
        row.job_id,
        row.array_index,
        phase,
        row.state,
        reason,
        exit_code,
        message,
        row.start_time,
        row.end_time,
        row.restarts,
    )


def _directive_value(value: str) -> str:
    if "\n" in value or '"' in value:
        raise SubmitRejected(f"cannot put {value!r} in an #SBATCH line")
    return f'"{value}"' if any(c.isspace() for c in value) or "'" in value else value


def _time_limit(seconds: int) -> str:
    minutes = -(-seconds // 60)  # Slurm counts whole minutes: round up, never cut short
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def sbatch_options(job: ArrayJob, job_dir: str) -> list[str]:
    """The ``#SBATCH`` lines of ``job`` (everything but ``--array``, which goes on the command
    line: a long index list is safer there than in a script line)."""
    res: Resources = job.resources
    opts = [
        f"--job-name={JOB_NAME_PREFIX}{job.tag}",
        f"--comment=lxr:{job.experiment}:{job.tag}",
        f"--output={_directive_value(f'{job_dir}/logs/%a.out')}",
        f"--error={_directive_value(f'{job_dir}/logs/%a.err')}",
        # a requeued run appends instead of wiping the first run's output
        "--open-mode=append",
        "--requeue" if job.scheduler_requeue else "--no-requeue",
    ]
    if res.cpus is not None:
        opts.append(f"--cpus-per-task={res.cpus}")
    if res.memory is not None:
        opts.append(f"--mem={parse_memory_mib(res.memory)}M")
    if res.gpus:
        gres = f"gpu:{res.gpu_type}:{res.gpus}" if res.gpu_type else f"gpu:{res.gpus}"
        opts.append(f"--gres={gres}")
    if res.time_limit_seconds is not None:
        opts.append(f"--time={_time_limit(res.time_limit_seconds)}")
    for key in ("partition", "account", "qos"):
        value = getattr(res, key)
        if value:
            opts.append(f"--{key}={_directive_value(value)}")
    for key, value in sorted(res.extra.items()):
        key = key.lstrip("-")
        opts.append(f"--{key}" if value == "" else f"--{key}={_directive_value(value)}")
    return opts


# ---------------------------------------------------------------------------- the driver


class SlurmDriver(Driver):
    """Runs tasks as Slurm job arrays, on the login node or over SSH."""

    scheduler = "slurm"

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        spec: ClusterSpec | None = None,
    ) -> None:
        super().__init__(cluster, transport, staging_dir)
        self.spec = spec
        self.config: dict[str, str] | None = None
        self.accounting = True
        self.utc_offset = 0.0  # of the cluster's clock: Slurm prints local times
        self._max_array = 1001  # Slurm's default MaxArraySize, until the config is read

    # ------------------------------------------------------------------ setup

    async def prepare(self) -> None:
        """Make the staging dir absolute (batch scripts run wherever Slurm starts them) and read
        ``MaxArraySize`` and the accounting type, once."""
        if self.config is not None:
            return
        results: dict[str, CommandResult] = {}

        async def run(key: str, argv: list[str]) -> None:
            results[key] = await self.transport.run(argv, rate_limited=False)

        # both at once, on two channels of the one connection: prepare is on the cold path
        async with anyio.create_task_group() as tg:
            # one command for two facts: the remote home (for a relative stagingDir) and the
            # cluster's UTC offset (Slurm prints local times)
            tg.start_soon(run, "env", ["sh", "-c", 'printf "%s %s\\n" "$HOME" "$(date +%z)"'])
            tg.start_soon(run, "config", ["scontrol", "show", "config"])
        res = results["env"]
        if not res.ok:
            raise SchedulerError(f"cannot read the remote home: {res.describe()}")
        home, _, offset = res.stdout.strip().rpartition(" ")
        self.utc_offset = parse_utc_offset(offset)
        self.staging_dir = absolute_path(self.staging_dir, home)
        res = results["config"]
        if not res.ok:
            raise SchedulerError(f"cannot read the Slurm configuration: {res.describe()}")
        config = parse_config(res.stdout)
        max_array = config.get("MaxArraySize", "")
        if max_array.isdigit() and int(max_array) > 0:
            self._max_array = int(max_array)
        self.accounting = config.get("AccountingStorageType", "") != "accounting_storage/none"
        self.config = config

    @property
    def max_array_size(self) -> int:
        """Tasks per array: Slurm's ``MaxArraySize`` (indexes run 0 .. MaxArraySize-1)."""
        return self._max_array

    def array_indexes(self, work_unit_indexes: Sequence[int]) -> list[int]:
        """The work units' own indexes when every one is below ``MaxArraySize`` (so ``31_7``
        is work unit 7), else dense 0..N-1."""
        if all(0 <= i < self._max_array for i in work_unit_indexes) and len(
            set(work_unit_indexes)
        ) == len(work_unit_indexes):
            return list(work_unit_indexes)
        return list(range(len(work_unit_indexes)))

    def byid_dir(self) -> str:
        """Where each array's job dir is linked under its Slurm job id."""
        return f"{self.staging_dir}/byid"

    # ------------------------------------------------------------------ submit

    def render(self, job: ArrayJob) -> tuple[dict[str, bytes], list[str]]:
        """The files to upload and the ``sbatch`` argv for ``job``."""
        job_dir = self.job_dir(job.tag)
        script = render_template(
            "slurm.sbatch.j2",
            options=sbatch_options(job, job_dir),
            tag=job.tag,
            experiment=job.experiment,
            ntasks=len(job.tasks),
            job_dir=shlex.quote(job_dir),
            byid_dir=shlex.quote(self.byid_dir()),
        )
        files = job_files(
            job,
            job_dir,
            {
                f"{job_dir}/job.sbatch": script.encode(),
                # Slurm does not create the directory of --output: a missing one fails the job
                f"{job_dir}/logs/.keep": b"",
            },
        )
        array = compress_indexes(t.array_index for t in job.tasks)
        if job.throttle:
            array += f"%{job.throttle}"
        argv = ["sbatch", "--parsable", f"--array={array}", f"{job_dir}/job.sbatch"]
        return files, argv

    async def submit(self, job: ArrayJob) -> str:
        files, argv = self.render(job)
        # one round trip over SSH: the files travel with the sbatch command
        res = await self.transport.run_with_files(files, argv, timeout=120.0)
        return _job_id(res)

    # ------------------------------------------------------------------ observe

    async def observe(self, query: ObserveQuery) -> Snapshot:
        calls = self.transport.calls
        now = time.time()
        # no -r: a pending array stays one line (``31_[0-999]``, expanded here) instead of one
        # per task; tasks that started (or were requeued) are separate lines either way
        res = await self.transport.run(["squeue", "--me", "-h", "-t", "all", "-O", SQUEUE_FORMAT])
        if not res.ok:
            raise SchedulerError(res.describe())
        tasks: dict[tuple[str, int], TaskObservation] = {}
        tags: dict[str, str] = {}
        for row in parse_squeue(res.stdout, self.utc_offset):
            if not row.name.startswith(JOB_NAME_PREFIX) or row.array_index is None:
                continue
            tags[row.name[len(JOB_NAME_PREFIX) :]] = row.job_id
            tasks[(row.job_id, row.array_index)] = observation(row)

        missing = _missing(query.jobs, tasks)
        lost_tags = sorted(t for t in query.intents if t not in tags)
        if self.accounting and (missing or lost_tags):
            for rows in await self._sacct(sorted(missing), lost_tags):
                for row in rows:
                    if row.array_index is None:
                        continue
                    key = (row.job_id, row.array_index)
                    if key not in tasks:
                        tasks[key] = observation(row)
                    if row.name.startswith(JOB_NAME_PREFIX):
                        tags.setdefault(row.name[len(JOB_NAME_PREFIX) :], row.job_id)
            missing = _missing(query.jobs, tasks)
        if missing:
            tasks.update(await self._exit_files(missing))
        return Snapshot(self.cluster, now, tasks, tags, self.transport.calls - calls)

    async def _sacct(self, job_ids: list[str], tags: list[str]) -> list[list[SlurmRow]]:
        base = ["sacct", "-X", "-D", "-P", "-n", "-o", ",".join(SACCT_FIELDS)]
        queries = []
        if job_ids:
            queries.append([*base, "-j", ",".join(job_ids)])
        if tags:
            names = ",".join(JOB_NAME_PREFIX + t for t in tags)
            queries.append([*base, "-S", INTENT_LOOKBACK, f"--name={names}"])
        out = []
        for argv in queries:
            res = await self.transport.run(argv)
            if "accounting storage is disabled" in (res.stdout + res.stderr):
                self.accounting = False
                return out
            if not res.ok:
                raise SchedulerError(res.describe())
            out.append(parse_sacct(res.stdout, self.utc_offset))
        return out

    async def _exit_files(
        self, missing: Mapping[str, Iterable[int]]
    ) -> dict[tuple[str, int], TaskObservation]:
        """Exit codes the task launcher wrote, for tasks neither squeue nor sacct reports."""
        paths = {
            f"{self.byid_dir()}/{job_id}/exit/{idx}": (job_id, idx)
            for job_id, indexes in sorted(missing.items())
            for idx in sorted(indexes)
        }
        # grep prints path:content for every file that exists and skips the others (-s)
        res = await self.transport.run(["grep", "-s", "-H", "", *paths])
        if res.returncode not in (0, 1, 2):
            raise SchedulerError(res.describe())
        found: dict[tuple[str, int], TaskObservation] = {}
        for line in res.stdout.splitlines():
            path, _, content = line.rpartition(":")
            key = paths.get(path)
            content = content.strip()
            if key is None or not content.lstrip("-").isdigit():
                continue
            code = int(content)
            if code == 0:
                obs = TaskObservation(key[0], key[1], TaskPhase.SUCCEEDED, "EXIT_FILE", None, 0)
            else:
                obs = TaskObservation(
                    key[0],
                    key[1],
                    TaskPhase.FAILED,
                    "EXIT_FILE",
                    FailureReason.ERROR,
                    code,
                    "from the exit-code file (no accounting record)",
                )
            found[key] = obs
        return found

    # ------------------------------------------------------------------ cancel

    async def cancel(self, targets: Sequence[tuple[str, int | None]]) -> None:
        whole = sorted({job for job, idx in targets if idx is None})
        per_job: dict[str, set[int]] = {}
        for job, idx in targets:
            if idx is not None and job not in whole:
                per_job.setdefault(job, set()).add(idx)
        ids = list(whole)
        for job, indexes in sorted(per_job.items()):
            ids.append(
                f"{job}_{next(iter(indexes))}"
                if len(indexes) == 1
                else f"{job}_[{compress_indexes(indexes)}]"
            )
        if not ids:
            return
        res = await self.transport.run(["scancel", *ids])
        if not res.ok:
            problems = [ln for ln in res.stderr.splitlines() if ln.strip() and not _GONE.search(ln)]
            if problems:
                raise SchedulerError(res.describe())


def _missing(
    jobs: Mapping[str, Iterable[int]], tasks: Mapping[tuple[str, int], object]
) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for job_id, indexes in jobs.items():
        gone = {i for i in indexes if (job_id, i) not in tasks}
        if gone:
            out[job_id] = gone
    return out


def _job_id(res: CommandResult) -> str:
    """The job id ``sbatch --parsable`` printed (``31`` or ``31;cluster``), or the error."""
    if res.ok:
        for line in res.stdout.splitlines():
            job = line.strip().split(";", 1)[0]
            if job.isdigit():
                return job
        raise SchedulerError(f"sbatch printed no job id: {res.describe()}")
    text = res.stderr + res.stdout
    if res.returncode in (126, 127) or _TRANSIENT.search(text):
        raise SchedulerError(res.describe())
    if "error:" in text:
        raise SubmitRejected(res.describe())
    raise SchedulerError(res.describe())
