"""The whole observability path against a real Prometheus.

``lxr controller run --metrics-addr`` runs as a subprocess; a real Prometheus (Debian package
``prometheus``, started by ``deploy/prometheus/prometheus-up.sh``) scrapes it every second with
a copy of the shipped ``prometheus.yml`` and evaluates the shipped ``alerts.yml``. A local sweep
with a task that fails once then succeeds and one that always fails runs to completion; then
every PromQL expression of the Grafana dashboard and of the alert rules is sent to Prometheus'
HTTP API and checked.

The sweep (backoffLimitPerIndex=1):

* ``prom-flaky``: 2 work units that exit 1 on attempt 1 and 0 on attempt 2;
* ``prom-broken``: 1 work unit that always exits 3 (fails attempt 1, is retried, fails again).

So: 4 failed attempts, all handled with action Count; 3 retries (resubmissions, reason Failed);
work units Succeeded 2 / Failed 1; experiments Succeeded 1 / Failed 1.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lxr.dashboard import ALERTS_PATH, alert_queries, dashboard_queries
from tests.conftest import REPO, have, require

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROM_DIR = REPO / "deploy" / "prometheus"
UP_SCRIPT = PROM_DIR / "prometheus-up.sh"
LXR = [sys.executable, "-c", "from lxr.cli.main import main; main()"]

FLAKY = "import os, sys; sys.exit(1 if os.environ['LXR_ATTEMPT'] == '1' else 0)"
SWEEP = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata:
  name: prom-flaky
spec:
  cluster: local
  executable:
    command: [{python}, -c, "{flaky}"]
  workUnits:
    - args: {{}}
    - args: {{}}
  backoffLimitPerIndex: 1
  backoff: {{initialSeconds: 0.5, jitter: 0}}
---
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata:
  name: prom-broken
spec:
  cluster: local
  executable:
    command: [{python}, -c, "import sys; sys.exit(3)"]
  workUnits:
    - args: {{}}
  backoffLimitPerIndex: 1
  backoff: {{initialSeconds: 0.5, jitter: 0}}
"""

RETRIES = 3  # prom-flaky's 2 work units once each, prom-broken's once
FAILED_ATTEMPTS = 4  # the 3 retried attempts and prom-broken's last one

# The local driver runs no scheduler commands, so these two families have no samples: the
# dashboard queries over them legitimately return nothing in this test (the Slurm/SGE
# integration tests cover them). Everything else must return data.
NO_DATA_WITH_LOCAL_DRIVER = (
    "lxr_scheduler_command_duration_seconds",
    "lxr_scheduler_command_errors_total",
)


def free_port() -> int:
    """A free loopback TCP port (freed again: the process under test binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], bool], timeout: float, step: float = 0.3) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def stop(proc: subprocess.Popen[bytes] | None, pid: int | None = None) -> None:
    """SIGTERM a process we started, SIGKILL it if it lingers."""
    if proc is None and pid is None:
        return
    target = proc.pid if proc is not None else pid
    assert target is not None
    try:
        os.kill(target, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return
        if proc is None:
            try:
                os.kill(target, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    os.kill(target, signal.SIGKILL)
    if proc is not None:
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------- the controller


@dataclass
class ControllerProc:
    """The ``lxr controller run`` subprocess and how to reach it."""

    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    log: Path

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The controller's /metrics as ``{(sample name, sorted labels): value}``."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        """One sample of the controller's /metrics (None when absent or unreachable)."""
        try:
            samples = self.scrape()
        except OSError:
            return None
        return samples.get((name, tuple(sorted(labels.items()))))

    def lxr(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the lxr CLI against the controller's database."""
        return subprocess.run(
            [*LXR, *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProc]:
    """``lxr controller run --metrics-addr 127.0.0.1:PORT`` with a private state dir."""
    env = {k: v for k, v in os.environ.items() if k != "LXR_DATABASE_URL"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    port = free_port()
    log = tmp_path / "controller.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*LXR, "controller", "run", "--metrics-addr", f"127.0.0.1:{port}"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    ctl = ControllerProc(proc, port, env, log)
    try:

        def leading() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"controller exited ({proc.returncode}):\n{log.read_text()}")
            return ctl.value("lxr_leader") == 1

        wait_for("the controller to serve lxr_leader 1", leading, timeout=30)
        yield ctl
    finally:
        stop(proc)


# ---------------------------------------------------------------------------- Prometheus


@dataclass
class PrometheusProc:
    """A Prometheus started by prometheus-up.sh."""

    pid: int
    port: int
    data: Path

    def api(self, path: str, **params: str) -> dict:
        """GET /api/v1/PATH; returns the decoded JSON (also on HTTP 4xx errors)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:  # bad queries answer 400 with a JSON body
            return json.load(exc)

    def query(self, expr: str) -> list[dict]:
        """Instant query; asserts success and no warnings, returns the result vector."""
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        assert not answer.get("warnings"), (expr, answer)
        assert answer["data"]["resultType"] == "vector", (expr, answer)
        return answer["data"]["result"]

    def by(self, expr: str, label: str) -> dict[str, float]:
        """An instant query's result as ``{value of label: value}``."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def scalar(self, expr: str) -> float:
        """An instant query that must return exactly one series."""
        result = self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])


@pytest.fixture
def prometheus(tmp_path: Path, controller: ControllerProc) -> Iterator[PrometheusProc]:
    """Prometheus scraping the controller every second, with the shipped alert rules."""
    require(have("prometheus"), "prometheus is not installed (apt-get install prometheus)")
    require(have("curl"), "curl is not installed (prometheus-up.sh needs it)")
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(ALERTS_PATH)]  # the copy lives elsewhere: absolute path
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "lxr"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{controller.port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    port = free_port()
    data = tmp_path / "prometheus-data"
    started = subprocess.run(
        ["bash", str(UP_SCRIPT), str(port), str(path), str(data)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert started.returncode == 0, f"prometheus-up.sh failed:\n{started.stdout}{started.stderr}"
    prom = PrometheusProc(int(started.stdout.split()[-1]), port, data)
    try:
        yield prom
    finally:
        stop(None, prom.pid)


# ---------------------------------------------------------------------------- the test


def normal(expr: str) -> str:
    """``expr`` with runs of whitespace collapsed, to compare PromQL texts."""
    return " ".join(expr.split())


# For each alert: a sub-expression of its ``expr`` (the signal before the threshold), which
# must return data, and a check of its value after the sweep. The alert expressions
# themselves must return nothing: the run is healthy (LxrExperimentFailed compares with
# 5 minutes ago, before this Prometheus existed, so it cannot fire in a short test).
ALERT_SIGNALS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "LxrExperimentFailed": (
        'max by (job) (lxr_experiments{job="lxr", phase="Failed"})',
        lambda v: v == 1,
    ),
    "LxrControllerDown": ('up{job="lxr"}', lambda v: v == 1),
    "LxrSchedulerSnapshotStale": (
        'lxr_scheduler_snapshot_age_seconds{job="lxr"}',
        lambda v: 0 <= v < 60,
    ),
    "LxrResubmissionStorm": (
        'sum by (job, cluster) (rate(lxr_resubmissions_total{job="lxr"}[10m])) * 60',
        lambda v: 0 < v <= 2,  # 3 retries in 10 minutes: no storm
    ),
    "LxrReconcileErrors": (
        'sum by (job) (rate(lxr_reconcile_total{job="lxr", result="error"}[5m])) / '
        'sum by (job) (rate(lxr_reconcile_total{job="lxr"}[5m]))',
        lambda v: v == 0,
    ),
}


def test_sweep_seen_by_real_prometheus(
    tmp_path: Path, controller: ControllerProc, prometheus: PrometheusProc
) -> None:
    prom = prometheus
    # The all-zero counters must be in the TSDB before the sweep, so rate() sees the increase.
    wait_for(
        "a first scrape of the zero counters",
        lambda: (
            prom.by('lxr_submissions_total{job="lxr", cluster="local"}', "result")
            == {"success": 0.0, "error": 0.0}
        ),
        timeout=30,
    )

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP.format(python=sys.executable, flaky=FLAKY), encoding="utf-8")
    applied = controller.lxr("apply", "-f", str(sweep))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "no controller is running" not in applied.stderr

    # The controller converges the sweep; /metrics reflects it.
    wait_for(
        "the controller to finish the sweep",
        lambda: (
            controller.value("lxr_experiments", phase="Succeeded") == 1
            and controller.value("lxr_experiments", phase="Failed") == 1
        ),
        timeout=120,
    )
    assert controller.value("lxr_resubmissions_total", cluster="local", reason="Failed") == RETRIES
    # Prometheus has scraped the final state.
    wait_for(
        "Prometheus to scrape the final state",
        lambda: (
            prom.by('lxr_experiments{job="lxr"}', "phase").get("Failed") == 1
            and prom.by("lxr_resubmissions_total", "reason").get("Failed") == RETRIES
        ),
        timeout=30,
    )

    # Every dashboard query: valid, and returns data unless it is about scheduler commands.
    for expr in dashboard_queries():
        result = prom.query(expr)
        if any(name in expr for name in NO_DATA_WITH_LOCAL_DRIVER):
            continue
        assert result, f"dashboard query returned no data: {expr}"

    # The key dashboard panels, with their expected values.
    queries = set(dashboard_queries())

    def panel(expr: str) -> str:
        assert expr in queries, f"not a dashboard query any more: {expr}"
        return expr

    assert prom.scalar(panel("sum(lxr_leader)")) == 1
    assert prom.scalar(panel('sum(lxr_experiments{phase="Running"})')) == 0
    assert prom.by(panel("sum by (phase) (lxr_experiments)"), "phase") == {
        "Pending": 0,
        "Running": 0,
        "Succeeded": 1,
        "Failed": 1,
        "Stopping": 0,
        "Stopped": 0,
    }
    units = prom.by(panel("sum by (phase) (lxr_work_units)"), "phase")
    assert units == {
        "Pending": 0,
        "Waiting": 0,  # on a dependency (none here)
        "Queued": 0,
        "Running": 0,
        "BackOff": 0,
        "Succeeded": 2,
        "Failed": 1,
        "Stopped": 0,
        "Unknown": 0,
    }
    assert prom.by(panel('sum by (cluster) (lxr_work_units{phase="Running"})'), "cluster") == {
        "local": 0
    }
    resubmit_rate = prom.by(panel("sum by (reason) (rate(lxr_resubmissions_total[1m]))"), "reason")
    assert resubmit_rate.pop("Failed") > 0
    assert resubmit_rate and set(resubmit_rate.values()) == {0}, resubmit_rate
    handled_rate = prom.by(
        panel("sum by (action) (rate(lxr_task_failures_handled_total[1m]))"), "action"
    )
    assert handled_rate.pop("Count") > 0
    assert handled_rate == {"Ignore": 0, "FailIndex": 0, "FailJob": 0}
    submit_rate = prom.query(panel("sum by (cluster, result) (rate(lxr_submissions_total[1m]))"))
    submit_rate_by = {r["metric"]["result"]: float(r["value"][1]) for r in submit_rate}
    assert submit_rate_by["success"] > 0 and submit_rate_by["error"] == 0
    reconciles = prom.by(panel("sum by (result) (rate(lxr_reconcile_total[1m]))"), "result")
    assert reconciles["success"] > 0 and reconciles["error"] == 0
    assert prom.scalar(panel("sum(rate(lxr_reconcile_errors_total[1m]))")) == 0
    p99 = prom.scalar(
        panel(
            "histogram_quantile(0.99, sum by (le) (rate(lxr_reconcile_duration_seconds_bucket[1m])))"
        )
    )
    assert 0 < p99 <= 60
    assert 0 <= prom.scalar(panel("max(lxr_scheduler_snapshot_age_seconds)")) < 60
    assert prom.by(panel("sum by (cluster) (rate(lxr_staging_bytes_total[1m]))"), "cluster") == {
        "local": 0
    }

    # The counters themselves, exactly.
    assert prom.by('sum by (reason) (lxr_resubmissions_total{cluster="local"})', "reason") == {
        "Preempted": 0,
        "NodeFail": 0,
        "BootFail": 0,
        "Failed": RETRIES,
        "OutOfMemory": 0,
        "Timeout": 0,
        "Lost": 0,
        "Rescheduled": 0,
    }
    assert prom.by("sum by (action) (lxr_task_failures_handled_total)", "action") == {
        "Ignore": 0,
        "Count": FAILED_ATTEMPTS,
        "FailIndex": 0,
        "FailJob": 0,
    }
    submissions = prom.by('lxr_submissions_total{cluster="local"}', "result")
    # one array job per experiment, then the retries (batched per experiment and pass)
    assert 4 <= submissions["success"] <= 2 + RETRIES and submissions["error"] == 0
    assert prom.scalar("lxr_reconcile_total{result='error'}") == 0
    assert prom.scalar("lxr_reconcile_duration_seconds_count") >= 3
    # Declared on /metrics (no samples: the local driver ran no scheduler command).
    with urllib.request.urlopen(f"http://127.0.0.1:{controller.port}/metrics") as resp:
        exposition = resp.read().decode()
    assert "# TYPE lxr_scheduler_command_duration_seconds histogram" in exposition
    assert "# TYPE lxr_scheduler_command_errors_total counter" in exposition

    # Alert rules: the expression of every rule in alerts.yml is covered here, returns no data
    # (nothing is wrong), and the signal it thresholds returns the expected value.
    rules = yaml.safe_load(ALERTS_PATH.read_text(encoding="utf-8"))
    names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    exprs = dict(zip(names, alert_queries(), strict=True))
    assert set(exprs) == set(ALERT_SIGNALS), "cover every alert rule in ALERT_SIGNALS"
    for name, expr in exprs.items():
        assert prom.query(expr) == [], f"{name} would fire on a healthy run"
        signal_expr, expected = ALERT_SIGNALS[name]
        assert normal(signal_expr) in normal(expr), (name, signal_expr, expr)
        result = prom.query(signal_expr)
        assert result, f"{name}: no data for {signal_expr}"
        for series in result:
            value = float(series["value"][1])
            assert not math.isnan(value) and expected(value), (name, series)

    # Prometheus loaded and evaluated every rule without error, and none is pending/firing.
    groups = prom.api("rules")["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == set(names)
    for name, rule in loaded.items():
        assert rule["health"] == "ok", (name, rule)
        assert rule["state"] == "inactive", (name, rule)

    # The controller stops cleanly on SIGTERM; then the LxrControllerDown expression has data.
    controller.proc.send_signal(signal.SIGTERM)
    assert controller.proc.wait(timeout=20) == 0, controller.log.read_text()
    down = exprs["LxrControllerDown"]
    wait_for(
        "Prometheus to notice the controller is down",
        lambda: [r["value"][1] for r in prom.query(down)] == ["0"],
        timeout=30,
    )
