"""Container command lines, against golden output: what a YAML ``executable.container`` and an
xm ``Container`` executable become for podman, docker, Singularity and Apptainer (Debian 12
ships neither of the last two, so their lines are checked here, word by word), the podman
script run for real with a stand-in runtime, and the programs the preflight looks for."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

import lxr.xm_cluster as xc
from lxr.api.container import OCI_SCRIPT, container_argv, programs_needed
from lxr.api.resources import Container, Executable
from lxr.staging import Blob
from lxr.xm_cluster.commands import runtime_command
from lxr.xm_cluster.packaging import ClusterExecutable

CMD = ["python3", "-m", "app", "--lr=0.1"]


def test_podman_line_is_the_oci_script_with_flags_image_and_command() -> None:
    c = Container(image="docker://localhost/img:1", mounts=["/data:/mnt/data:ro", "/scratch"])
    assert container_argv(c, CMD, gpus=False) == [
        "bash",
        "-c",
        OCI_SCRIPT,
        "podman",
        "-v",
        "/data:/mnt/data:ro",
        "-v",
        "/scratch:/scratch",
        "localhost/img:1",
        *CMD,
    ]
    assert container_argv(c, CMD, gpus=True)[4:6] == ["--device", "nvidia.com/gpu=all"]


def test_docker_line() -> None:
    c = Container(image="python:3.11", runtime="docker", options=["--shm-size=1g"])
    assert container_argv(c, CMD, gpus=True) == [
        "bash",
        "-c",
        OCI_SCRIPT,
        "docker",
        "--gpus",
        "all",
        "--shm-size=1g",
        "python:3.11",
        *CMD,
    ]


@pytest.mark.parametrize("runtime", ["singularity", "apptainer"])
def test_singularity_and_apptainer_lines(runtime: str) -> None:
    c = Container(
        image="/images/jax.sif", runtime=runtime, mounts=["/data:/mnt/data"], options=["--cleanenv"]
    )
    assert container_argv(c, CMD, gpus=True) == [
        runtime,
        "exec",
        "--nv",
        "--bind",
        "/data:/mnt/data",
        "--cleanenv",
        "/images/jax.sif",
        *CMD,
    ]
    assert container_argv(c, CMD, gpus=False) == [
        runtime,
        "exec",
        "--bind",
        "/data:/mnt/data",
        "--cleanenv",
        "/images/jax.sif",
        *CMD,
    ]


def test_the_oci_script_binds_the_directory_and_passes_the_environment_by_name(
    tmp_path: Path,
) -> None:
    # a stand-in runtime that prints its argv: what podman would be given, word by word
    fake = tmp_path / "podman"
    fake.write_text('#!/bin/sh\nfor a; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "HOME": "/home/x",
        "LXR_WORK_UNIT": "3",
        "SECRET": "not on any command line",
        "XDG_RUNTIME_DIR": "/run/user/1",
    }
    out = subprocess.run(
        ["bash", "-c", OCI_SCRIPT, "podman", "-v", "/a:/a", "img", "echo", "a b"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[:3] == ["run", "--rm", "--network=host"]
    passed = {out[i + 1] for i, word in enumerate(out) if word == "-e"}
    assert passed == {"LXR_WORK_UNIT", "SECRET"}  # not PATH, HOME, PWD, XDG_*...
    assert "not on any command line" not in out
    cwd = os.path.realpath(tmp_path)
    assert out[-9:] == ["-v", f"{cwd}:{cwd}", "-w", cwd, "-v", "/a:/a", "img", "echo", "a b"]


def test_mounts_are_absolute_host_paths() -> None:
    for bad in ["data:/x", "/a:b", "/a:/b:rx", "/a:/b:/c"]:
        with pytest.raises(ValidationError):
            Container(image="i", mounts=[bad])


def test_yaml_container_reads_camel_case_and_refuses_unknown_runtimes() -> None:
    exe = Executable.model_validate(
        {"command": ["python3", "x.py"], "container": {"image": "img", "runtime": "apptainer"}}
    )
    assert exe.container is not None and exe.container.runtime.value == "apptainer"
    with pytest.raises(ValidationError):
        Executable.model_validate({"command": ["x"], "container": {"image": "i", "runtime": "rkt"}})


def _blob() -> Blob:
    return Blob(digest="0" * 64, source=None, suffix=".zip")  # type: ignore[arg-type]


@pytest.mark.parametrize("runtime", ["singularity", "apptainer"])
def test_xm_singularity_container_spelling_and_line(runtime: str, tmp_path: Path) -> None:
    sif = tmp_path / "img.sif"
    sif.write_bytes(b"sif")
    spec = xc.PythonPackage(xc.ModuleName("app.main"), path=str(tmp_path))
    container = xc.SingularityContainer(spec, image_path=str(sif))  # lxm3's keyword
    assert isinstance(container, xc.Container) and container.image == str(sif)
    assert xc.SingularityContainer(spec, str(sif)).image == str(sif)  # and positionally
    blob, image = _blob(), Blob(digest="1" * 64, source=None, suffix=".sif")  # type: ignore[arg-type]
    exe = ClusterExecutable(
        name="app", kind="python", blob=blob, module="app.main", image_blob=image
    )
    roots = {blob.name: "/stage/blobs/x.zip", image.name: "/stage/blobs/i.sif"}
    ex = xc.Slurm(cluster="c", container_runtime=runtime)
    command, env, _ = runtime_command(exe, ex, roots, gpus=False, scheduler="slurm")
    assert command == [
        runtime,
        "exec",
        "--bind",
        "/stage/blobs",
        "/stage/blobs/i.sif",
        "python3",
        "-m",
        "app.main",
    ]
    assert env == {"PYTHONPATH": "/stage/blobs/x.zip"}


def test_xm_podman_container_line() -> None:
    blob = _blob()
    exe = ClusterExecutable(
        name="app", kind="python", blob=blob, module="app.main", image="docker://localhost/i:1"
    )
    ex = xc.Slurm(cluster="c", container_runtime="podman", container_options=["--ipc=host"])
    command, _, _ = runtime_command(
        exe, ex, {blob.name: "/stage/blobs/x.zip"}, gpus=True, scheduler="slurm"
    )
    assert command == [
        "bash",
        "-c",
        OCI_SCRIPT,
        "podman",
        "--device",
        "nvidia.com/gpu=all",
        "-v",
        "/stage/blobs:/stage/blobs:ro",
        "--ipc=host",
        "localhost/i:1",
        "python3",
        "-m",
        "app.main",
    ]


def test_programs_needed() -> None:
    def needed(command: list[str], **container: str) -> list[str]:
        exe = Executable.model_validate(
            {"command": command, **({"container": container} if container else {})}
        )
        return programs_needed(exe)

    assert needed(["python3", "train.py"]) == ["python3"]
    assert needed(["python3", "train.py"], image="i") == ["podman"]
    assert needed(["python3"], image="i", runtime="apptainer") == ["apptainer"]
    assert needed(["./run.sh"]) == [] and needed(["/opt/x/bin/y"]) == []
    # a user's own bash -c: bash only, whatever $0 is called
    assert needed(["bash", "-c", 'exec foo "$@"', "foo"]) == ["bash"]
    # the xm launcher's wrappers: the prologue, then the program or runtime inside it
    prologue = ["bash", "-c", 'set -e\nmodule load cuda\nexec "$@"', "lxr-task"]
    assert needed([*prologue, "python3.11", "-m", "m"]) == ["bash", "python3.11"]
    assert needed([*prologue, "singularity", "exec", "i.sif", "python3"]) == ["bash", "singularity"]
    assert needed(["bash", "-c", OCI_SCRIPT, "podman", "img", "python3"]) == ["bash", "podman"]
