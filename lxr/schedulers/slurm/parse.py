"""Reading Slurm's output: ``squeue``, ``sacct`` and ``scontrol show config``, and what lxr makes
of each row (:data:`STATES`).

Facts this module relies on, observed on Slurm 22.05 (tests/fixtures/slurm/README.md):
squeue's ``exit_code`` is the raw wait status, sacct's ``ExitCode`` is ``code:signal``;
``sacct --json`` exit codes are wrong in 22.05 (so text, ``-P``); sacct ``State`` may read
``CANCELLED by 1001``; sacct may collapse never-started tasks into ``38_[2-3%2]``. By default lxr
submits with ``--no-requeue``; with ``requeue: Scheduler`` a requeued task shows ``PENDING``
(reason ``BeginTime``) with ``RestartCnt`` >= 1 and is reported ``Queued`` with its restarts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from sys import intern

from lxr.api.resources import FailureReason
from lxr.schedulers.base import TaskObservation, TaskPhase
from lxr.schedulers.common import compress_ranges, expand_ranges, local_timestamp

__all__ = [
    "INTENT_LOOKBACK",
    "SACCT_FIELDS",
    "SQUEUE_FIELDS",
    "SQUEUE_FORMAT",
    "STATES",
    "SlurmRow",
    "compress_indexes",
    "exit_status",
    "expand_indexes",
    "het_row",
    "observation",
    "parse_config",
    "parse_sacct",
    "parse_squeue",
    "parse_squeue_line",
    "parse_task_line",
    "squeue_lines",
]

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

_RANGE_JOBID = re.compile(r"^(\d+)_\[([^\]]*)\]$")
_HET_JOBID = re.compile(r"^(\d+)\+(\d+)$")
_NOT_A_TIME = {"", "N/A", "NONE", "None", "Unknown", "(null)"}


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
    #: a component of a heterogeneous job (``31+1``): its offset; job_id is then the het job's
    het_offset: int | None = None


def parse_squeue(text: str, utc_offset: float = 0.0) -> list[SlurmRow]:
    """Rows of ``squeue -h -r -O SQUEUE_FORMAT``; pending ranges (``4-9%4``) are expanded.
    A plain job (ArrayTaskID ``N/A``) gets ``array_index`` None."""
    rows: list[SlurmRow] = []
    for job, task, rest, line in squeue_lines(text):
        if job:
            row = parse_task_line(job, task, rest, utc_offset)
            if row is not None:
                rows.append(row)
        elif line:
            rows.extend(parse_squeue_line(line, utc_offset))
    return rows


#: the line of one array task, as nearly every line of a big queue is (``31_7|31|7|38|...``):
#: its ArrayJobID, ArrayTaskID and the fields after JobID; any other line is the fourth group
_TASK_LINE = re.compile(
    r"^[0-9]+_[0-9]+\|([0-9]+)\|([0-9]+)\|[^|\n]*\|(.*)$|^(.*)$", re.MULTILINE | re.ASCII
)


def squeue_lines(text: str) -> list[tuple[str, str, str, str]]:
    """The lines of squeue's output (split at ``\\n``): ``(ArrayJobID, ArrayTaskID, the fields
    after JobID, "")`` for the line of one array task, ``("", "", "", line)`` for any other (a
    pending range, a plain or heterogeneous job, an empty line). One regular expression over
    the text instead of a split per line: the fields that tell tasks apart come out alone, and
    the rest, the same on many lines, as one string."""
    return _TASK_LINE.findall(text)


def parse_task_line(job: str, task: str, rest: str, utc_offset: float = 0.0) -> SlurmRow | None:
    """The row of a line :func:`squeue_lines` read as one array task's, as
    :func:`parse_squeue_line` reads that line (None: ``rest`` is not squeue's fields). Only
    ``job``, ``task`` and ``rest`` say anything about such a task (JobArrayID is
    ``job_task``, JobID is read for plain jobs only)."""
    f = [f"{job}_{task}", job, task, "", *rest.split("|", _SQUEUE_COLUMNS - 5)]
    if len(f) != _SQUEUE_COLUMNS:
        return None
    (row,) = _squeue_rows(f, utc_offset)
    return row


_SQUEUE_COLUMNS = len(SQUEUE_FIELDS)
# the positions of the fields read, in SQUEUE_FIELDS
_JOB_ARRAY_ID, _ARRAY_JOB_ID, _ARRAY_TASK_ID, _JOB_ID = (
    SQUEUE_FIELDS.index(f) for f in ("JobArrayID", "ArrayJobID", "ArrayTaskID", "JobID")
)
_STATE, _REASON, _RESTARTS, _EXIT = (
    SQUEUE_FIELDS.index(f) for f in ("State", "Reason", "RestartCnt", "exit_code")
)
_START, _END, _NAME = (SQUEUE_FIELDS.index(f) for f in ("StartTime", "EndTime", "Name"))


def parse_squeue_line(line: str, utc_offset: float = 0.0) -> list[SlurmRow]:
    """The rows of one line of ``squeue -h -O SQUEUE_FORMAT``: one task, every task of a
    pending range, or none (not such a line)."""
    f = line.split("|", _SQUEUE_COLUMNS - 1)
    if len(f) != _SQUEUE_COLUMNS:
        return []
    return _squeue_rows(f, utc_offset)


def _squeue_rows(f: list[str], utc_offset: float) -> list[SlurmRow]:
    """The rows of a squeue line split into its fields."""
    task = f[_ARRAY_TASK_ID].strip()
    plain = not task or task == "N/A"
    het = _HET_JOBID.match(f[_JOB_ARRAY_ID].strip())
    code, signal = exit_status(f[_EXIT], raw_wait_status=True)
    restarts = f[_RESTARTS].strip()
    single = not plain and task.isdigit()  # one task (a started one is always its own line)
    # one row per task of an unexpanded pending range (``4-9%4``), all alike but the index
    # the job id, state and reason are the same few strings on thousands of lines: one
    # object each (sys.intern), not one per line
    row = SlurmRow(
        job_id=intern(het.group(1) if het else f[_JOB_ID if plain else _ARRAY_JOB_ID].strip()),
        array_index=int(task) if single else None,
        state=intern(f[_STATE].strip().split(" ", 1)[0]),
        reason=intern(f[_REASON].strip()),
        restarts=int(restarts) if restarts.isdigit() else 0,
        exit_code=code,
        signal=signal,
        name=f[_NAME].strip(),
        start_time=_parse_time(f[_START], utc_offset),
        end_time=_parse_time(f[_END], utc_offset),
        het_offset=int(het.group(2)) if het else None,
    )
    if plain or single:
        return [row]
    return [replace(row, array_index=idx) for idx in expand_indexes(task)]


def parse_sacct(text: str, utc_offset: float = 0.0) -> list[SlurmRow]:
    """Rows of ``sacct -X -D -P -n -o SACCT_FIELDS``: one per array task and *run*, oldest
    first (``-D``), so the last row of a task is its current run and ``restarts`` counts the
    rows before it. Steps (``31_3.batch``) are skipped; a plain job gets ``array_index``
    None."""
    runs: dict[tuple[str, int | None, int | None], list[SlurmRow]] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < len(SACCT_FIELDS):
            continue
        f = dict(zip(SACCT_FIELDS, fields, strict=False))
        jobid = f["JobID"].strip()
        if "." in jobid or not jobid:
            continue
        ranged = _RANGE_JOBID.match(jobid)
        het = _HET_JOBID.match(jobid)
        indexes: list[int | None]
        if het:
            array_id, indexes = het.group(1), [None]
        elif "_" not in jobid:
            array_id, indexes = jobid, [None]
        elif ranged:
            array_id, indexes = ranged.group(1), [*expand_indexes(ranged.group(2))]
        else:
            array_id, _, suffix = jobid.partition("_")
            if not suffix.isdigit():
                continue
            indexes = [int(suffix)]
        code, signal = exit_status(f["ExitCode"], raw_wait_status=False)
        offset = int(het.group(2)) if het else None
        for idx in indexes:
            runs.setdefault((array_id, idx, offset), []).append(
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
                    het_offset=offset,
                )
            )
    out = []
    for rows in runs.values():
        out.append(replace(rows[-1], restarts=len(rows) - 1))  # earlier runs = restarts
    return out


#: how much a finished component's state says about the whole heterogeneous job: a disruption
#: of any part (its node preempted or failed) ends the whole job as that disruption
_SEVERITY = {FailureReason.PREEMPTED: 4, FailureReason.NODE_FAIL: 4, FailureReason.BOOT_FAIL: 4}


def het_row(rows: Iterable[SlurmRow]) -> SlurmRow:
    """The one row that stands for a heterogeneous job, from its components' rows: while a
    part is still queued or running, that part (running first); once all ended, a disruption
    of any part, else a failure, else a cancel, else success, the lowest offset first (the
    batch script, whose exit code is the job's, runs in component 0)."""
    rows = sorted(rows, key=lambda r: r.het_offset or 0)

    def rank(row: SlurmRow) -> tuple[int, int]:
        phase, reason = STATES.get(row.state, (TaskPhase.QUEUED, None))
        if phase is TaskPhase.RUNNING:
            return (10, 0)
        if phase is TaskPhase.QUEUED:
            return (9, 0)
        if reason is not None:
            return (_SEVERITY.get(reason, 3), 0)
        return (2 if phase is TaskPhase.CANCELLED else 1, 0)

    best = max(rank(r) for r in rows)
    return next(r for r in rows if rank(r) == best)


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
        row.array_index or 0,  # a plain job reads as index 0
        phase,
        row.state,
        reason,
        exit_code,
        message,
        row.start_time,
        row.end_time,
        row.restarts,
    )
