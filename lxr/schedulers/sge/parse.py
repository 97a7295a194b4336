"""Reading Grid Engine's output: ``qstat -xml``, ``qstat -j`` and ``qacct -j``, and what lxr
makes of each task (:data:`STATES`, :data:`FAILED_CODES`).

Facts this module relies on, observed on Grid Engine 8.1.9 (tests/fixtures/sge/README.md):
qstat shows running array tasks one element each and pending ones as ranges (``3-10:1``, ``9,10``);
its times are the cluster's local time; ``qstat -j`` prints an ``error reason <task>:`` line per
task in Eqw; ``qacct -j`` takes one job id or name (a later ``-j`` replaces an earlier one, a
comma list reads only the first) and prints one record per task *run*; ``failed`` is
``N : text``; tasks deleted before they ran have no record.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from lxr.api.resources import FailureReason
from lxr.schedulers.base import SchedulerError, TaskObservation, TaskPhase
from lxr.schedulers.common import expand_ranges, local_timestamp

__all__ = [
    "FAILED_CODES",
    "QACCT_FIELDS",
    "RERUN_DECLINED_EXIT",
    "STATES",
    "QacctRecord",
    "QstatTask",
    "accounting_observation",
    "parse_qacct",
    "parse_qstat_errors",
    "parse_qstat_xml",
    "qstat_observation",
    "state_phase",
]

#: the job script's exit code when it declines a rerun Grid Engine started on its own
RERUN_DECLINED_EXIT = 96

#: qacct lines lxr reads (the rest of each ~45-line record is filtered out on the cluster)
QACCT_FIELDS = (
    "jobname",
    "jobnumber",
    "taskid",
    "failed",
    "exit_status",
    "start_time",
    "end_time",
    "ru_wallclock",
    "category",
)

_Q, _R, _F = TaskPhase.QUEUED, TaskPhase.RUNNING, TaskPhase.FAILED

#: qstat ``<state>`` -> lxr phase. ``R`` (restarted) adds a restart; suspension (``s`` by a
#: user, ``S`` by a subordinate queue, ``T`` by a threshold) is not a failure: the task keeps
#: its slot and resumes. ``d`` (being deleted) stays Running until the task is gone. States
#: not listed are classified by their letters (:func:`state_phase`).
STATES: dict[str, TaskPhase] = {
    "qw": _Q,
    "hqw": _Q,
    "hRwq": _Q,
    "Rq": _Q,
    "hRq": _Q,
    "r": _R,
    "t": _R,
    "Rr": _R,
    "Rt": _R,
    "s": _R,
    "S": _R,
    "T": _R,
    "Rs": _R,
    "RS": _R,
    "RT": _R,
    "dr": _R,
    "dt": _R,
    "dRr": _R,
    "dRt": _R,
    "ds": _R,
    "dS": _R,
    "dT": _R,
    "Eqw": _F,
    "Ehqw": _F,
    "EhRqw": _F,
}

#: qacct ``failed`` codes (besides 0) -> reason. Failures of the execution host or of the job's
#: setup on it are NodeFail (a disruption); a job whose own spec cannot work (output file,
#: shell, working directory) is SubmitError. 37 is refined by :func:`accounting_observation`.
FAILED_CODES: dict[int, FailureReason] = {
    25: FailureReason.RESCHEDULED,  # rescheduling (qmod -rj, host lost with -r y)
    26: FailureReason.SUBMIT_ERROR,  # opening input/output file
    27: FailureReason.SUBMIT_ERROR,  # searching requested shell
    28: FailureReason.SUBMIT_ERROR,  # changing to working directory
    37: FailureReason.TIMEOUT,  # qmaster enforced h_rt, h_cpu, or h_vmem limit
    100: FailureReason.CANCELLED,  # assumedly after job: killed by a signal -> phase Cancelled
}

_QSTAT_TIME = "%Y-%m-%dT%H:%M:%S"
_QACCT_TIME = "%a %b %d %H:%M:%S %Y"
_ERROR_REASON = re.compile(r"^error reason\s+(\d+):\s*(.*)$")
_SGE_TIMESTAMP = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d \[[\d:]+\]:\s*")


@dataclass(frozen=True)
class QstatTask:
    """One array task as ``qstat -xml`` reports it (pending ranges expanded)."""

    job_id: str
    array_index: int
    name: str
    state: str
    start_time: float | None = None
    submit_time: float | None = None


def parse_qstat_xml(text: str, utc_offset: float = 0.0) -> list[QstatTask]:
    """Every task of ``qstat -u USER -xml`` (with or without ``-g d``). A job without
    ``<tasks>`` (not an array) is task 1, as Grid Engine numbers it internally."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SchedulerError(f"qstat -xml printed no XML: {exc}: {text[:200]!r}") from exc
    out: list[QstatTask] = []
    for el in root.iter("job_list"):
        job_id = (el.findtext("JB_job_number") or "").strip()
        if not job_id:
            continue
        tasks = (el.findtext("tasks") or "").strip()
        start = el.findtext("JAT_start_time")
        submit = el.findtext("JB_submission_time")
        for idx in expand_ranges(tasks) if tasks else [1]:
            out.append(
                QstatTask(
                    job_id=job_id,
                    array_index=idx,
                    name=(el.findtext("JB_name") or "").strip(),
                    state=(el.findtext("state") or "").strip(),
                    start_time=local_timestamp(start, _QSTAT_TIME, utc_offset) if start else None,
                    submit_time=(
                        local_timestamp(submit, _QSTAT_TIME, utc_offset) if submit else None
                    ),
                )
            )
    return out


def state_phase(state: str) -> tuple[TaskPhase, int]:
    """``(phase, restarts)`` for a qstat state, by :data:`STATES` or else by its letters:
    ``E`` error -> Failed; running, transferring or suspended -> Running; else Queued."""
    restarts = 1 if "R" in state else 0
    phase = STATES.get(state)
    if phase is None:
        if "E" in state:
            phase = _F
        elif any(c in state for c in "rtsST"):
            phase = _R
        else:
            phase = _Q
    return phase, restarts


def qstat_observation(task: QstatTask, error: str | None = None) -> TaskObservation:
    """What lxr makes of one qstat task; ``error`` is the Eqw reason from ``qstat -j``."""
    phase, restarts = state_phase(task.state)
    if phase is _F:
        return TaskObservation(
            task.job_id,
            task.array_index,
            phase,
            task.state,
            FailureReason.SUBMIT_ERROR,
            None,
            error or f"Grid Engine put the task in error state ({task.state})",
            restarts=restarts,
        )
    message = None
    if phase is _R and any(c in task.state for c in "sST"):
        message = "suspended"
    elif "h" in task.state:
        message = "on hold"
    return TaskObservation(
        task.job_id,
        task.array_index,
        phase,
        task.state,
        message=message,
        start_time=task.start_time if phase is _R else None,
        restarts=restarts,
    )


def parse_qstat_errors(text: str) -> dict[tuple[str, int], str]:
    """The ``error reason <task>:`` lines of ``qstat -j ID[,ID...]``, per (job id, task),
    without Grid Engine's timestamp prefix."""
    out: dict[tuple[str, int], str] = {}
    job_id = ""
    for line in text.splitlines():
        if line.startswith("job_number:"):
            job_id = line.partition(":")[2].strip()
            continue
        m = _ERROR_REASON.match(line)
        if m and job_id:
            out[(job_id, int(m.group(1)))] = _SGE_TIMESTAMP.sub("", m.group(2).strip())
    return out


# ---------------------------------------------------------------------------- qacct


@dataclass(frozen=True)
class QacctRecord:
    """One task run as ``qacct -j`` reports it."""

    job_id: str
    array_index: int
    name: str
    failed: int
    failed_text: str
    exit_status: int
    start_time: float | None = None
    end_time: float | None = None
    wallclock: float | None = None
    category: str = ""


def _leading_int(value: str) -> int:
    m = re.match(r"\s*(-?\d+)", value)
    return int(m.group(1)) if m else 0


def _seconds(value: str) -> float | None:
    m = re.match(r"\s*([\d.]+)s?\s*$", value)
    return float(m.group(1)) if m else None


def parse_qacct(text: str, utc_offset: float = 0.0) -> list[QacctRecord]:
    """Records of ``qacct -j`` output (whole, or filtered to :data:`QACCT_FIELDS`), in file
    order: a task's runs appear oldest first. ``taskid undefined`` (not an array) is task 1."""
    records: list[QacctRecord] = []

    def flush(fields: dict[str, str]) -> None:
        job = fields.get("jobnumber", "").strip()
        if not job or "failed" not in fields:
            return
        task = fields.get("taskid", "").strip()
        failed = fields["failed"]
        records.append(
            QacctRecord(
                job_id=job,
                array_index=int(task) if task.isdigit() else 1,
                name=fields.get("jobname", "").strip(),
                failed=_leading_int(failed),
                failed_text=failed.partition(":")[2].strip(),
                exit_status=_leading_int(fields.get("exit_status", "0")),
                start_time=local_timestamp(fields.get("start_time", ""), _QACCT_TIME, utc_offset),
                end_time=local_timestamp(fields.get("end_time", ""), _QACCT_TIME, utc_offset),
                wallclock=_seconds(fields.get("ru_wallclock", "")),
                category=fields.get("category", "").strip(),
            )
        )

    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("=="):
            flush(fields)
            fields = {}
            continue
        key, _, value = line.partition(" ")
        if key:
            fields[key] = value.strip()
    flush(fields)
    return records


def _limits(category: str) -> dict[str, str]:
    """The ``-l`` requests of a qacct ``category`` (``-l h_rt=5,h_vmem=200M -q all.q``)."""
    out: dict[str, str] = {}
    words = category.split()
    for flag, value in zip(words, words[1:], strict=False):
        if flag == "-l":
            for item in value.split(","):
                key, _, val = item.partition("=")
                out[key] = val
    return out


def _rt_seconds(value: str) -> float | None:
    if ":" in value:
        parts = [float(p or 0) for p in value.split(":")]
        total = 0.0
        for p in parts:
            total = total * 60 + p
        return total
    try:
        return float(value)
    except ValueError:
        return None


def accounting_observation(runs: Sequence[QacctRecord]) -> TaskObservation:
    """One finished task from its accounting records (oldest run first): the last run decides,
    earlier runs (rescheduled, ``failed 25``) count as restarts."""
    last = runs[-1]
    restarts = sum(1 for r in runs[:-1] if r.failed == 25)
    reason: FailureReason | None
    phase = TaskPhase.FAILED
    exit_code: int | None = last.exit_status
    message: str | None = None
    state = f"failed={last.failed}"
    if last.failed == 0:
        state = f"exit_status={last.exit_status}"
        if last.exit_status == RERUN_DECLINED_EXIT and restarts:
            reason, exit_code = FailureReason.RESCHEDULED, None
            message = "Grid Engine rescheduled the task; lxr resubmits it"
        elif last.exit_status == 0:
            phase, reason = TaskPhase.SUCCEEDED, None
        else:
            reason = FailureReason.ERROR
    else:
        reason = FAILED_CODES.get(last.failed, FailureReason.NODE_FAIL)
        message = f"failed {last.failed}" + (f": {last.failed_text}" if last.failed_text else "")
        if last.failed == 37:
            limits = _limits(last.category)
            rt = _rt_seconds(limits.get("h_rt", "")) if "h_rt" in limits else None
            hit_rt = rt is not None and (last.wallclock or 0) >= rt - 1
            if "h_vmem" in limits and not hit_rt and "h_cpu" not in limits:
                reason = FailureReason.OUT_OF_MEMORY
        elif last.failed == 100:
            # killed from outside the launcher (qdel by lxr or a person): the planner knows
            # whether lxr asked for it
            phase, reason = TaskPhase.CANCELLED, None
            if last.exit_status > 128:
                message = f"killed by signal {last.exit_status - 128} (failed 100)"
        elif last.failed == 25:
            exit_code = None
        elif reason is FailureReason.NODE_FAIL:
            exit_code = None
    return TaskObservation(
        last.job_id,
        last.array_index,
        phase,
        state,
        reason,
        exit_code,
        message,
        last.start_time,
        last.end_time,
        restarts,
    )
