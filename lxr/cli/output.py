"""How the CLI prints resources: tables for people, JSON/YAML lists for tools."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from lxr.api.phases import EXPERIMENT_INITIAL, WORK_UNIT_ACTIVE, ExperimentPhase, WorkUnitPhase
from lxr.api.resources import API_VERSION, Cluster, Experiment, WorkUnit
from lxr.store import EventInfo

__all__ = [
    "PHASE_STYLES",
    "age",
    "clusters_table",
    "dump",
    "events_table",
    "experiments_table",
    "print_table",
    "to_dict",
    "utc",
    "work_units_table",
]

_W, _E = WorkUnitPhase, ExperimentPhase
PHASE_STYLES = {
    _W.SUCCEEDED.value: "green",
    _W.FAILED.value: "red",
    _W.RUNNING.value: "cyan",
    _W.QUEUED.value: "blue",
    _W.BACKOFF.value: "yellow",
    _W.PENDING.value: "dim",
    _W.STOPPED.value: "magenta",
    _E.STOPPING.value: "magenta",
    _W.UNKNOWN.value: "yellow",
}


def to_dict(obj: BaseModel) -> dict[str, Any]:
    """A resource as plain JSON-able data, camelCase, without empty optional fields."""
    return obj.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump(objs: Sequence[BaseModel], fmt: str, single: bool) -> str:
    """``objs`` as JSON or YAML; a kubectl-style ``List`` unless one object was asked for."""
    data: Any
    if single and len(objs) == 1:
        data = to_dict(objs[0])
    else:
        data = {"apiVersion": API_VERSION, "kind": "List", "items": [to_dict(o) for o in objs]}
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip()


def age(when: datetime | float | None) -> str:
    """``5s``, ``3m``, ``2h``, ``4d``, like kubectl."""
    if when is None:
        return "-"
    seconds = time.time() - (when.timestamp() if isinstance(when, datetime) else when)
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _phase(phase: str) -> str:
    style = PHASE_STYLES.get(phase)
    return f"[{style}]{phase}[/]" if style else phase


def experiments_table(exps: Sequence[Experiment], wide: bool) -> Table:
    """One row per experiment."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    cols = ["NAME", "PHASE", "SUCCEEDED", "FAILED", "ACTIVE", "TOTAL", "AGE"]
    if wide:
        cols[2:2] = ["CLUSTER", "GEN"]
        cols.append("MESSAGE")
    for col in cols:
        table.add_column(col)
    for exp in exps:
        st = exp.status
        counts = st.work_units if st else {}
        active = sum(counts.get(p, 0) for p in WORK_UNIT_ACTIVE)
        row = [
            exp.metadata.name,
            _phase(st.phase.value if st else EXPERIMENT_INITIAL.value),
            str(counts.get(_W.SUCCEEDED, 0)),
            str(counts.get(_W.FAILED, 0)),
            str(active),
            str(counts.get("total", 0)),
            age(exp.metadata.creation_timestamp),
        ]
        if wide:
            row[2:2] = [
                exp.spec.cluster,
                f"{(st.observed_generation if st else None) or '-'}/{exp.metadata.generation}",
            ]
            cond = next((c for c in (st.conditions if st else []) if c.type == "Succeeded"), None)
            row.append(cond.message if cond else "")
        table.add_row(*row)
    return table


def work_units_table(units: Sequence[WorkUnit], wide: bool) -> Table:
    """One row per work unit."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    cols = ["NAME", "PHASE", "ATTEMPTS", "JOB", "EXIT", "REASON", "ARGS"]
    if wide:
        cols += ["FAILURES", "DISRUPTIONS", "MESSAGE"]
    for col in cols:
        table.add_column(col, overflow="fold")
    for wu in units:
        st = wu.status
        last = st.attempts[-1] if st.attempts else None
        job = "-"
        if last and last.job_id:
            job = f"{last.job_id}[{last.index}]" if last.index is not None else last.job_id
        args = " ".join(f"{k}={v}" for k, v in wu.spec.args.items())
        row = [
            wu.metadata["name"],
            _phase(st.phase.value),
            str(len(st.attempts)),
            job,
            "-" if st.exit_code is None else str(st.exit_code),
            st.reason or "",
            args,
        ]
        if wide:
            row += [str(st.failures), str(st.disruptions), st.message or ""]
        table.add_row(*row)
    return table


def events_table(events: Sequence[EventInfo]) -> Table:
    """Events, oldest first."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"):
        table.add_column(col, overflow="fold")
    for ev in events:
        style = "yellow" if ev.type == "Warning" else ""
        table.add_row(
            age(ev.time),
            f"[{style}]{ev.type}[/]" if style else ev.type,
            ev.reason,
            f"{ev.kind.lower()}/{ev.name}",
            ev.message,
        )
    return table


def clusters_table(clusters: Sequence[Cluster]) -> Table:
    """One row per cluster."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("NAME", "SCHEDULER", "HOST", "STAGING", "AGE"):
        table.add_column(col)
    for c in clusters:
        host = "-"
        if c.spec.ssh:
            ssh = c.spec.ssh
            host = f"{ssh.user + '@' if ssh.user else ''}{ssh.host}:{ssh.port}"
        table.add_row(
            c.metadata.name,
            c.spec.scheduler,
            host,
            c.spec.staging_dir or "(default)",
            age(c.metadata.creation_timestamp),
        )
    return table


def print_table(console: Console, table: Table) -> None:
    """Print without wrapping long cells into the terminal width when output is piped."""
    console.print(table, soft_wrap=not console.is_terminal)


def utc(when: float | None) -> str:
    """RFC 3339 UTC."""
    if when is None:
        return "-"
    return datetime.fromtimestamp(when, tz=timezone.utc).isoformat().replace("+00:00", "Z")
