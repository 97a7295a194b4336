"""A task's argv from a packaged executable, its staged paths and its executor.

Pure functions: which interpreter runs a Python package, how a container runtime wraps the
command, the shell prologue for lxm3's ``modules``/``log_directory``/``merge_output``, and
how xm args split into the command's positional part and lxr's keyword args.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from xmanager import xm
from xmanager.xm import utils as xm_utils

from lxr.api.container import oci_argv
from lxr.xm_cluster.packaging import ClusterExecutable
from lxr.xm_cluster.specs import PLACEHOLDER_RE

__all__ = [
    "default_python",
    "launcher_venv_env",
    "runtime_command",
    "split_args",
    "substitute",
]

#: runtimes that run an OCI image with `run` (the others are Singularity/Apptainer)
_OCI_RUNTIMES = ("docker", "podman")


def substitute(value: Any, paths: Mapping[str, str]) -> Any:
    """Fileset placeholders in ``value`` replaced by their staged directories."""
    if isinstance(value, str):
        return PLACEHOLDER_RE.sub(lambda m: paths[m.group(1)], value)
    return value


def split_args(
    args: xm.SequentialArgs, paths: Mapping[str, str]
) -> tuple[list[str], dict[str, Any]]:
    """``(argv after the command, keyword args)``, rendered as XManager renders them.

    Positional args and flat list/tuple values (XManager repeats the flag once per element,
    ``--x=1 --x=2``, as absl expects) become argv entries; other keyword values are lxr
    work-unit args (``--key=value``), a dict or nested list as its ``str()``, as XManager
    passes it. Positional args after a keyword arg are refused: lxr puts keyword args last.
    """
    positional: list[str] = []
    keywords: dict[str, Any] = {}
    items = args._items  # xm has no public accessor for the item order
    for item in items:
        if isinstance(item, xm.SequentialArgs._RegularItem):
            if keywords:
                raise ValueError(
                    f"positional argument {item.value!r} after keyword arguments: lxr passes "
                    "work-unit args as --key=value flags after the command"
                )
            positional.append(substitute(xm_utils.ARGV_ESCAPER(item.value), paths))
            continue
        value = args._kwvalues[item.name]
        if value is None:
            continue  # xm skips None: the program's default applies
        if isinstance(value, bool | int | float):
            keywords[item.name] = value
        elif type(value) in (list, tuple) and not any(type(v) in (list, tuple) for v in value):
            positional += [
                substitute(f"--{item.name}={xm_utils.ARGV_ESCAPER(v)}", paths) for v in value
            ]
        else:
            keywords[item.name] = substitute(xm_utils.ARGV_ESCAPER(value), paths)
    return positional, keywords


def default_python(scheduler: str, in_container: bool) -> str:
    """The interpreter of a Python package without ``python=``: ``python3`` on a local cluster
    (found first in the launching virtualenv, see :func:`launcher_venv_env`),
    ``python3.X`` of the launching interpreter's version on Slurm and Grid Engine, the image's
    ``python3`` in a container."""
    if in_container or scheduler == "local":
        return "python3"
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def launcher_venv_env() -> dict[str, str]:
    """The environment of the launching virtualenv, as its ``activate`` sets it (``VIRTUAL_ENV``
    and its ``bin`` first on ``PATH``), so local tasks see the packages installed there;
    empty outside a virtualenv."""
    if sys.prefix == sys.base_prefix:
        return {}
    bindir = os.path.join(sys.prefix, "bin")
    path = os.environ.get("PATH", os.defpath)
    parts = [p for p in path.split(os.pathsep) if p and p != bindir]
    return {"VIRTUAL_ENV": sys.prefix, "PATH": os.pathsep.join([bindir, *parts])}


def _prologue(executor: Any, name: str) -> list[str]:
    lines = [f"module load {shlex.quote(m)}" for m in getattr(executor, "modules", ()) or ()]
    log_dir = getattr(executor, "log_directory", None)
    if log_dir:
        base = f"{shlex.quote(log_dir)}/{shlex.quote(name)}-${{LXR_WORK_UNIT}}"
        lines += [
            f"mkdir -p {shlex.quote(log_dir)}",
            f"exec > >(tee -a {base}.out) 2> >(tee -a {base}.err >&2)",
        ]
    if getattr(executor, "merge_output", False):
        lines.append("exec 2>&1")
    return lines


def _wrap_shell(lines: Sequence[str], argv: list[str]) -> list[str]:
    if not lines:
        return argv
    script = "set -e\n" + "\n".join(lines) + '\nexec "$@"'
    return ["bash", "-c", script, "lxr-task", *argv]


def runtime_command(
    exe: ClusterExecutable,
    executor: Any,
    roots: Mapping[str, str],
    *,
    gpus: bool,
    scheduler: str,
) -> tuple[list[str], dict[str, str], str | None]:
    """``(command, env, working dir)`` of an executable staged at ``roots`` (blob -> path)."""
    env: dict[str, str] = {}
    workdir: str | None = None
    in_container = exe.image is not None or exe.image_blob is not None
    python = exe.python or default_python(scheduler, in_container)
    if exe.python is None and scheduler == "local" and not in_container:
        env.update(launcher_venv_env())
    if exe.kind == "python":
        env["PYTHONPATH"] = roots[exe.blob.name]
        if exe.module:
            command = [python, "-m", exe.module]
        else:
            script = "\n".join(exe.commands or []) + ' "$@"'
            command = ["bash", "-c", script, "bash"]
        if exe.requirements_blob is not None:
            req = shlex.quote(roots[exe.requirements_blob.name])
            install = (
                'deps="$(mktemp -d)"\n'
                f'{shlex.quote(python)} -m pip install --quiet --target "$deps" -r {req}\n'
                'export PYTHONPATH="$PYTHONPATH:$deps"'
            )
            command = _wrap_shell([install], command)
    elif exe.kind == "pex":
        command = [python, roots[exe.blob.name]]
    else:
        workdir = roots[exe.blob.name]
        command = list(exe.entrypoint or [])
    prologue = _prologue(executor, exe.name)
    if not in_container:
        return _wrap_shell(prologue, command), env, workdir
    image = roots[exe.image_blob.name] if exe.image_blob is not None else exe.image
    assert image is not None
    blobs_dir = roots[exe.blob.name].rsplit("/", 1)[0]
    runtime: str = exe.runtime or getattr(executor, "container_runtime", None) or "singularity"
    options = executor.runtime_flags(runtime) if hasattr(executor, "runtime_flags") else []
    if runtime in _OCI_RUNTIMES:
        if exe.image_blob is not None:
            raise ValueError(f"{runtime} cannot run a .sif image: use a docker:// URI")
        mount = ["-v", f"{blobs_dir}:{blobs_dir}:ro"]
        if runtime == "podman":
            # the working directory (workdir, when set, is where the task starts) and the
            # task's environment by name: lxr.api.container.OCI_SCRIPT
            argv = oci_argv(runtime, image, command, gpus=gpus, flags=[*mount, *options])
        else:
            ref = image.removeprefix("docker://")
            gpu = ["--gpus", "all"] if gpus else []
            wd = ["-w", workdir] if workdir else []
            wrapped = [runtime, "run", "--rm", *_docker_env(env), *mount]
            argv = [*wrapped, *gpu, *wd, *options, ref, *command]
    else:
        nv = ["--nv"] if gpus else []
        argv = [runtime, "exec", *nv, "--bind", blobs_dir, *options, image, *command]
    return _wrap_shell(prologue, argv), env, workdir


def _docker_env(env: Mapping[str, str]) -> list[str]:
    names = sorted({*env, "LXR_EXPERIMENT", "LXR_WORK_UNIT", "LXR_ATTEMPT"})
    out: list[str] = []
    for name in names:
        out += ["-e", name]
    return out
