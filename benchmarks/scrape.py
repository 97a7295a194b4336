"""Scrape cost of the controller's /metrics at 1k and 100k work units, side by side.

The domain gauges (``lxr_experiments``, ``lxr_work_units``, ...) are computed once per
controller pass by :meth:`lxr.reconciler.controller.Controller.publish_snapshot` (two GROUP BY
queries) and only *read* at scrape time. This benchmark shows it:

1. for each size (1,000 and 100,000 work units), a fresh SQLite store gets one experiment of
   that many work units (``Store.apply`` bulk-inserts them), spread over five phases;
2. ``publish_snapshot()`` is timed (the per-pass cost of the gauges);
3. the metrics are served by :func:`lxr.metrics.serve`, and N scrapes of ``/metrics`` are
   timed (median, p99) while counting the SQL statements the store executes meanwhile;
4. the scrape medians of the two sizes are compared (ratio ~1: independent of the size).

Run:  uv run python benchmarks/scrape.py [--sizes 1000 100000] [--scrapes 500]
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event, text

from lxr.api.resources import Experiment
from lxr.metrics import Metrics, serve
from lxr.reconciler.controller import Controller
from lxr.store import Store

__all__ = ["Result", "main", "measure"]

# How the work units are spread over phases (by index modulo 5), so the GROUP BY has groups.
PHASES = ("Succeeded", "Running", "Queued", "Pending", "Failed")


@dataclass
class Result:
    """Measurements for one size."""

    work_units: int
    apply_seconds: float
    publish_seconds: list[float]
    scrape_seconds: list[float]
    scrape_bytes: int
    sql_during_scrapes: int
    exported_work_units: float

    @property
    def scrape_median(self) -> float:
        """Median scrape time (s)."""
        return statistics.median(self.scrape_seconds)

    @property
    def scrape_p99(self) -> float:
        """99th percentile scrape time (s)."""
        return statistics.quantiles(self.scrape_seconds, n=100)[98]


def experiment(n: int) -> Experiment:
    """One experiment of ``n`` work units (a 1-D sweep over ``seed``)."""
    return Experiment.model_validate(
        {
            "apiVersion": "lxr.dev/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": f"bench-{n}"},
            "spec": {
                "cluster": "local",
                "executable": {"command": ["true"]},
                "sweep": {"grid": {"seed": list(range(n))}},
            },
        }
    )


def scrape(conn: http.client.HTTPConnection) -> bytes:
    """One GET /metrics (a new connection each time, like Prometheus without keep-alive)."""
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, resp.status
    return body


def measure(n: int, scrapes: int, publishes: int, workdir: Path) -> Result:
    """Build a store of ``n`` work units and measure publish_snapshot() and scrapes."""
    store = Store(f"sqlite:///{workdir / f'lxr-{n}.db'}")
    try:
        started = time.perf_counter()
        store.apply(experiment(n))
        apply_seconds = time.perf_counter() - started
        with store.session() as s:
            cases = " ".join(f"WHEN {i} THEN '{p}'" for i, p in enumerate(PHASES))
            s.execute(text(f"UPDATE work_units SET phase = CASE idx % 5 {cases} END"))

        metrics = Metrics()
        metrics.set_leader(True)
        controller = Controller(store, metrics=metrics)
        controller.publish_snapshot()  # warm up (imports, SQLite page cache)
        publish_seconds = []
        for _ in range(publishes):
            t0 = time.perf_counter()
            controller.publish_snapshot()
            publish_seconds.append(time.perf_counter() - t0)

        statements = 0

        def count(*_args: object) -> None:
            nonlocal statements
            statements += 1

        event.listen(store.engine, "before_cursor_execute", count)
        server = serve(metrics, "127.0.0.1", 0)
        port = server.server_address[1]
        try:
            for _ in range(20):  # warm up
                scrape(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
            times = []
            body = b""
            for _ in range(scrapes):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                t0 = time.perf_counter()
                body = scrape(conn)
                times.append(time.perf_counter() - t0)
                conn.close()
        finally:
            server.shutdown()
            server.server_close()
            event.remove(store.engine, "before_cursor_execute", count)

        exported = sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("lxr_work_units{")
        )
        return Result(n, apply_seconds, publish_seconds, times, len(body), statements, exported)
    finally:
        store.close()


def cpu() -> str:
    """The CPU model and core count, as far as Linux tells."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def ms(seconds: float) -> str:
    """Milliseconds, 3 significant digits."""
    return f"{seconds * 1000:.3g}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--publishes", type=int, default=20)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lxr-scrape-bench-") as tmp:
        results = [measure(n, args.scrapes, args.publishes, Path(tmp)) for n in args.sizes]

    print(
        f"{platform.node()}: {cpu()}, "
        f"Python {platform.python_version()}, SQLite, {args.scrapes} scrapes per size, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print()
    print(
        "| work units | apply (s) | publish_snapshot median / max (ms) | scrape median (ms) "
        "| scrape p99 (ms) | body (bytes) | SQL statements during scrapes |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        assert r.exported_work_units == r.work_units, (r.exported_work_units, r.work_units)
        print(
            f"| {r.work_units:,} | {r.apply_seconds:.2f} "
            f"| {ms(statistics.median(r.publish_seconds))} / {ms(max(r.publish_seconds))} "
            f"| {ms(r.scrape_median)} | {ms(r.scrape_p99)} | {r.scrape_bytes:,} "
            f"| {r.sql_during_scrapes} |"
        )
    small, large = results[0], results[-1]
    print()
    print(
        f"scrape median ratio {large.work_units:,} / {small.work_units:,} work units: "
        f"{large.scrape_median / small.scrape_median:.2f}; publish_snapshot median ratio: "
        f"{statistics.median(large.publish_seconds) / statistics.median(small.publish_seconds):.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
