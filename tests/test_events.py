"""The event log: what the controller records for submissions, retries, failures, successes
and deletions, and how ``lxr describe experiment`` / ``lxr get events`` show it.

Real local tasks run under a real in-process controller (:func:`lxr.testing.converge`); the CLI
runs as a subprocess against the same database. ``lxr get events -w`` only adds a polling
loop over the same query, so only the non-watch path is tested.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lxr.api.loader import load_objects
from lxr.store import EventInfo, NotFound, Store
from lxr.testing import converge, finished
from tests.conftest import REPO

LXR = [sys.executable, "-c", "from lxr.cli.main import main; main()"]

FLAKY = "import os, sys; sys.exit(1 if os.environ['LXR_ATTEMPT'] == '1' else 0)"
EXPERIMENT = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata:
  name: {name}
spec:
  cluster: local
  executable:
    command: [{python}, -c, "{code}"]
  workUnits: [{units}]
  backoffLimitPerIndex: 1
  backoff: {{initialSeconds: 0.2, jitter: 0}}
"""


def apply(store: Store, tmp_path: Path, name: str, code: str, units: int = 1) -> None:
    """Apply an experiment of ``units`` work units running ``python -c code``."""
    path = tmp_path / f"{name}.yaml"
    text = EXPERIMENT.format(
        name=name, python=sys.executable, code=code, units=", ".join(["{}"] * units)
    )
    path.write_text(text, encoding="utf-8")
    for item in load_objects(path):
        store.apply(item.obj)


def lxr(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI on the test's database (XDG_STATE_HOME is set by the state_home fixture);
    wide columns, so that rich does not fold the tables."""
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [*LXR, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def reasons(events: list[EventInfo]) -> list[str]:
    return [e.reason for e in events]


def find(events: list[EventInfo], reason: str, name: str | None = None) -> EventInfo:
    """The first event with ``reason`` (about object ``name``, if given)."""
    for e in events:
        if e.reason == reason and (name is None or e.name == name):
            return e
    raise AssertionError(f"no {reason} event for {name}: {events}")


def in_order(seq: list[str], *wanted: str) -> bool:
    """``wanted`` occur in ``seq`` in this order (not necessarily adjacent)."""
    it = iter(seq)
    return all(w in it for w in wanted)


@pytest.mark.slow
def test_submit_retry_success_and_failure_events(store: Store, tmp_path: Path) -> None:
    apply(store, tmp_path, "ev-flaky", FLAKY, units=2)
    apply(store, tmp_path, "ev-broken", "import sys; sys.exit(3)")
    converge(store, ["ev-flaky", "ev-broken"], timeout=90)

    flaky = store.list_events("ev-flaky")
    assert in_order(reasons(flaky), "Submitted", "Error", "Resubmitted", "Succeeded"), flaky
    first = find(flaky, "Submitted")
    assert (first.type, first.kind, first.name) == ("Normal", "Experiment", "ev-flaky")
    assert "2 task(s)" in first.message
    for index in (0, 1):  # each work unit failed once and is retried, with the budget shown
        failed = find(flaky, "Error", f"ev-flaky/{index}")
        assert (failed.type, failed.kind) == ("Warning", "WorkUnit")
        assert "attempt 1 ended: Error (exit code 1)" in failed.message
        assert "retry 1/1" in failed.message
    retried = set()  # "job 12: 2 task(s), retrying work unit(s) 0, 1 (tag ...)"
    for e in flaky:
        if e.reason == "Resubmitted":
            units = re.search(r"retrying work unit\(s\) ([\d, ]+) \(tag", e.message)
            assert units, e.message
            retried |= {int(u) for u in units.group(1).split(", ")}
    assert retried == {0, 1}
    assert "BackoffLimitExceeded" not in reasons(flaky)
    done = flaky[-1]
    assert (done.type, done.reason, done.kind) == ("Normal", "Succeeded", "Experiment")

    broken = store.list_events("ev-broken")
    assert in_order(
        reasons(broken), "Submitted", "Error", "Resubmitted", "BackoffLimitExceeded", "Failed"
    ), broken
    gave_up = find(broken, "BackoffLimitExceeded", "ev-broken/0")
    assert gave_up.type == "Warning"
    assert "attempt 2 ended: Error (exit code 3)" in gave_up.message
    assert "no retries left" in gave_up.message
    assert find(broken, "Failed", "ev-broken").type == "Warning"
    # events are scoped to their experiment
    assert not any(e.name.startswith("ev-flaky") for e in broken)

    out = lxr("get", "events", "ev-broken")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    shown = [line.split()[1:3] for line in lines[1:]]  # after the age ("3s"): TYPE REASON
    assert [r for _, r in shown] == reasons(broken)
    assert "workunit/ev-broken/0" in out.stdout and "experiment/ev-broken" in out.stdout
    assert "no retries left" in out.stdout
    assert "ev-flaky" not in out.stdout

    limited = lxr("get", "events", "ev-broken", "--limit", "1")
    assert limited.returncode == 0, limited.stderr
    assert len(limited.stdout.splitlines()) == 2 and "Failed" in limited.stdout

    everything = lxr("get", "events")
    assert everything.returncode == 0, everything.stderr
    assert "experiment/ev-flaky" in everything.stdout
    assert "experiment/ev-broken" in everything.stdout

    described = lxr("describe", "experiment", "ev-broken")
    assert described.returncode == 0, described.stderr
    for reason in ("Submitted", "Resubmitted", "BackoffLimitExceeded", "no retries left"):
        assert reason in described.stdout, (reason, described.stdout)
    described = lxr("describe", "experiment", "ev-flaky")
    assert described.returncode == 0, described.stderr
    assert "retry 1/1" in described.stdout and "Resubmitted" in described.stdout

    missing = lxr("get", "events", "no-such-experiment")
    assert missing.returncode == 1
    assert "not found" in missing.stderr


@pytest.mark.slow
def test_delete_records_cancellation(store: Store, tmp_path: Path) -> None:
    name = "ev-doomed"
    apply(store, tmp_path, name, "import time; time.sleep(120)")

    described: list[subprocess.CompletedProcess[str]] = []

    def delete_once_running() -> bool:
        if not described:
            if not any(wu.status.phase.value == "Running" for wu in store.list_work_units(name)):
                return False
            store.delete_experiment(name)
            # requested, not carried out yet: describe shows the request
            described.append(lxr("describe", "experiment", name))
            return False
        return finished(store, name)  # cancelled, then removed

    # One controller for the whole test: it cancels (and reaps) the task it started.
    converge(store, [name], timeout=90, until=delete_once_running)
    assert described[0].returncode == 0, described[0].stderr
    assert "Deleting" in described[0].stdout and "deletion requested" in described[0].stdout
    with pytest.raises(NotFound):
        store.get_experiment("ev-doomed")

    events = [e for e in store.list_events() if e.name.startswith("ev-doomed")]
    assert in_order(reasons(events), "Submitted", "Deleting", "Cancelling", "Deleted"), events
    cancelling = find(events, "Cancelling")
    assert cancelling.message == "cancelling 1 task(s): Deleted"
    assert find(events, "Deleted").message == "all tasks stopped; experiment removed"
    # a cancellation lxr asked for is not a failure: nothing retried, nothing failed
    assert not {"Error", "Cancelled", "Resubmitted", "Failed"} & set(reasons(events))

    out = lxr("get", "events")
    assert out.returncode == 0, out.stderr
    for reason in ("Deleting", "Cancelling", "Deleted"):
        assert reason in out.stdout
    # its events outlive it, but it can no longer be named
    gone = lxr("get", "events", "ev-doomed")
    assert gone.returncode == 1 and "not found" in gone.stderr
