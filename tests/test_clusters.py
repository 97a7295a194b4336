"""Clusters lxr cannot reach: the cause as a ``Reachable=False`` condition (get, describe,
events, metrics), ``delete experiment`` that does not hang on them, ``delete cluster`` that
refuses while experiments use it, and ``lxr check cluster``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import asyncssh
import pytest
import yaml

from lxr.api.resources import SSHConfig
from lxr.metrics import CONNECT_ERROR_REASONS, Metrics
from lxr.reconciler.reachability import connect_error, describe_error
from lxr.schedulers.ssh import SSHTransport
from lxr.schedulers.transport import CONNECT_REASONS, ConnectError, TransportError
from tests.conftest import REPO, require, run_cli

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

BROKEN = """\
apiVersion: lxr.dev/v1alpha1
kind: Cluster
metadata: {{name: broken-slurm}}
spec:
  scheduler: slurm
  ssh: {{host: 127.0.0.1, port: 1, user: lxr, identityFile: {key}, knownHosts: {known}}}
"""
EXPERIMENT = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  cluster: {cluster}
  executable: {{command: [bash, -c, 'sleep 600']}}
  workUnits: [{{args: {{i: 0}}}}]
"""


def run_lxr(*args: str, state: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_cli(state, *args, timeout=timeout)


def connect_reason(config: SSHConfig) -> ConnectError:
    async def go() -> ConnectError:
        transport = SSHTransport(config, connect_timeout=10)
        try:
            await transport.run(["true"])
        except ConnectError as exc:
            return exc
        finally:
            await transport.close()
        raise AssertionError("connected")

    return anyio.run(go)


# ------------------------------------------------------------------------------ the cause


def test_connection_refused_is_named() -> None:
    err = connect_reason(SSHConfig(host="127.0.0.1", port=1, user="lxr"))
    assert err.reason == "ConnectionRefused"
    assert err.message == "connection refused to 127.0.0.1:1"


def test_a_missing_identity_file_is_named(tmp_path: Path) -> None:
    key = tmp_path / "no-such-key"
    err = connect_reason(SSHConfig(host="127.0.0.1", port=1, user="lxr", identity_file=str(key)))
    assert err.reason == "ClientConfig"
    assert err.message == f"cannot read {key}: No such file or directory"


def test_exception_groups_are_unwrapped_to_the_cause() -> None:
    inner = ConnectError("ConnectionRefused", "connection refused to 127.0.0.1:1")
    group = BaseExceptionGroup("unhandled errors in a TaskGroup", [inner])
    assert describe_error(group) == "connection refused to 127.0.0.1:1"
    nested = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [ValueError("bad")])])
    assert describe_error(nested) == "ValueError: bad"
    try:
        try:
            raise inner
        except ConnectError as exc:
            raise TransportError("wrapped") from exc
    except TransportError as wrapped:
        assert connect_error(wrapped) is inner
    assert connect_error(ValueError("x")) is None


def test_metric_reasons_are_the_transport_reasons() -> None:
    assert CONNECT_ERROR_REASONS == CONNECT_REASONS


# ------------------------------------------------------------------------------ end to end


def test_unreachable_cluster_shows_its_cause_and_never_traps_experiments(tmp_path: Path) -> None:
    state = tmp_path / "state"
    files = tmp_path / "in"
    files.mkdir()
    key = tmp_path / "key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    (tmp_path / "known_hosts").write_text("")
    (files / "cluster.yaml").write_text(BROKEN.format(key=key, known=tmp_path / "known_hosts"))
    for name in ("exp-a", "exp-b"):
        (files / f"{name}.yaml").write_text(EXPERIMENT.format(name=name, cluster="broken-slurm"))
    out = run_lxr("apply", "-f", str(files), state=state)
    assert out.returncode == 0, out.stderr

    refused = run_lxr("delete", "cluster", "broken-slurm", state=state)
    assert refused.returncode == 1
    assert "used by 2 experiment(s): exp-a, exp-b" in refused.stderr

    started = time.monotonic()
    out = run_lxr("delete", "experiment", "exp-a", "--timeout", "60", state=state)
    took = time.monotonic() - started
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert took < 10, f"delete took {took:.1f}s"
    assert "experiment/exp-a deleted" in out.stdout
    assert "connection refused to 127.0.0.1:1" in out.stderr
    assert "experiment/exp-a removed here; none of its tasks had been submitted" in out.stderr
    assert "TaskGroup" not in out.stderr

    table = run_lxr("get", "clusters", state=state).stdout
    row = next(line for line in table.splitlines() if line.startswith("broken-slurm"))
    assert "False" in row and "ConnectionRefused: connection refused to 127.0.0.1:1" in row
    got = json.loads(run_lxr("get", "clusters", "broken-slurm", "-o", "json", state=state).stdout)
    (cond,) = got["status"]["conditions"]
    assert cond["type"] == "Reachable" and cond["status"] == "False"
    assert cond["reason"] == "ConnectionRefused"
    assert cond["message"] == "connection refused to 127.0.0.1:1"
    assert cond["lastTransitionTime"]
    described = run_lxr("describe", "cluster", "broken-slurm", state=state).stdout
    assert any(
        line.split()[:3] == ["Reachable", "False", "ConnectionRefused"]
        and line.endswith("connection refused to 127.0.0.1:1")
        for line in described.splitlines()
    ), described
    assert "exp-b" in described  # the experiments on it
    events = run_lxr("get", "events", state=state).stdout
    reasons = [line.split()[2] for line in events.splitlines()[1:]]
    assert reasons.count("Unreachable") == 1, events  # one event, not one per retry
    assert "DeletedUnreachable" in events

    # --wait-for-cancel insists: it waits (here until its timeout) and removes nothing
    out = run_lxr(
        "delete", "experiment", "exp-b", "--wait-for-cancel", "--timeout", "3", state=state
    )
    assert out.returncode == 1 and "timed out" in out.stderr, (out.stdout, out.stderr)
    assert run_lxr("get", "experiments", "exp-b", state=state).returncode == 0
    out = run_lxr("delete", "experiment", "exp-b", state=state)
    assert out.returncode == 0, out.stderr
    out = run_lxr("delete", "cluster", "broken-slurm", state=state)
    assert out.returncode == 0, out.stderr
    assert "broken-slurm" not in run_lxr("get", "clusters", state=state).stdout
    check = run_lxr("check", "cluster", "local", state=state)
    assert check.returncode == 0 and "0 failed" in check.stdout, check.stdout


def test_connect_errors_are_counted_and_one_event_per_change(store) -> None:
    from lxr.api.loader import parse_object
    from lxr.reconciler.controller import Controller
    from tests.test_metrics import scrape, value

    doc = {
        "apiVersion": "lxr.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "down"},
        "spec": {"scheduler": "sge", "ssh": {"host": "127.0.0.1", "port": 1}},
    }
    store.apply(parse_object(doc, "t").obj)
    store.apply(parse_object(yaml.safe_load(EXPERIMENT.format(name="e", cluster="down")), "t").obj)
    metrics = Metrics()
    controller = Controller(store, metrics=metrics)
    for _ in range(3):
        controller.queue = type(controller.queue)()  # no backoff between the passes
        anyio.run(controller.run_once)
    samples = scrape(metrics)
    assert (
        value(
            samples, "lxr_cluster_connect_errors_total", cluster="down", reason="ConnectionRefused"
        )
        == 3
    )
    assert (
        value(samples, "lxr_cluster_connect_errors_total", cluster="down", reason="HostKeyMismatch")
        == 0
    )
    assert [e.reason for e in store.cluster_events("down")] == ["Unreachable"]
    (cond,) = store.cluster_status("down").conditions
    assert (cond.status.value, cond.reason) == ("False", "ConnectionRefused")


# ------------------------------------------------------------------------------ real sshd


@pytest.mark.integration
def test_host_key_mismatch_and_wrong_key_against_the_real_sshd(
    dev_cluster: dict[str, str], tmp_path: Path
) -> None:
    host, port = dev_cluster["LXR_DEV_SSH_HOST"], int(dev_cluster["LXR_DEV_SSH_PORT"])
    user, key = dev_cluster["LXR_DEV_SSH_USER"], dev_cluster["LXR_DEV_SSH_KEY"]
    known = dev_cluster["LXR_DEV_SSH_KNOWN_HOSTS"]
    require(os.access(key, os.R_OK), f"cannot read the dev cluster key {key}")
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)

    # a known_hosts entry for the host, but with another key: a mismatch
    wrong_known = tmp_path / "known_hosts"
    pub = (tmp_path / "other.pub").read_text().split()
    wrong_known.write_text(f"[{host}]:{port} {pub[0]} {pub[1]}\n")
    err = connect_reason(
        SSHConfig(host=host, port=port, user=user, identity_file=key, known_hosts=str(wrong_known))
    )
    assert err.reason == "HostKeyMismatch"
    assert err.message.startswith(f"host key mismatch for {host}:{port}")

    # no entry at all: unknown, said so
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    err = connect_reason(
        SSHConfig(host=host, port=port, user=user, identity_file=key, known_hosts=str(empty))
    )
    assert err.reason == "HostKeyUnknown" and "is not in" in err.message

    # the right host key, a key the server does not accept
    err = connect_reason(
        SSHConfig(host=host, port=port, user=user, identity_file=str(other), known_hosts=known)
    )
    assert err.reason == "PermissionDenied"
    assert err.message == f"permission denied (publickey) for {user}@{host}:{port} with {other}"


@pytest.mark.integration
def test_check_cluster_runs_the_preflight(dev_cluster: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / "state"
    for example in ("slurm", "sge"):
        out = run_lxr("apply", "-f", str(REPO / "examples" / example / "cluster.yaml"), state=state)
        assert out.returncode == 0, out.stderr
    slurm = run_lxr("check", "cluster", "dev-slurm", state=state)
    assert slurm.returncode == 0, (slurm.stdout, slurm.stderr)
    lines = slurm.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == ["ok"] * 5, lines
    assert "MaxArraySize=10001" in slurm.stdout
    assert "sacct answers" in slurm.stdout
    assert "/home/lxr/.lxr/staging is writable" in slurm.stdout
    assert lines[-1] == "cluster/dev-slurm: 5 ok, 0 failed"
    sge = run_lxr("check", "cluster", "sge-dev", state=state)
    assert sge.returncode == 0, (sge.stdout, sge.stderr)
    assert "max_aj_tasks=" in sge.stdout and "qsub, qstat" in sge.stdout

    # a wrong key: the connection fails with the cause, the rest is skipped, exit 1
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    cluster = (REPO / "examples" / "slurm" / "cluster.yaml").read_text()
    cluster = cluster.replace("identityFile: /var/lib/lxr-dev/id_ed25519", f"identityFile: {other}")
    (tmp_path / "c.yaml").write_text(cluster.replace("name: dev-slurm", "name: wrong-key"))
    assert run_lxr("apply", "-f", str(tmp_path / "c.yaml"), state=state).returncode == 0
    bad = run_lxr("check", "cluster", "wrong-key", state=state)
    assert bad.returncode == 1
    assert "FAIL connection" in bad.stdout and "permission denied (publickey)" in bad.stdout
    assert bad.stdout.count("skip") == 4


@pytest.mark.integration
def test_delete_on_a_cluster_gone_unreachable_names_the_jobs_that_may_still_run(
    dev_cluster: dict[str, str], tmp_path: Path
) -> None:
    """Submitted on Slurm, then the cluster becomes unreachable: delete still returns at once,
    and says which job may still run (the test cancels it itself afterwards)."""
    state = tmp_path / "state"
    cluster = (REPO / "examples" / "slurm" / "cluster.yaml").read_text()
    (tmp_path / "c.yaml").write_text(cluster)
    (tmp_path / "e.yaml").write_text(EXPERIMENT.format(name="sleeper", cluster="dev-slurm"))
    for f in ("c.yaml", "e.yaml"):
        assert run_lxr("apply", "-f", str(tmp_path / f), state=state).returncode == 0
    out = run_lxr(
        "wait", "experiment", "sleeper", "--for=condition=Submitted", "--timeout", "90",
        state=state,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout, out.stderr)
    (unit,) = json.loads(run_lxr("get", "workunits", "sleeper", "-o", "json", state=state).stdout)[
        "items"
    ]
    job = unit["status"]["attempts"][-1]["jobId"]
    assert job
    ssh = ["ssh", "-F", dev_cluster["LXR_DEV_SSH_CONFIG"], "lxr-dev"]
    try:
        (tmp_path / "c.yaml").write_text(cluster.replace("port: 2222", "port: 1"))
        assert run_lxr("apply", "-f", str(tmp_path / "c.yaml"), state=state).returncode == 0
        started = time.monotonic()
        out = run_lxr("delete", "experiment", "sleeper", "--timeout", "60", state=state)
        took = time.monotonic() - started
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert took < 10, f"delete took {took:.1f}s"
        assert "connection refused to 127.0.0.1:1" in out.stderr
        assert f"job(s) {job.split('_')[0]}" in out.stderr and "may still run" in out.stderr
        # it did not cancel: the job is still known to Slurm
        left = subprocess.run(
            [*ssh, f"squeue -h -j {job.split('_')[0]} -o %i"], capture_output=True, text=True
        )
        assert left.stdout.strip(), left
    finally:
        subprocess.run([*ssh, f"scancel {job.split('_')[0]}"], check=False)
