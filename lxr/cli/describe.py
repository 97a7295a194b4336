"""``lxr describe experiment``: everything about one experiment on one screen."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lxr.api.phases import EXPERIMENT_INITIAL, WorkUnitPhase
from lxr.cli.output import age, events_table, print_table, utc, work_units_table
from lxr.store import Store

__all__ = ["describe_experiment"]


#: work units describe lists: failed, backing off, or not seen by the scheduler
_WORTH_SHOWING = frozenset({WorkUnitPhase.FAILED, WorkUnitPhase.BACKOFF, WorkUnitPhase.UNKNOWN})


def describe_experiment(console: Console, store: Store, name: str) -> None:
    """Print the experiment's spec summary, conditions, counts, failed units and events."""
    exp = store.get_experiment(name)
    st = exp.status
    meta = exp.metadata
    spec = exp.spec
    kv = Table.grid(padding=(0, 2))
    kv.add_column(style="bold")
    kv.add_column()
    kv.add_row("Name:", meta.name)
    kv.add_row("UID:", meta.uid or "")
    kv.add_row("Labels:", ", ".join(f"{k}={v}" for k, v in meta.labels.items()) or "<none>")
    kv.add_row("Created:", f"{meta.creation_timestamp} ({age(meta.creation_timestamp)} ago)")
    if meta.deletion_timestamp:
        kv.add_row("Deleting since:", str(meta.deletion_timestamp))
    kv.add_row("Cluster:", spec.cluster)
    kv.add_row("Command:", " ".join(spec.executable.command))
    kv.add_row(
        "Generation:", f"{meta.generation} (observed {st.observed_generation if st else '-'})"
    )
    kv.add_row("Phase:", st.phase.value if st else EXPERIMENT_INITIAL.value)
    kv.add_row(
        "Retry policy:",
        f"backoffLimitPerIndex={spec.backoff_limit_per_index} "
        f"disruptionLimitPerIndex={spec.disruption_limit_per_index} "
        f"maxFailedIndexes={'-' if spec.max_failed_indexes is None else spec.max_failed_indexes} "
        f"requeue={spec.requeue.value} parallelism={spec.parallelism or '-'}",
    )
    if st:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(st.work_units.items()))
        kv.add_row("Work units:", counts)
        if st.failed_indexes:
            kv.add_row("Failed indexes:", ", ".join(map(str, st.failed_indexes)))
        kv.add_row("Started:", str(st.start_time or "-"))
        kv.add_row("Completed:", str(st.completion_time or "-"))
    console.print(kv, highlight=False)

    console.print("\n[bold]Conditions:[/]")
    conds = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"):
        conds.add_column(col, overflow="fold")
    for c in st.conditions if st else []:
        conds.add_row(c.type, c.status.value, c.reason, age(c.last_transition_time), c.message)
    print_table(console, conds)

    problem = [
        u
        for u in store.list_work_units(name)
        if u.status.phase in _WORTH_SHOWING or u.status.disruptions
    ]
    if problem:
        console.print("\n[bold]Work units needing attention:[/]")
        print_table(console, work_units_table(problem[:50], wide=True))
        if len(problem) > 50:
            console.print(f"... and {len(problem) - 50} more")

    console.print("\n[bold]Events:[/]")
    events = store.list_events(name, limit=25)
    if events:
        print_table(console, events_table(events))
    else:
        console.print("<none>")
    _ = utc
