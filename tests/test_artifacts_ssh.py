"""Code shipped by the controller to the dev cluster's Slurm over SSH: a YAML package converges
and is uploaded once (``lxr_staging_bytes_total``), an upload cut by killing the sshd child that
serves it resumes and converges without a partial blob under its final name, and with
PostgreSQL a launch and a controller with different state directories converge on the bytes in
the store."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from lxr.metrics import Metrics
from lxr.reconciler.controller import Controller
from lxr.store import Store
from lxr.testing import converge
from tests.conftest import require

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
REMOTE_HOME = Path("/home/lxr")  # the dev cluster's login node is this machine


def _lxr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lxr.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env or os.environ,
        timeout=400,
        check=False,
    )


def _ssh(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", env["LXR_DEV_SSH_CONFIG"], "lxr-dev", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def staging(dev_cluster: dict[str, str]) -> object:
    """A staging directory of this test's own on the login node (removed afterwards), so that
    what other runs staged is not found there."""
    require(_ssh(dev_cluster, "squeue --me -h").returncode == 0, "Slurm over ssh failed")
    rel = f".lxr/staging-test-{secrets.token_hex(4)}"
    yield rel
    _ssh(dev_cluster, f"chmod -R u+w ~/{rel} 2>/dev/null; rm -rf ~/{rel}")


def _cluster_file(tmp_path: Path, staging: str) -> Path:
    text = (REPO / "examples" / "slurm" / "cluster.yaml").read_text()
    text = text.replace("  defaults:", f"  stagingDir: {staging}\n  defaults:")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def _experiment_file(tmp_path: Path, name: str, package: Path) -> Path:
    text = (REPO / "examples" / "package" / "slurm.yaml").read_text()
    text = text.replace("name: package-slurm", f"name: {name}")
    text = text.replace("path: ../xm/py_package", f"path: {package}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _staged(store: Store, name: str) -> list[tuple[int, int, str]]:
    exp = store.get_experiment(name)
    assert exp.status is not None
    return [(a.bytes, a.bytes_uploaded, a.phase.value) for a in exp.status.artifacts]


def test_a_yaml_package_converges_on_slurm_and_is_uploaded_once(
    store: Store, tmp_path: Path, staging: str
) -> None:
    assert _lxr("apply", "-f", str(_cluster_file(tmp_path, staging))).returncode == 0
    example = REPO / "examples" / "package" / "slurm.yaml"
    res = _lxr("apply", "-f", str(example))
    assert res.returncode == 0, res.stderr
    metrics = Metrics()

    def counter() -> float:
        value = metrics.registry.get_sample_value(
            "lxr_staging_bytes_total", {"cluster": "dev-slurm"}
        )
        return value or 0.0

    ctl = Controller(store, interval=0.5, local_interval=0.3, metrics=metrics)
    converge(store, ["package-slurm"], timeout=240, controller=ctl)
    exp = store.get_experiment("package-slurm")
    assert exp.status is not None and exp.status.phase.value == "Succeeded", exp.status
    [ref] = exp.spec.executable.artifacts
    assert _staged(store, "package-slurm") == [(ref.bytes, ref.bytes, "Staged")]
    assert counter() == ref.bytes
    logs = _lxr("logs", "experiment", "package-slurm", "--wu", "3")
    assert "lr=0.01 seed=2 loss=" in logs.stdout, logs.stdout + logs.stderr
    remote = REMOTE_HOME / staging / "blobs" / ref.staged_name
    assert remote.stat().st_size == ref.bytes

    # applied again unchanged: nothing to do
    again = _lxr("apply", "-f", str(example))
    assert "experiment/package-slurm unchanged" in again.stdout, again.stdout + again.stderr
    # the same code for another experiment: on the cluster already, 0 bytes
    package = REPO / "examples" / "xm" / "py_package"
    _lxr("apply", "-f", str(_experiment_file(tmp_path, "package-same", package)))
    converge(store, ["package-same"], timeout=240, controller=ctl)
    assert _staged(store, "package-same") == [(ref.bytes, 0, "Staged")]
    assert counter() == ref.bytes
    # one source file changed: one new zip
    changed = tmp_path / "py_package"
    shutil.copytree(package, changed)
    train = changed / "src" / "sweep_demo" / "train.py"
    train.write_text(train.read_text() + "\n# changed\n")
    _lxr("apply", "-f", str(_experiment_file(tmp_path, "package-changed", changed)))
    converge(store, ["package-changed"], timeout=240, controller=ctl)
    [(size, sent, phase)] = _staged(store, "package-changed")
    assert sent == size > 0 and phase == "Staged"
    assert counter() == ref.bytes + size
    blobs = sorted(p.name for p in (REMOTE_HOME / staging / "blobs").iterdir())
    assert len(blobs) == 2 and all(b.endswith(".zip") for b in blobs), blobs


def _files_experiment(tmp_path: Path, folder: Path) -> Path:
    path = tmp_path / "big.yaml"
    path.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: big}\n"
        "spec:\n  cluster: dev-slurm\n  executable:\n"
        f"    package: {{path: {folder}, kind: files}}\n"
        "    command: [sh, -c, 'wc -c < \"$LXR_PACKAGE/big.bin\"']\n"
        "  workUnits: [{}]\n"
    )
    return path


def _holder_of(path: Path) -> int | None:
    """The pid of a process with ``path`` open (the sftp-server writing it)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == str(path):
                    return int(proc.name)
        except OSError:
            continue
    return None


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_an_upload_cut_by_killing_its_sshd_resumes_and_converges(
    store: Store, tmp_path: Path, staging: str
) -> None:
    assert _lxr("apply", "-f", str(_cluster_file(tmp_path, staging))).returncode == 0
    folder = tmp_path / "big"
    folder.mkdir()
    size = 50 * 1024 * 1024
    (folder / "big.bin").write_bytes(os.urandom(size))
    res = _lxr("apply", "-f", str(_files_experiment(tmp_path, folder)))
    assert res.returncode == 0, res.stderr
    [ref] = store.get_experiment("big").spec.executable.artifacts
    blobs = REMOTE_HOME / staging / "blobs"
    final = blobs / f"{ref.digest}.tar.gz"
    part = blobs / f".{ref.digest}.tar.gz.part"
    seen: dict[str, object] = {"killed": None, "partial_final": [], "cut_at": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                if final.exists() and final.stat().st_size != ref.bytes:
                    seen["partial_final"].append(final.stat().st_size)  # type: ignore[attr-defined]
            except FileNotFoundError:
                pass
            if seen["killed"] is None:
                try:
                    grown = part.stat().st_size
                except FileNotFoundError:
                    grown = 0
                if grown > 5 * 1024 * 1024:
                    holder = _holder_of(part)
                    if holder is not None:
                        sshd = _parent(holder)  # the sshd child serving this connection
                        assert "sshd" in Path(f"/proc/{sshd}/cmdline").read_text()
                        os.kill(sshd, signal.SIGKILL)
                        seen["killed"], seen["cut_at"] = sshd, grown
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        converge(store, ["big"], timeout=300)
    finally:
        stop.set()
        watcher.join(5)
    assert seen["killed"] is not None, "the upload finished before it could be cut"
    assert seen["partial_final"] == [], seen
    exp = store.get_experiment("big")
    assert exp.status is not None and exp.status.phase.value == "Succeeded", exp.status
    reasons = [line for line in _lxr("get", "events", "big").stdout.splitlines()]
    assert any("UploadFailed" in line for line in reasons), reasons
    assert (blobs / ref.digest / "big.bin").stat().st_size == size  # unpacked, whole
    assert not part.exists() and not final.exists()
    logs = _lxr("logs", "experiment", "big", "--wu", "0")
    assert logs.stdout.strip() == str(size), logs.stdout + logs.stderr
    # resumed, not restarted: what reached the cluster before the cut was not sent again
    assert store.staged_bytes()["dev-slurm"] == ref.bytes
    [uploaded] = [line for line in reasons if "Uploaded" in line]
    resumed = int(uploaded.split("resumed at ")[1].split()[0])
    assert 0 < resumed < ref.bytes, uploaded


@pytest.mark.timeout(600)  # a launch builds the package; a loaded machine takes minutes
def test_postgres_a_launch_returns_at_once_and_another_hosts_controller_stages_from_the_store(
    dev_cluster: dict[str, str], postgres_url: str, tmp_path: Path, staging: str
) -> None:
    launcher_state, controller_state = tmp_path / "laptop", tmp_path / "controller-host"
    base = {**os.environ, "LXR_DATABASE_URL": postgres_url}
    base.pop("LXR_CLUSTER", None)
    laptop = {**base, "XDG_STATE_HOME": str(launcher_state)}
    assert _lxr("apply", "-f", str(_cluster_file(tmp_path, staging)), env=laptop).returncode == 0
    store = Store(postgres_url)
    # the "other host": its own state directory, the same database, running before the launch
    other = {**base, "XDG_STATE_HOME": str(controller_state)}
    log = (tmp_path / "controller.log").open("w")
    ctl = subprocess.Popen(
        [sys.executable, "-m", "lxr.cli", "controller", "run"],
        env=other, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()  # the child has its own copy
    try:
        deadline = time.monotonic() + 60
        while store.lease() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        res = _lxr("launch", str(REPO / "examples" / "xm" / "launch_slurm.py"), env=laptop)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "bytes recorded in the store; the controller stages them" in res.stdout
        [exp] = store.list_experiments()
        digests = {a.digest for a in exp.spec.executable.artifacts}
        assert digests and all(store.has_artifact(d) for d in digests)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                exp = store.get_experiment(exp.metadata.name)
            except OperationalError:  # another test restarts PostgreSQL: look again
                time.sleep(1)
                continue
            if exp.status is not None and exp.status.phase.value in ("Succeeded", "Failed"):
                break
            time.sleep(1)
        assert exp.status is not None and exp.status.phase.value == "Succeeded", (
            exp.status,
            (tmp_path / "controller.log").read_text()[-3000:],
        )
        # the controller uploaded (its events), from the database's chunks via its own cache
        events = _lxr("get", "events", exp.metadata.name, env=laptop).stdout
        assert "Uploaded" in events and "ArtifactsStaged" in events, events
        cached = {p.name for p in (controller_state / "lxr" / "blob-cache").iterdir()}
        assert digests <= cached
        assert not (launcher_state / "lxr" / "blob-cache").exists()
        assert sum(a.bytes_uploaded for a in exp.status.artifacts) > 0
    finally:
        ctl.terminate()
        ctl.wait(30)
        store.close()
