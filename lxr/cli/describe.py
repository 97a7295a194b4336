"""``lxr describe``: everything about one resource on one screen, as plain text.

Nothing prints ``None``: an absent value is ``<none>`` (or ``-`` for a time).
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lxr.api.phases import EXPERIMENT_INITIAL, WorkUnitPhase
from lxr.cli.columns import write_table
from lxr.cli.console import out
from lxr.cli.output import TABLES, age, args_text, event_dict, to_dict

__all__ = ["describe_cluster", "describe_experiment", "describe_workunit", "fields"]

# work units listed under "needing attention"
ATTENTION_LIMIT = 50


def _text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "<none>"
    return str(value)


def _when(value: Any) -> str:
    """RFC 3339 in UTC to the second, and how long ago (of a datetime or its JSON text)."""
    if value is None:
        return "-"
    from datetime import datetime, timezone

    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    stamp = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ({age(value)} ago)"


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def fields(rows: Iterable[tuple[str, Any]], indent: str = "") -> None:
    """``Key:   value`` lines, values aligned."""
    rows = [(k, _text(v)) for k, v in rows]
    width = max((len(k) for k, _ in rows), default=0) + 2
    for key, value in rows:
        out(f"{indent}{(key + ':').ljust(width)}{value}".rstrip())


def _labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def _section(title: str, headers: Sequence[str], rows: list[list[str]]) -> None:
    out()
    out(f"{title}:")
    if rows:
        import io

        buf = io.StringIO()
        write_table(headers, rows, file=buf)
        for line in buf.getvalue().splitlines():
            out(f"  {line}")
    else:
        out("  <none>")


def _conditions(conds: Sequence[Mapping[str, Any]]) -> None:
    """Conditions (their JSON form) as a table."""
    rows = [
        [
            c["type"],
            c["status"],
            c.get("reason") or "-",
            age(c.get("lastTransitionTime")),
            c.get("message") or "",
        ]
        for c in conds
    ]
    _section("Conditions", ["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], rows)


def _events(events: Sequence[Any]) -> None:
    table = TABLES["Event"]
    _section("Events", table.headers(False), list(table.rows(map(event_dict, events), False)))


def _dependency(dep: Mapping[str, Any]) -> str:
    """``train (Succeeded, SameIndex)``."""
    return f"{dep['experiment']} ({dep.get('condition')}, {dep.get('match')})"


def describe_experiment(store: Any, name: str) -> None:
    """The experiment's spec summary, conditions, counts, work units needing attention and
    recent events. Counts and the units needing attention come from the database (SQL), so
    this takes the same time for 10 or 100k work units. ``store`` is a
    :class:`~lxr.store.reads.Reader`: the experiment in its JSON form (the spec as stored,
    normalized at apply), without pydantic."""
    exp = store.get_experiment(name)
    st = exp.get("status") or {}
    meta = exp["metadata"]
    spec = exp["spec"]
    # an experiment of components shows its first component's executable as its command
    executable = spec.get("executable") or next(iter(spec["components"].values()))["executable"]
    rows: list[tuple[str, Any]] = [
        ("Name", meta["name"]),
        ("UID", meta.get("uid")),
        ("Labels", _labels(meta.get("labels") or {})),
        ("Annotations", _labels(meta.get("annotations") or {})),
        ("Created", _when(meta.get("creationTimestamp"))),
    ]
    if meta.get("deletionTimestamp"):
        rows.append(("Deleting since", _when(meta["deletionTimestamp"])))
    rows += [
        ("Cluster", spec["cluster"]),
        ("Command", shlex.join(executable["command"])),
        ("Working dir", executable.get("workingDir")),
        *(
            [
                (
                    "Components",
                    ", ".join(
                        f"{n}: {shlex.join(c['executable']['command'])}"
                        for n, c in spec["components"].items()
                    ),
                )
            ]
            if spec.get("components")
            else []
        ),
        (
            "Generation",
            f"{meta.get('generation')} (observed {st.get('observedGeneration') or '-'})",
        ),
        ("Phase", st.get("phase") or EXPERIMENT_INITIAL.value),
        (
            "Retry policy",
            f"backoffLimitPerIndex={spec.get('backoffLimitPerIndex')} "
            f"disruptionLimitPerIndex={spec.get('disruptionLimitPerIndex')} "
            f"maxFailedIndexes={_dash(spec.get('maxFailedIndexes'))} "
            f"requeue={spec.get('requeue')} parallelism={spec.get('parallelism') or '-'}",
        ),
    ]
    if spec.get("dependsOn"):
        rows.append(("Depends on", ", ".join(_dependency(d) for d in spec["dependsOn"])))
    if st:
        counts = st.get("workUnits") or {}
        rows.append(("Work units", ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))))
        if st.get("failedIndexes"):
            rows.append(("Failed indexes", ", ".join(map(str, st["failedIndexes"]))))
        rows.append(("Started", _when(st.get("startTime"))))
        rows.append(("Completed", _when(st.get("completionTime"))))
    fields(rows)
    _conditions(st.get("conditions") or [])

    total = (st.get("workUnits") or {}).get(WorkUnitPhase.WAITING.value, 0)
    if total:
        units = store.iter_work_units(
            name, phase=WorkUnitPhase.WAITING.value, page_size=ATTENTION_LIMIT
        )
        waiting = list(itertools.islice(units, ATTENTION_LIMIT))
        _section(
            "Waiting work units",
            ["NAME", "WAITING FOR"],
            [[u["metadata"]["name"], u["status"].get("message") or ""] for u in waiting],
        )
        if total > len(waiting):
            out(f"  ... and {total - len(waiting)} more")
    problem, total = store.work_units_needing_attention(name, limit=ATTENTION_LIMIT)
    if problem:
        table = TABLES["WorkUnit"]
        _section(
            "Work units needing attention",
            table.headers(True),
            list(table.rows((to_dict(u) for u in problem), True)),
        )
        if total > len(problem):
            out(f"  ... and {total - len(problem)} more")
    _events(store.list_events(name, limit=25))


#: the resources ``describe workunit`` shows per attempt, with their short names
_ASKED = (("cpus", "cpus"), ("memory", "mem"), ("gpus", "gpus"), ("timeLimitSeconds", "time"))


def _asked(resources: dict[str, Any] | None) -> str:
    """``cpus=1,mem=512Mi,time=180s``: what one attempt asked for (``-`` if not recorded)."""
    if not resources:
        return "-"
    parts = [
        f"{short}={resources[key]}{'s' if key == 'timeLimitSeconds' else ''}"
        for key, short in _ASKED
        if resources.get(key) is not None
    ]
    return ",".join(parts) or "-"


def describe_workunit(store: Any, experiment: str, index: int) -> None:
    """One work unit: its args, phase, counters and every attempt."""
    (wu,) = store.list_work_units(experiment, index=index) or [None]
    if wu is None:
        from lxr.store import NotFound

        raise NotFound(f"experiment {experiment} has no work unit {index}")
    st = wu.status
    fields(
        [
            ("Name", wu.metadata["name"]),
            ("Experiment", experiment),
            ("Index", wu.spec.index),
            ("Labels", _labels(wu.metadata["labels"])),
            ("Args", args_text(wu.spec.args)),
            ("Env", ", ".join(sorted(wu.spec.env))),
            ("Phase", st.phase.value),
            ("Reason", st.reason),
            ("Message", st.message),
            ("Exit code", st.exit_code),
            ("Failures", st.failures),
            ("Disruptions", st.disruptions),
            ("Next attempt after", st.next_attempt_after and _when(st.next_attempt_after)),
        ]
    )
    rows = [
        [
            str(a.attempt),
            a.job_id or "-",
            "-" if a.index is None else str(a.index),
            a.phase.value if hasattr(a.phase, "value") else str(a.phase or "-"),
            a.state or "-",
            "-" if a.exit_code is None else str(a.exit_code),
            a.reason or "-",
            age(a.start_time) if a.start_time else "-",
            age(a.end_time) if a.end_time else "-",
            _asked(a.resources),
            a.message or "",
        ]
        for a in st.attempts
    ]
    headers = [
        *("ATTEMPT", "JOB", "INDEX", "PHASE", "STATE", "EXIT", "REASON", "STARTED", "ENDED"),
        "ASKED",  # what the attempt asked the scheduler for (a retry may ask for more)
    ]
    _section("Attempts", [*headers, "MESSAGE"], rows)
    ranked = [a for a in st.attempts if a.rank_exit_codes is not None]
    if ranked:
        _section(
            "Ranks",
            ["ATTEMPT", "FIRST FAILED", "EXIT CODES (rank:code)"],
            [
                [
                    str(a.attempt),
                    "-" if a.first_failed_rank is None else f"rank {a.first_failed_rank}",
                    " ".join(
                        f"{r}:{'-' if c is None else c}"
                        for r, c in enumerate(a.rank_exit_codes or [])
                    ),
                ]
                for a in ranked
            ],
        )
    name = wu.metadata["name"]
    _events([e for e in store.list_events(experiment, limit=200) if e.name == name][-25:])


def describe_cluster(store: Any, name: str) -> None:
    """A cluster: scheduler, login node, staging, limits and the experiments on it."""
    cluster = store.get_cluster(name)
    spec = cluster.spec
    ssh = spec.ssh
    rows: list[tuple[str, Any]] = [
        ("Name", cluster.metadata.name),
        ("Labels", _labels(cluster.metadata.labels)),
        ("Created", _when(cluster.metadata.creation_timestamp)),
        ("Scheduler", spec.scheduler),
        ("Login node", "this machine" if ssh is None else f"{ssh.host}:{ssh.port}"),
    ]
    if ssh is not None:
        data = to_dict(ssh)
        rows += [(f"  {k}", v) for k, v in data.items() if k not in ("host", "port")]
    defaults = to_dict(spec.defaults)
    rows += [
        ("Staging dir", spec.staging_dir or "(default)"),
        ("Max parallel", spec.max_parallel or "-"),
        ("Defaults", ", ".join(f"{k}={v}" for k, v in defaults.items())),
        (
            "Rate limit",
            f"{spec.rate_limit.commands_per_second}/s, burst {spec.rate_limit.burst}",
        ),
    ]
    using = [e for e in store.list_experiments() if e.spec.cluster == name]
    rows.append(("Experiments", ", ".join(e.metadata.name for e in using[:20])))
    if len(using) > 20:
        rows.append(("", f"... and {len(using) - 20} more"))
    fields(rows)
    conds = cluster.status.conditions if cluster.status is not None else []
    if conds:
        _conditions(
            [to_dict(c) for c in conds]
        )  # Reachable: whether the controller reaches it, and why not
    else:
        _section("Conditions", ["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], [])
    _events(store.cluster_events(name))
