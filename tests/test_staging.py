"""Content-addressed staging: only missing blobs are sent, counted in bytes; dirs are 0700."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import anyio
import pytest

from lxr.api.resources import SSHConfig
from lxr.packaging import tar_tree
from lxr.schedulers.transport import LocalTransport
from lxr.staging import Blob, Stager, sha256_file, staged_bytes_total, summary_line


def _blob(path: Path, data: bytes, suffix: str = ".zip") -> Blob:
    path.write_bytes(data)
    return Blob(digest=sha256_file(path), source=path, suffix=suffix)


def test_second_stage_of_unchanged_blobs_uploads_zero_bytes(tmp_path: Path) -> None:
    a = _blob(tmp_path / "a", b"a" * 1000)
    b = _blob(tmp_path / "b", b"b" * 300)
    transport = LocalTransport()
    stager = Stager("c1", transport, str(tmp_path / "stage" / "c1"))

    first = anyio.run(stager.stage, [a, b])
    assert (first.artifacts, first.uploaded, first.present, first.bytes_uploaded) == (2, 2, 0, 1300)
    calls = transport.calls
    second = anyio.run(stager.stage, [a, b])
    assert (second.uploaded, second.present, second.bytes_uploaded) == (0, 2, 0)
    # nothing missing: the one existence check is the only command
    assert transport.calls - calls == 1
    assert stager.bytes_uploaded == 1300
    assert staged_bytes_total()["c1"] >= 1300
    assert summary_line([second]) == "staging: 2 artifacts, 0 bytes uploaded, 2 already present"

    c = _blob(tmp_path / "c", b"c" * 77)  # "changed code": a new digest
    third = anyio.run(stager.stage, [a, c])
    assert (third.uploaded, third.present, third.bytes_uploaded) == (1, 1, 77)
    staged = Path(third.path(c))
    assert staged.read_bytes() == b"c" * 77
    assert staged.name == f"{c.digest}.zip"


def test_staging_dirs_are_private_and_blobs_read_only(tmp_path: Path) -> None:
    a = _blob(tmp_path / "a", b"x")
    root = tmp_path / "new" / "stage"
    report = anyio.run(Stager("c2", LocalTransport(), str(root)).stage, [a])
    assert report.root == str(root)
    for d in (root.parent, root, root / "blobs"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert stat.S_IMODE(Path(report.path(a)).stat().st_mode) == 0o400


def test_tarballs_are_unpacked_once_into_a_directory(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(tree / "sub" / "run.sh", 0o755)
    tar = tmp_path / "t.tar.gz"
    tar_tree(tree, tar)
    blob = Blob(digest=sha256_file(tar), source=tar, suffix=".tar.gz", unpack=True)
    stager = Stager("c3", LocalTransport(), str(tmp_path / "stage"))
    report = anyio.run(stager.stage, [blob])
    unpacked = Path(report.path(blob))
    assert unpacked.is_dir() and os.access(unpacked / "sub" / "run.sh", os.X_OK)
    assert not (unpacked.parent / f"{blob.digest}.tar.gz").exists()
    again = anyio.run(stager.stage, [blob])
    assert (again.present, again.bytes_uploaded) == (1, 0)


@pytest.mark.integration
def test_sftp_staging_over_the_pooled_connection(dev_cluster: dict[str, str]) -> None:
    from lxr.schedulers.ssh import SSHTransport

    transport = SSHTransport(
        SSHConfig(
            host=dev_cluster["LXR_DEV_SSH_HOST"],
            port=int(dev_cluster["LXR_DEV_SSH_PORT"]),
            user=dev_cluster["LXR_DEV_SSH_USER"],
            identity_file=dev_cluster["LXR_DEV_SSH_KEY"],
            known_hosts=dev_cluster["LXR_DEV_SSH_KNOWN_HOSTS"],
        )
    )
    tmp = Path(f"/tmp/lxr-staging-test-{uuid.uuid4().hex}")
    tmp.mkdir()
    blob = _blob(tmp / "payload", os.urandom(5000))
    stager = Stager("dev-ssh", transport, f"~/.lxr/staging-test-{uuid.uuid4().hex[:8]}")

    async def main() -> tuple[int, int, int]:
        try:
            first = await stager.stage([blob])
            second = await stager.stage([blob])
            check = await transport.run(["stat", "-c", "%a", first.root + "/blobs"])
            await transport.run(["rm", "-rf", first.root])
            assert check.stdout.strip() == "700"
            return first.bytes_uploaded, second.bytes_uploaded, transport.connects
        finally:
            await transport.close()

    sent, again, connects = anyio.run(main)
    assert (sent, again, connects) == (5000, 0, 1)


def test_controller_exports_bytes_staged_by_launch_processes(store) -> None:
    from lxr.metrics import Metrics
    from lxr.reconciler.controller import Controller

    store.add_staged_bytes("local", 500)  # staged before this controller started
    metrics = Metrics()
    ctl = Controller(store, metrics=metrics)

    def exported() -> float | None:
        return metrics.registry.get_sample_value("lxr_staging_bytes_total", {"cluster": "local"})

    ctl.publish_snapshot()
    assert exported() == 0  # a counter starts with its process: earlier bytes are not replayed
    store.add_staged_bytes("local", 1234)  # a launch (another process) staged
    store.add_staged_bytes("gpu", 7)  # a cluster first staged to after the controller started
    ctl.publish_snapshot()
    ctl.publish_snapshot()  # read again: nothing new, no double count
    assert exported() == 1234
    assert metrics.registry.get_sample_value("lxr_staging_bytes_total", {"cluster": "gpu"}) == 7
