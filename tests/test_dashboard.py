"""Tests for the generated Grafana dashboard and the PromQL it (and alerts.yml) ships."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lxr import dashboard as dashboard_mod
from lxr.dashboard import (
    DASHBOARD_PATH,
    alert_queries,
    build_dashboard,
    dashboard_queries,
    main,
    render,
)
from lxr.metrics import Metrics, StateSnapshot

# Series that Prometheus itself synthesises for every scrape target.
PROMETHEUS_SERIES = {"up"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (good enough for our queries)."""
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub("", expr)
    expr = _RANGES.sub("", expr)
    expr = _GROUPING.sub("", expr)
    return {name for name in _IDENT.findall(expr) if name.lower() not in _KEYWORDS}


def exposed_metric_names() -> set[str]:
    """Sample names a fully exercised Metrics exposes (incl. _bucket/_sum/_count)."""
    m = Metrics()
    m.known_cluster("hpc1")
    m.observe_reconcile("success", 0.1)
    m.reconcile_error()
    m.workqueue_retry()
    m.set_workqueue_depth(1)
    m.set_leader(True)
    m.submission("hpc1", "success")
    m.resubmission("hpc1", "Preempted")
    m.failure_handled("hpc1", "Count")
    m.scheduler_command("hpc1", "sbatch", 0.1, ok=False)
    m.staged_bytes("hpc1", 10)
    m.set_snapshot(StateSnapshot({"Running": 1}, {("hpc1", "Running"): 1}, {"hpc1": 0.0}))
    return {s.name for family in m.registry.collect() for s in family.samples}


def exposed_families() -> set[str]:
    return {family.name for family in Metrics().registry.collect()}


def data_panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (phase) (lxr_work_units)", {"lxr_work_units"}),
        (
            "histogram_quantile(0.99, sum by (le, command) "
            "(rate(lxr_scheduler_command_duration_seconds_bucket[1m])))",
            {"lxr_scheduler_command_duration_seconds_bucket"},
        ),
        ('lxr_a{job="x", phase=~"Fail.*"} offset 5m > bool 2', {"lxr_a"}),
        ("up == 0 or absent(up{job='lxr'})", {"up"}),
        ("x > 300 and on (job, instance) y == 1", {"x", "y"}),
        ("sum(rate(a_total[5m])) by (cluster) / ignoring(reason) b", {"a_total", "b"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_committed_json_is_up_to_date() -> None:
    committed = DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == render(build_dashboard()), (
        "deploy/grafana/dashboards/lxr.json is stale: run `python -m lxr.dashboard`"
    )
    assert json.loads(committed) == build_dashboard()
    assert committed.endswith("}\n")


def test_build_is_deterministic_and_fresh() -> None:
    a, b = build_dashboard(), build_dashboard()
    assert a == b
    a["panels"].clear()
    assert build_dashboard()["panels"]


def test_datasource_variable() -> None:
    variables = build_dashboard()["templating"]["list"]
    ds = [v for v in variables if v["name"] == "datasource"]
    assert len(ds) == 1
    assert ds[0]["type"] == "datasource"
    assert ds[0]["query"] == "prometheus"


def test_every_panel_has_queries_on_the_datasource_variable() -> None:
    dashboard = build_dashboard()
    panels = data_panels(dashboard)
    assert len(panels) >= 15
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["title"] and panel.get("description"), panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)) and all(ref_ids)
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == "${datasource}"


def test_panels_do_not_overlap() -> None:
    occupied: set[tuple[int, int]] = set()
    for panel in build_dashboard()["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells


def test_required_panels() -> None:
    exprs = {t["expr"] for p in data_panels(build_dashboard()) for t in p["targets"]}
    assert "sum by (phase) (lxr_work_units)" in exprs
    assert "sum by (phase) (lxr_experiments)" in exprs
    for q in ("0.5", "0.99"):
        assert any(
            e.startswith(f"histogram_quantile({q},")
            and "lxr_reconcile_duration_seconds_bucket" in e
            for e in exprs
        )
        assert any(
            e.startswith(f"histogram_quantile({q},")
            and "lxr_scheduler_command_duration_seconds_bucket" in e
            and "command" in e
            for e in exprs
        )
    for needle in (
        "lxr_submissions_total",
        "by (reason) (rate(lxr_resubmissions_total",
        "by (action) (rate(lxr_task_failures_handled_total",
        "lxr_scheduler_command_errors_total",
        "rate(lxr_staging_bytes_total",
        "by (cluster) (lxr_scheduler_snapshot_age_seconds)",
        "lxr_workqueue_depth",
        "lxr_leader",
    ):
        assert any(needle in e for e in exprs), needle


def test_dashboard_queries_are_plain_promql() -> None:
    queries = dashboard_queries()
    assert len(queries) == sum(len(p["targets"]) for p in data_panels(build_dashboard()))
    for q in queries:
        assert "$" not in q, q


def test_dashboard_uses_only_exposed_metrics() -> None:
    exposed = exposed_metric_names()
    for q in dashboard_queries():
        names = promql_metric_names(q)
        assert names, f"no metric in {q!r}"
        assert names <= exposed, f"{q!r} uses metrics lxr does not expose: {names - exposed}"


def test_alerts_use_only_exposed_metrics() -> None:
    exposed = exposed_metric_names() | PROMETHEUS_SERIES
    queries = alert_queries()
    assert len(queries) == 5
    for q in queries:
        names = promql_metric_names(q)
        assert names and names <= exposed, f"{q!r}: unknown {names - exposed}"


def test_every_metric_family_is_on_the_dashboard() -> None:
    used = {n for q in dashboard_queries() for n in promql_metric_names(q)}
    suffixes = ("_total", "_bucket", "_sum", "_count")
    used_families = {next((n[: -len(s)] for s in suffixes if n.endswith(s)), n) for n in used}
    # counters are exposed as family "lxr_x" with samples "lxr_x_total"
    missing = {f for f in exposed_families() if f not in used_families}
    assert not missing, f"metrics without a panel: {sorted(missing)}"


def test_renamed_metric_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name check must be able to fail: simulate a panel on a metric that does not exist."""
    original = dashboard_mod.build_dashboard

    def renamed() -> dict:
        d = original()
        panel = data_panels(d)[0]
        panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace("lxr_", "lxr_old_")
        return d

    monkeypatch.setattr(dashboard_mod, "build_dashboard", renamed)
    exposed = exposed_metric_names()
    assert any(not promql_metric_names(q) <= exposed for q in dashboard_mod.dashboard_queries())


def test_main_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dash" / "lxr.json"
    assert main(["--output", str(out), "--check"]) == 1
    assert main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render()
    assert main(["--output", str(out), "--check"]) == 0
    out.write_text("{}\n", encoding="utf-8")
    assert main(["--output", str(out), "--check"]) == 1
    capsys.readouterr()
