"""run_with_files: a submission's files and its command in one round trip over SSH (a tar
archive on the stdin of one ``sh -c``), and in two steps locally."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from pathlib import Path

import anyio
import pytest

from lxr.api.resources import SSHConfig
from lxr.schedulers.ssh import FILES_FAILED, SSHTransport, files_command
from lxr.schedulers.transport import LocalTransport, TransportError


def _members(archive: bytes) -> dict[str, tuple[int, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        out = {}
        for info in tar.getmembers():
            assert info.isfile(), info.name  # no directory members: mkdir makes them 0700
            fh = tar.extractfile(info)
            assert fh is not None
            out[info.name] = (info.mode, fh.read())
        return out


def test_absolute_paths_unpack_under_root_with_the_mode() -> None:
    files = {
        "/home/a b/jobs/t1/job.sbatch": b"#!/bin/bash\n",
        "/home/a b/jobs/t1/logs/.keep": b"",
        "/home/a b/jobs/t1/tasks table.tsv": b"0\tx\n",
    }
    packed = files_command(files)
    assert packed is not None
    script, archive = packed
    assert _members(archive) == {
        "home/a b/jobs/t1/job.sbatch": (0o644, b"#!/bin/bash\n"),
        "home/a b/jobs/t1/logs/.keep": (0o644, b""),
        "home/a b/jobs/t1/tasks table.tsv": (0o644, b"0\tx\n"),
    }
    assert "mkdir -p -- '/home/a b/jobs/t1' '/home/a b/jobs/t1/logs' &&" in script
    assert "umask 133 && tar -x -m -f - -C /" in script
    assert script.endswith('exec "$@" </dev/null')


def test_relative_paths_stay_relative_to_the_login_directory() -> None:
    packed = files_command({".lxr/staging/jobs/t/a": b"1", "top": b"2"}, mode=0o600)
    assert packed is not None
    script, archive = packed
    assert _members(archive) == {".lxr/staging/jobs/t/a": (0o600, b"1"), "top": (0o600, b"2")}
    assert "-C /" not in script and "umask 177 && tar -x -m -f -" in script


@pytest.mark.parametrize("paths", [["/abs/a", "rel/b"], ["/abs/../etc/x"], ["/"], ["."]], ids=str)
def test_paths_one_archive_cannot_hold_fall_back(paths: list[str]) -> None:
    assert files_command(dict.fromkeys(paths, b"x")) is None


def _shells() -> list[object]:
    busybox = shutil.which("busybox")
    return [
        pytest.param(None, id="sh+system-tar"),
        pytest.param(
            busybox,
            id="busybox",
            marks=pytest.mark.skipif(busybox is None, reason="busybox not installed"),
        ),
    ]


def _run_script(
    files: dict[str, bytes], argv: list[str], cwd: Path, busybox: str | None
) -> subprocess.CompletedProcess[bytes]:
    """The script as sshd would run it, on this machine (with busybox's sh and tar if asked)."""
    packed = files_command(files)
    assert packed is not None
    script, archive = packed
    env = dict(os.environ)
    shell = ["sh"]
    if busybox:
        bindir = cwd / ".busybox-bin"
        bindir.mkdir(exist_ok=True)
        for tool in ("tar", "mkdir"):
            if not (bindir / tool).exists():
                (bindir / tool).symlink_to(busybox)
        env["PATH"] = f"{bindir}:{env['PATH']}"
        shell = [busybox, "sh"]
    return subprocess.run(
        [*shell, "-c", script, "sh", *argv],
        input=archive,
        capture_output=True,
        cwd=cwd,
        env=env,
        check=False,
        timeout=30,
    )


@pytest.mark.parametrize("busybox", _shells())
def test_script_writes_files_then_runs_the_command(tmp_path: Path, busybox: str | None) -> None:
    root = tmp_path / "stage dir"
    files = {
        f"{root}/jobs/t1/job.sbatch": b"script\n",
        f"{root}/jobs/t1/logs/.keep": b"",
        f"{root}/jobs/t1/with space.tsv": b"table\n",
    }
    # the command sees its files, and the caller's umask (sbatch hands it to the job)
    old = os.umask(0o022)
    try:
        res = _run_script(files, ["sh", "-c", 'cat "$@"; umask', "sh", *files], tmp_path, busybox)
    finally:
        os.umask(old)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().split() == ["script", "table", "0022"]
    for path, data in files.items():
        assert Path(path).read_bytes() == data
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o644
    for d in (root, root / "jobs", root / "jobs/t1", root / "jobs/t1/logs"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d

    # relative paths land under the working directory (over SSH: the home)
    res = _run_script({"rel/a/b.txt": b"rel\n"}, ["cat", "rel/a/b.txt"], tmp_path, busybox)
    assert (res.returncode, res.stdout) == (0, b"rel\n")
    assert (tmp_path / "rel/a/b.txt").read_bytes() == b"rel\n"


@pytest.mark.parametrize("busybox", _shells())
def test_script_does_not_run_the_command_when_writing_fails(
    tmp_path: Path, busybox: str | None
) -> None:
    (tmp_path / "plain").write_bytes(b"")  # a file where a directory should be
    marker = tmp_path / "ran"
    res = _run_script({f"{tmp_path}/plain/sub/x": b"x"}, ["touch", str(marker)], tmp_path, busybox)
    assert res.returncode == FILES_FAILED
    assert b"writing the files failed" in res.stderr
    assert not marker.exists()


def test_local_transport_writes_then_runs(tmp_path: Path) -> None:
    seen: list[tuple[str, bool]] = []
    transport = LocalTransport(observer=lambda name, _s, ok: seen.append((name, ok)))
    files = {f"{tmp_path}/a/b/c.txt": b"c\n", f"{tmp_path}/a/d e.txt": b"d\n"}
    res = anyio.run(lambda: transport.run_with_files(files, ["cat", *files]))
    assert (res.returncode, res.stdout) == (0, "c\nd\n")
    assert seen == [("cat", True)] and transport.calls == 1
    assert stat.S_IMODE((tmp_path / "a/b").stat().st_mode) == 0o700


@pytest.mark.integration
def test_ssh_run_with_files_is_one_exec(dev_cluster: dict[str, str]) -> None:
    seen: list[tuple[str, bool]] = []
    transport = SSHTransport(
        SSHConfig(
            host=dev_cluster["LXR_DEV_SSH_HOST"],
            port=int(dev_cluster["LXR_DEV_SSH_PORT"]),
            user=dev_cluster["LXR_DEV_SSH_USER"],
            identity_file=dev_cluster["LXR_DEV_SSH_KEY"],
            known_hosts=dev_cluster["LXR_DEV_SSH_KNOWN_HOSTS"],
        ),
        observer=lambda name, _s, ok: seen.append((name, ok)),
    )
    base = f".lxr/rwf-test-{uuid.uuid4().hex[:8]}"  # relative: under the remote home
    files = {
        f"{base}/job/job.sbatch": b"one\n",
        f"{base}/job/logs/nested/x.txt": b"two\n",
        f"{base}/job/with space.tsv": b"three\n",
    }

    async def main() -> None:
        try:
            res = await transport.run_with_files(files, ["cat", *files])
            assert (res.returncode, res.stdout) == (0, "one\ntwo\nthree\n"), res.stderr
            assert res.argv == ("cat", *files)  # messages name the command, not the wrapper
            assert transport.calls == 1 and seen == [("cat", True)]
            assert transport._sftp is None  # no SFTP session was opened

            modes = await transport.run(
                ["stat", "-c", "%a %n", *files, f"{base}/job", f"{base}/job/logs/nested"]
            )
            assert [ln.split(" ", 1)[0] for ln in modes.stdout.splitlines()] == [
                *["644"] * 3,
                *["700"] * 2,
            ], modes.stdout

            # the command's own failure is its result, not an error of the transport
            res = await transport.run_with_files(
                {f"{base}/again": b""}, ["sh", "-c", "echo refused >&2; exit 3"]
            )
            assert (res.returncode, res.stderr, res.argv[0]) == (3, "refused\n", "sh")

            # writing fails (a file where a directory should be): raised, command not run
            with pytest.raises(TransportError, match="writing 1 file"):
                await transport.run_with_files(
                    {f"{base}/job/job.sbatch/sub/x": b""}, ["touch", f"{base}/ran"]
                )
            ran = await transport.run(["test", "-e", f"{base}/ran"])
            assert ran.returncode == 1
        finally:
            await transport.run(["rm", "-rf", base])
            await transport.close()

    anyio.run(main)
