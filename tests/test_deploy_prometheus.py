"""Checks of deploy/prometheus with the real Prometheus tools.

promtool/prometheus come from the Debian ``prometheus`` package.  Without them the tests are
skipped, except on CI (``CI=true``) where a missing tool is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from lxr.dashboard import alert_queries, dashboard_queries
from lxr.metrics import Metrics, StateSnapshot, serve

REPO = Path(__file__).resolve().parent.parent
PROM_DIR = REPO / "deploy" / "prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
ALERTS = PROM_DIR / "alerts.yml"
RULE_TESTS = PROM_DIR / "tests.yml"
UP_SCRIPT = PROM_DIR / "prometheus-up.sh"

EXPECTED_ALERTS = {
    "LxrExperimentFailed",
    "LxrControllerDown",
    "LxrSchedulerSnapshotStale",
    "LxrResubmissionStorm",
    "LxrReconcileErrors",
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not found on PATH (install the Debian package `prometheus`)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{msg}; it is required when CI=true")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool")


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_ok(proc: subprocess.CompletedProcess[str]) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{proc.args} failed ({proc.returncode}):\n{output}"
    return output


def load_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


# -- pure-Python structure checks (no promtool needed) -------------------------------------


def test_alert_rules_structure() -> None:
    rules = load_rules()
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        assert 'job="lxr"' in rule["expr"], rule["alert"]


def test_every_alert_has_a_firing_unit_test() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert doc["rule_files"] == ["alerts.yml"]
    firing = {
        case["alertname"]
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert firing == EXPECTED_ALERTS


def test_scrape_config_targets_the_controller() -> None:
    doc = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert doc["global"]["scrape_interval"] == "15s"
    assert doc["rule_files"] == ["alerts.yml"]
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == "lxr"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9464"]}]


# -- promtool ----------------------------------------------------------------------------------


def test_promtool_check_config(promtool: str) -> None:
    output = assert_ok(run(promtool, "check", "config", CONFIG))
    assert "SUCCESS" in output


def test_promtool_check_rules(promtool: str) -> None:
    output = assert_ok(run(promtool, "check", "rules", ALERTS))
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in output


def test_promtool_test_rules(promtool: str) -> None:
    output = assert_ok(run(promtool, "test", "rules", RULE_TESTS))
    assert "SUCCESS" in output


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool has no "parse this query" command: check the queries as recording rules."""
    rules = [
        {"record": f"lxr:dashboard_query:{i}", "expr": expr}
        for i, expr in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = assert_ok(run(promtool, "check", "rules", path))
    assert f"SUCCESS: {len(rules)} rules found" in output


def test_exposition_passes_promtool_check_metrics(promtool: str) -> None:
    from prometheus_client import generate_latest

    m = Metrics()
    m.known_cluster("hpc1")
    m.observe_reconcile("success", 0.1)
    m.scheduler_command("hpc1", "sbatch", 0.2, ok=False)
    m.set_snapshot(StateSnapshot({"Running": 1}, {("hpc1", "Running"): 1}, {"hpc1": 0.0}))
    proc = run(promtool, "check", "metrics", stdin=generate_latest(m.registry).decode())
    output = assert_ok(proc)
    assert output.strip() == "", f"promtool check metrics complained:\n{output}"


# -- a real Prometheus scraping a real Metrics endpoint ---------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(port: int, expr: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


@pytest.mark.integration
@pytest.mark.slow
def test_real_prometheus_runs_every_query(tmp_path: Path) -> None:
    require_tool("prometheus")
    require_tool("curl")
    m = Metrics()
    m.set_leader(True)
    m.known_cluster("hpc1")
    m.submission("hpc1", "success")
    m.observe_reconcile("success", 0.05)
    m.scheduler_command("hpc1", "squeue", 0.1, ok=True)
    m.set_snapshot(StateSnapshot({"Running": 2}, {("hpc1", "Running"): 3}, {"hpc1": time.time()}))
    server = serve(m, "127.0.0.1", 0)
    metrics_port = server.server_address[1]
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ALERTS)],
                "scrape_configs": [
                    {
                        "job_name": "lxr",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                    }
                ],
            }
        )
    )
    started = run("bash", UP_SCRIPT, str(prom_port), config, tmp_path / "data")
    try:
        assert_ok(started)
        pid = int(started.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = query(prom_port, 'up{job="lxr"}')["data"]["result"]
            if result and result[0]["value"][1] == "1":
                break
            time.sleep(0.5)
        else:
            pytest.fail("Prometheus never scraped the Metrics endpoint")

        for expr in dashboard_queries() + alert_queries():
            answer = query(prom_port, expr)
            assert answer["status"] == "success", (expr, answer)
            assert not answer.get("warnings"), (expr, answer)

        leaders = query(prom_port, "sum(lxr_leader)")["data"]["result"]
        assert leaders[0]["value"][1] == "1"
        units = query(prom_port, "sum by (phase) (lxr_work_units)")["data"]["result"]
        assert {r["metric"]["phase"]: r["value"][1] for r in units}["Running"] == "3"
    finally:
        server.shutdown()
        server.server_close()
        if started.returncode == 0:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
