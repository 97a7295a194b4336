"""The lxr Grafana dashboard, generated from code.

Regenerate the committed JSON after editing this module::

    python -m lxr.dashboard            # writes deploy/grafana/dashboards/lxr.json
    python -m lxr.dashboard --check    # exit 1 if the committed file is stale

The dashboard is built from plain dicts (Grafana's JSON model, schemaVersion 39) rather than
``grafana-foundation-sdk``: every release of that SDK requires Python >= 3.11 while lxr
supports 3.10, and its output still needed post-processing (panel ids all 0, empty
``refId``, ``"options": null``).  Plain dicts keep this module dependency-free.

:func:`dashboard_queries` and :func:`alert_queries` list every PromQL expression shipped in
the dashboard and in ``deploy/prometheus/alerts.yml`` so tests can check them against the
metrics :class:`lxr.metrics.Metrics` exposes, or run them against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lxr.api.phases import ExperimentPhase, WorkUnitPhase
from lxr.grafana_panels import (
    GRID_WIDTH,
    NEUTRAL,
    RATE,
    Panel,
    quantiles,
    stat,
    thresholds,
    timeseries,
)

__all__ = [
    "ALERTS_PATH",
    "DASHBOARD_PATH",
    "DASHBOARD_UID",
    "GRAFANA_MACROS",
    "alert_queries",
    "build_dashboard",
    "dashboard_queries",
    "main",
    "render",
]

_REPO_ROOT = Path(__file__).resolve().parent.parent

DASHBOARD_PATH = _REPO_ROOT / "deploy" / "grafana" / "dashboards" / "lxr.json"
"""Where :func:`main` writes the dashboard (in a source checkout)."""

ALERTS_PATH = _REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
"""The Prometheus alerting rules read by :func:`alert_queries`."""

DASHBOARD_UID = "lxr-overview"
"""Stable dashboard uid, so links to the dashboard survive re-provisioning."""

GRAFANA_MACROS: dict[str, str] = {"$__rate_interval": "1m"}
"""Grafana macros used in the queries, and the plain-PromQL value that replaces each in
:func:`dashboard_queries` (1m = four 15s scrapes, what Grafana computes by default)."""


def _sections() -> list[tuple[str, list[Panel]]]:
    overview = [
        stat(
            "Leaders",
            "Controller processes holding the leader lease: 1 is healthy, 0 means nothing "
            "reconciles, 2 or more means split brain.",
            "sum(lxr_leader)",
            unit="short",
            thresholds=thresholds((None, "red"), (1, "green"), (2, "red")),
        ),
        stat(
            "Running experiments",
            "Experiments in phase Running.",
            f'sum(lxr_experiments{{phase="{ExperimentPhase.RUNNING.value}"}})',
            unit="short",
            thresholds=NEUTRAL,
        ),
        stat(
            "Work queue depth",
            "Items waiting in the controller's work queue.",
            "sum(lxr_workqueue_depth)",
            unit="short",
            thresholds=thresholds((None, "green"), (100, "orange"), (1000, "red")),
        ),
        stat(
            "Oldest scheduler snapshot",
            "Age of the stalest per-cluster scheduler observation (LxrSchedulerSnapshotStale "
            "fires above 5 minutes).",
            "max(lxr_scheduler_snapshot_age_seconds)",
            unit="s",
            thresholds=thresholds((None, "green"), (120, "orange"), (300, "red")),
        ),
    ]
    workload = [
        timeseries(
            "Work units by phase",
            "Work units per phase, over all clusters.",
            [("sum by (phase) (lxr_work_units)", "{{phase}}")],
            unit="short",
            stack=True,
        ),
        timeseries(
            "Experiments by phase",
            "Experiments per phase.",
            [("sum by (phase) (lxr_experiments)", "{{phase}}")],
            unit="short",
            stack=True,
        ),
        timeseries(
            "Submissions",
            "Job submissions per second, by cluster and result.",
            [
                (
                    f"sum by (cluster, result) (rate(lxr_submissions_total{RATE}))",
                    "{{cluster}} {{result}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Resubmissions by reason",
            "Work units resubmitted per second, by reason (LxrResubmissionStorm fires above "
            "2 per minute on one cluster).",
            [(f"sum by (reason) (rate(lxr_resubmissions_total{RATE}))", "{{reason}}")],
            unit="ops",
            stack=True,
        ),
        timeseries(
            "Task failures handled by action",
            "Task failures handled by the failure policy per second, by action.",
            [(f"sum by (action) (rate(lxr_task_failures_handled_total{RATE}))", "{{action}}")],
            unit="ops",
            stack=True,
        ),
        timeseries(
            "Running work units by cluster",
            "Work units in phase Running, per cluster.",
            [
                (
                    f'sum by (cluster) (lxr_work_units{{phase="{WorkUnitPhase.RUNNING.value}"}})',
                    "{{cluster}}",
                )
            ],
            unit="short",
        ),
    ]
    controller = [
        timeseries(
            "Reconcile latency",
            "p50 and p99 of the duration of one reconcile.",
            quantiles("lxr_reconcile_duration_seconds", "", ""),
            unit="s",
        ),
        timeseries(
            "Reconciles by result",
            "Reconciles per second by result, and errors raised while reconciling.",
            [
                (f"sum by (result) (rate(lxr_reconcile_total{RATE}))", "{{result}}"),
                (f"sum(rate(lxr_reconcile_errors_total{RATE}))", "errors raised"),
            ],
            unit="ops",
        ),
        timeseries(
            "Work queue depth",
            "Items waiting in the work queue, per controller process.",
            [("sum by (instance) (lxr_workqueue_depth)", "{{instance}}")],
            unit="short",
        ),
        timeseries(
            "Work queue retries",
            "Items re-queued with back-off per second.",
            [(f"sum(rate(lxr_workqueue_retries_total{RATE}))", "retries")],
            unit="ops",
        ),
        timeseries(
            "Leader",
            "1 while the process holds the leader lease.",
            [("max by (instance) (lxr_leader)", "{{instance}}")],
            unit="short",
            width=24,
            height=5,
        ),
    ]
    scheduler = [
        timeseries(
            "Scheduler command latency",
            "p50 and p99 of scheduler command durations (sbatch, squeue, qsub, ...), by command.",
            quantiles("lxr_scheduler_command_duration_seconds", "command", " {{command}}"),
            unit="s",
        ),
        timeseries(
            "Scheduler command errors",
            "Failed scheduler commands per second, by cluster and command.",
            [
                (
                    f"sum by (cluster, command) (rate(lxr_scheduler_command_errors_total{RATE}))",
                    "{{cluster}} {{command}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Cluster connection errors",
            "Failed connections to a cluster's login node per second, by cluster and reason "
            "(ConnectionRefused, HostKeyMismatch, PermissionDenied, ...). The cause is the "
            "cluster's Reachable condition: lxr describe cluster NAME.",
            [
                (
                    f"sum by (cluster, reason) (rate(lxr_cluster_connect_errors_total{RATE}))",
                    "{{cluster}} {{reason}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Staging throughput",
            "Bytes uploaded to each cluster per second by content-addressed staging. Launches "
            "(lxr launch, XManager scripts) stage and record the bytes in the store; the "
            "controller exports what was recorded since it started, on its next pass. An "
            "unchanged relaunch uploads nothing.",
            [(f"sum by (cluster) (rate(lxr_staging_bytes_total{RATE}))", "{{cluster}}")],
            unit="Bps",
        ),
        timeseries(
            "Scheduler snapshot age",
            "Seconds since the last successful scheduler observation, by cluster (alert "
            "threshold: 300s).",
            [("max by (cluster) (lxr_scheduler_snapshot_age_seconds)", "{{cluster}}")],
            unit="s",
            thresholds=thresholds((None, "green"), (300, "red")),
        ),
    ]
    return [
        ("Overview", overview),
        ("Workload", workload),
        ("Controller", controller),
        ("Scheduler I/O", scheduler),
    ]


def _layout(sections: list[tuple[str, list[Panel]]]) -> list[Panel]:
    """Assign ids and grid positions: a row header, then panels packed left to right."""
    panels: list[Panel] = []
    y = 0
    for title, section in sections:
        panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        y += 1
        x = 0
        row_height = 0
        for panel in section:
            w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
            if x + w > GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            panels.append(panel)
            x += w
            row_height = max(row_height, h)
        y += row_height
    for i, panel in enumerate(panels, start=1):
        panel["id"] = i
    return panels


def build_dashboard() -> dict[str, Any]:
    """Return the dashboard as Grafana JSON model (a fresh dict on every call)."""
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "lxr controller: experiments and work units, reconcile loop, "
        "scheduler I/O. Generated by lxr/dashboard.py; do not edit by hand.",
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [],
        "panels": _layout(_sections()),
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["lxr"],
        "templating": {
            "list": [
                {
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "label": "Data source",
                    "multi": False,
                    "name": "datasource",
                    "options": [],
                    "query": "prometheus",
                    "refresh": 1,
                    "regex": "",
                    "skipUrlSync": False,
                    "type": "datasource",
                }
            ]
        },
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": "lxr",
        "uid": DASHBOARD_UID,
        "version": 1,
    }


def render(dashboard: dict[str, Any] | None = None) -> str:
    """Serialise a dashboard the way it is committed: sorted keys, indent 2, final newline."""
    return (
        json.dumps(
            build_dashboard() if dashboard is None else dashboard,
            indent=2,
            sort_keys=True,
            ensure_ascii=False,
        )
        + "\n"
    )


def _iter_panels(panels: list[Panel]) -> Iterator[Panel]:
    for panel in panels:
        yield panel
        yield from _iter_panels(panel.get("panels", []))


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard, as plain PromQL.

    Grafana macros (:data:`GRAFANA_MACROS`) are replaced by concrete values, so each
    expression can be sent as is to Prometheus' ``/api/v1/query``.
    """
    queries = []
    for panel in _iter_panels(build_dashboard()["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for macro, replacement in GRAFANA_MACROS.items():
                expr = expr.replace(macro, replacement)
            queries.append(expr)
    return queries


def alert_queries(path: Path | str = ALERTS_PATH) -> list[str]:
    """Every ``expr`` of the alerting (and recording) rules in ``path``."""
    import yaml  # a runtime dependency of lxr already; imported lazily, only needed here

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [rule["expr"].strip() for group in doc["groups"] for rule in group["rules"]]


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboard JSON (or, with ``--check``, verify the committed file)."""
    parser = argparse.ArgumentParser(
        prog="python -m lxr.dashboard", description="Generate the lxr Grafana dashboard."
    )
    parser.add_argument("--output", type=Path, default=DASHBOARD_PATH, help="%(default)s")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the generated one"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"{args.output} is stale: run python -m lxr.dashboard", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
