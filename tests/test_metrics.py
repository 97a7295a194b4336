"""Unit tests for lxr.metrics: they parse the exposition text, like Prometheus would."""

from __future__ import annotations

import enum
import urllib.request

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lxr import metrics as metrics_mod
from lxr.metrics import (
    EXPERIMENT_PHASES,
    FAILURE_ACTIONS,
    RECONCILE_RESULTS,
    RESUBMISSION_REASONS,
    SUBMISSION_RESULTS,
    WORK_UNIT_PHASES,
    Metrics,
    StateSnapshot,
    parse_metrics_addr,
    serve,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Label names allowed anywhere: no experiment / job-id / work-unit labels, ever.
ALLOWED_LABELS = {"result", "phase", "cluster", "reason", "action", "command", "le"}


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def scrape_text(m: Metrics) -> str:
    return generate_latest(m.registry).decode()


def scrape(m: Metrics) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(scrape_text(m)):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def m(clock: FakeClock) -> Metrics:
    return Metrics(clock=clock)


def test_all_is_complete() -> None:
    # the order is ruff's RUF022 (isort-style), checked by `ruff check`
    assert len(set(metrics_mod.__all__)) == len(metrics_mod.__all__)
    for name in metrics_mod.__all__:
        assert hasattr(metrics_mod, name)


def test_fresh_metrics_are_zero(m: Metrics) -> None:
    s = scrape(m)
    for result in RECONCILE_RESULTS:
        assert value(s, "lxr_reconcile_total", result=result) == 0
    assert value(s, "lxr_reconcile_errors_total") == 0
    assert value(s, "lxr_workqueue_retries_total") == 0
    assert value(s, "lxr_workqueue_depth") == 0
    assert value(s, "lxr_leader") == 0
    assert value(s, "lxr_reconcile_duration_seconds_count") == 0
    # No snapshot yet: domain gauges are unknown, hence absent (not a misleading 0).
    assert series(s, "lxr_experiments") == {}
    assert series(s, "lxr_work_units") == {}
    assert series(s, "lxr_scheduler_snapshot_age_seconds") == {}


def test_private_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.reconcile_error()
    assert value(scrape(a), "lxr_reconcile_errors_total") == 1
    assert value(scrape(b), "lxr_reconcile_errors_total") == 0
    assert "lxr_" not in generate_latest(REGISTRY).decode()


def test_exposition_naming_conventions(m: Metrics, clock: FakeClock) -> None:
    m.known_cluster("hpc1")
    m.observe_reconcile("success", 0.1)
    m.scheduler_command("hpc1", "sbatch", 0.2, ok=True)
    m.set_snapshot(StateSnapshot({"Running": 1}, {("hpc1", "Running"): 1}, {"hpc1": clock.now}))
    families = list(text_string_to_metric_families(scrape_text(m)))
    assert families
    for family in families:
        assert family.name.startswith("lxr_"), family.name
        assert family.documentation, family.name
        if family.type == "counter":
            assert {s.name for s in family.samples} <= {
                family.name + "_total",
                family.name + "_created",
            }
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)


def test_known_cluster_preinitialises_counters(m: Metrics) -> None:
    m.known_cluster("hpc1")
    m.known_cluster("hpc1")  # idempotent
    s = scrape(m)
    for result in SUBMISSION_RESULTS:
        assert value(s, "lxr_submissions_total", cluster="hpc1", result=result) == 0
    for reason in RESUBMISSION_REASONS:
        assert value(s, "lxr_resubmissions_total", cluster="hpc1", reason=reason) == 0
    for action in FAILURE_ACTIONS:
        assert value(s, "lxr_task_failures_handled_total", cluster="hpc1", action=action) == 0
    assert value(s, "lxr_staging_bytes_total", cluster="hpc1") == 0
    assert len(series(s, "lxr_resubmissions_total")) == len(RESUBMISSION_REASONS)
    assert m.clusters() == {"hpc1"}


def test_observe_reconcile(m: Metrics) -> None:
    m.observe_reconcile("success", 0.02)
    m.observe_reconcile("success", 0.5)
    m.observe_reconcile("requeue", 3.0)
    m.reconcile_error()
    m.workqueue_retry()
    m.workqueue_retry()
    s = scrape(m)
    assert value(s, "lxr_reconcile_total", result="success") == 2
    assert value(s, "lxr_reconcile_total", result="requeue") == 1
    assert value(s, "lxr_reconcile_total", result="error") == 0
    assert value(s, "lxr_reconcile_errors_total") == 1
    assert value(s, "lxr_workqueue_retries_total") == 2
    assert value(s, "lxr_reconcile_duration_seconds_count") == 3
    assert value(s, "lxr_reconcile_duration_seconds_sum") == pytest.approx(3.52)
    assert value(s, "lxr_reconcile_duration_seconds_bucket", le="0.025") == 1
    assert value(s, "lxr_reconcile_duration_seconds_bucket", le="0.5") == 2
    assert value(s, "lxr_reconcile_duration_seconds_bucket", le="+Inf") == 3


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda m: m.observe_reconcile("ok", 1.0), ValueError),
        (lambda m: m.observe_reconcile("success", -1.0), ValueError),
        (lambda m: m.observe_reconcile("success", float("nan")), ValueError),
        (lambda m: m.submission("hpc1", "maybe"), ValueError),
        (lambda m: m.resubmission("hpc1", "Cosmic rays"), ValueError),
        (lambda m: m.failure_handled("hpc1", "Panic"), ValueError),
        (lambda m: m.submission("", "success"), ValueError),
        (lambda m: m.staged_bytes("hpc1", -5), ValueError),
        (lambda m: m.set_workqueue_depth(-1), ValueError),
    ],
)
def test_rejects_unbounded_or_invalid_values(m: Metrics, call, exc) -> None:
    with pytest.raises(exc):
        call(m)


def test_accepts_enum_members(m: Metrics) -> None:
    class Reason(str, enum.Enum):
        PREEMPTED = "Preempted"

    m.resubmission("hpc1", Reason.PREEMPTED)
    assert value(scrape(m), "lxr_resubmissions_total", cluster="hpc1", reason="Preempted") == 1


def test_domain_counters(m: Metrics) -> None:
    m.submission("hpc1", "success")
    m.submission("hpc1", "success")
    m.submission("hpc1", "error")
    m.resubmission("hpc1", "Preempted")
    m.resubmission("sge", "OutOfMemory")
    m.failure_handled("hpc1", "FailIndex")
    m.staged_bytes("hpc1", 1024)
    m.staged_bytes("hpc1", 512)
    s = scrape(m)
    assert value(s, "lxr_submissions_total", cluster="hpc1", result="success") == 2
    assert value(s, "lxr_submissions_total", cluster="hpc1", result="error") == 1
    assert value(s, "lxr_resubmissions_total", cluster="hpc1", reason="Preempted") == 1
    assert value(s, "lxr_resubmissions_total", cluster="hpc1", reason="NodeFail") == 0
    assert value(s, "lxr_resubmissions_total", cluster="sge", reason="OutOfMemory") == 1
    # first use of a cluster declares it: its other counters exist at 0
    assert value(s, "lxr_submissions_total", cluster="sge", result="success") == 0
    assert value(s, "lxr_task_failures_handled_total", cluster="hpc1", action="FailIndex") == 1
    assert value(s, "lxr_task_failures_handled_total", cluster="hpc1", action="FailJob") == 0
    assert value(s, "lxr_staging_bytes_total", cluster="hpc1") == 1536
    assert m.clusters() == {"hpc1", "sge"}


def test_workqueue_and_leader(m: Metrics) -> None:
    m.set_workqueue_depth(7)
    m.set_leader(True)
    s = scrape(m)
    assert value(s, "lxr_workqueue_depth") == 7
    assert value(s, "lxr_leader") == 1
    m.set_leader(False)
    assert value(scrape(m), "lxr_leader") == 0


def test_scheduler_command(m: Metrics) -> None:
    m.scheduler_command("hpc1", "squeue", 0.3, ok=True)
    s = scrape(m)
    # error counter exists at 0 as soon as the command has been used
    assert value(s, "lxr_scheduler_command_errors_total", cluster="hpc1", command="squeue") == 0
    assert (
        value(s, "lxr_scheduler_command_duration_seconds_count", cluster="hpc1", command="squeue")
        == 1
    )
    m.scheduler_command("hpc1", "squeue", 12.0, ok=False)
    s = scrape(m)
    assert value(s, "lxr_scheduler_command_errors_total", cluster="hpc1", command="squeue") == 1
    assert value(
        s, "lxr_scheduler_command_duration_seconds_sum", cluster="hpc1", command="squeue"
    ) == pytest.approx(12.3)
    assert (
        value(
            s,
            "lxr_scheduler_command_duration_seconds_bucket",
            cluster="hpc1",
            command="squeue",
            le="10.0",
        )
        == 1
    )


def test_time_scheduler_command(m: Metrics) -> None:
    with m.time_scheduler_command("hpc1", "sbatch"):
        pass
    with pytest.raises(RuntimeError), m.time_scheduler_command("hpc1", "sbatch"):
        raise RuntimeError("ssh: connection refused")
    s = scrape(m)
    labels = {"cluster": "hpc1", "command": "sbatch"}
    assert value(s, "lxr_scheduler_command_duration_seconds_count", **labels) == 2
    assert value(s, "lxr_scheduler_command_errors_total", **labels) == 1


def test_snapshot_gauges(m: Metrics, clock: FakeClock) -> None:
    m.known_cluster("idle")  # declared but has no work units
    m.set_snapshot(
        StateSnapshot(
            experiments_by_phase={"Running": 2, "Failed": 1},
            work_units_by_cluster_phase={("hpc1", "Running"): 5, ("hpc1", "BackOff"): 2},
            snapshot_time_by_cluster={"hpc1": clock.now - 42.0, "idle": clock.now - 1.0},
        )
    )
    clock.now += 8.0  # age is computed at scrape time
    s = scrape(m)
    assert series(s, "lxr_experiments") == {
        frozenset({("phase", p)}): {"Running": 2, "Failed": 1}.get(p, 0) for p in EXPERIMENT_PHASES
    }
    assert value(s, "lxr_work_units", cluster="hpc1", phase="Running") == 5
    assert value(s, "lxr_work_units", cluster="hpc1", phase="BackOff") == 2
    for phase in WORK_UNIT_PHASES:
        assert value(s, "lxr_work_units", cluster="idle", phase=phase) == 0
    assert len(series(s, "lxr_work_units")) == 2 * len(WORK_UNIT_PHASES)
    assert value(s, "lxr_scheduler_snapshot_age_seconds", cluster="hpc1") == 50.0
    assert value(s, "lxr_scheduler_snapshot_age_seconds", cluster="idle") == 9.0


def test_snapshot_age_counts_from_start_when_never_observed(m: Metrics, clock: FakeClock) -> None:
    m.known_cluster("down")
    clock.now += 600.0
    s = scrape(m)
    assert value(s, "lxr_scheduler_snapshot_age_seconds", cluster="down") == 600.0
    m.set_snapshot(StateSnapshot({}, {}, {}))
    assert value(scrape(m), "lxr_scheduler_snapshot_age_seconds", cluster="down") == 600.0


def test_snapshot_is_copied(m: Metrics) -> None:
    experiments = {"Running": 1}
    m.set_snapshot(StateSnapshot(experiments, {}, {}))
    experiments["Running"] = 99
    assert value(scrape(m), "lxr_experiments", phase="Running") == 1


def test_snapshot_unexpected_phase_is_still_exported(m: Metrics) -> None:
    m.set_snapshot(StateSnapshot({"Archived": 3}, {}, {}))
    s = scrape(m)
    assert value(s, "lxr_experiments", phase="Archived") == 3
    assert len(series(s, "lxr_experiments")) == len(EXPERIMENT_PHASES) + 1


def test_losing_leadership_clears_snapshot(m: Metrics) -> None:
    m.set_leader(True)
    m.set_snapshot(StateSnapshot({"Running": 1}, {("hpc1", "Running"): 1}, {}))
    assert value(scrape(m), "lxr_experiments", phase="Running") == 1
    m.set_leader(False)
    s = scrape(m)
    assert series(s, "lxr_experiments") == {}
    assert series(s, "lxr_work_units") == {}


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        (":9100", ("127.0.0.1", 9100)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_parse_metrics_addr(addr: str, expected: tuple[str, int]) -> None:
    assert parse_metrics_addr(addr) == expected


@pytest.mark.parametrize("addr", ["9464", "host:", "host:http", "::1:9464", "h:70000"])
def test_parse_metrics_addr_rejects(addr: str) -> None:
    with pytest.raises(ValueError):
        parse_metrics_addr(addr)


def test_serve_exposes_registry_over_http(m: Metrics) -> None:
    m.set_leader(True)
    m.submission("hpc1", "success")
    server = serve(m, "127.0.0.1", 0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert resp.status == 200
            body = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }
    assert value(samples, "lxr_leader") == 1
    assert value(samples, "lxr_submissions_total", cluster="hpc1", result="success") == 1
