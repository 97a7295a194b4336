"""The command lines that run a task inside a container image, per runtime.

Pure functions of the container settings, shared by YAML experiments
(``spec.executable.container``) and the xm launcher's ``Container`` executables:

- podman/docker: ``bash -c OCI_SCRIPT RUNTIME FLAGS... IMAGE COMMAND...``. The script binds the
  task's working directory (``$PWD``, known only on the node) at the same path and makes it the
  container's working directory, passes every variable of the task's environment by name
  (``-e NAME``: values never appear on a command line) except the host's own (``PATH``,
  ``HOME``... : the image's stay), and uses the host's network (multi-node rendezvous, no
  per-container network setup on a compute node).
- Singularity/Apptainer: ``RUNTIME exec [--nv] [--bind M]... OPTIONS... IMAGE COMMAND...``;
  they bind the working directory and home and pass the environment themselves.

:func:`programs_needed` names what must be on the cluster's ``PATH`` for an executable (the
runtime, or the command's own program), for the preflight check before any submission.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxr.api.resources import Container, ContainerRuntime, Executable, ExperimentSpec

__all__ = [
    "HOST_ONLY_VARIABLES",
    "OCI_SCRIPT",
    "container_argv",
    "mount_flags",
    "oci_argv",
    "programs_needed",
    "programs_needed_by",
]

#: the host's variables an OCI container does not get (the image's own apply)
HOST_ONLY_VARIABLES = (
    "HOME",
    "HOSTNAME",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "LOGNAME",
    "MAIL",
    "OLDPWD",
    "PATH",
    "PWD",
    "PYTHONHOME",
    "SHELL",
    "SHLVL",
    "TERM",
    "TMPDIR",
    "USER",
    "XDG_*",
    "_",
)

#: runs ``$0 run`` (podman or docker) with the task's directory and environment; the rest of
#: the argv ("$@": flags, image, command) passes through untouched
OCI_SCRIPT = (
    "envs=()\n"
    "while IFS= read -r -d '' kv; do\n"
    "  n=${kv%%=*}\n"
    f"  case $n in {'|'.join(HOST_ONLY_VARIABLES)}) continue ;; esac\n"
    '  [[ $n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && envs+=(-e "$n")\n'
    "done < <(env -0)\n"
    'exec "$0" run --rm --network=host "${envs[@]}" -v "$PWD:$PWD" -w "$PWD" "$@"'
)

_OCI = (ContainerRuntime.PODMAN, ContainerRuntime.DOCKER)


def mount_flags(runtime: ContainerRuntime | str, mounts: Sequence[str]) -> list[str]:
    """``/src``, ``/src:/dst`` or ``/src:/dst:ro`` as the runtime's bind flags."""
    oci = ContainerRuntime(runtime) in _OCI
    out: list[str] = []
    for mount in mounts:
        parts = mount.split(":")
        mode = parts.pop() if parts[-1] in ("ro", "rw") and len(parts) > 1 else None
        src = parts[0]
        dst = parts[1] if len(parts) > 1 else src
        spec = f"{src}:{dst}" + (f":{mode}" if mode else "")
        out += ["-v", spec] if oci else ["--bind", spec]
    return out


def _gpu_flags(runtime: ContainerRuntime) -> list[str]:
    if runtime is ContainerRuntime.PODMAN:
        return ["--device", "nvidia.com/gpu=all"]  # CDI, as NVIDIA's container toolkit sets up
    if runtime is ContainerRuntime.DOCKER:
        return ["--gpus", "all"]
    return ["--nv"]


def oci_argv(
    runtime: ContainerRuntime | str,
    image: str,
    command: Sequence[str],
    *,
    gpus: bool,
    flags: Sequence[str] = (),
) -> list[str]:
    """podman/docker running ``command`` in ``image`` (see :data:`OCI_SCRIPT`); ``flags``
    (mounts, options) go before the image."""
    rt = ContainerRuntime(runtime)
    ref = image.removeprefix("docker://")
    gpu = _gpu_flags(rt) if gpus else []
    return ["bash", "-c", OCI_SCRIPT, rt.value, *gpu, *flags, ref, *command]


def container_argv(container: Container, command: Sequence[str], *, gpus: bool) -> list[str]:
    """The argv that runs ``command`` (the task's full argv) inside ``container``."""
    rt = container.runtime
    mounts = mount_flags(rt, container.mounts)
    if rt in _OCI:
        return oci_argv(
            rt, container.image, command, gpus=gpus, flags=[*mounts, *container.options]
        )
    nv = _gpu_flags(rt) if gpus else []
    return [rt.value, "exec", *nv, *mounts, *container.options, container.image, *command]


def _wrapped(command: Sequence[str]) -> list[str] | None:
    """The argv inside one of lxr's own ``bash -c`` wrappers, with its program first."""
    if len(command) < 4 or command[0] != "bash" or command[1] != "-c":
        return None
    script, name = command[2], command[3]
    if script == OCI_SCRIPT:
        return [name]  # the runtime: what runs inside the image is not the host's business
    if name == "lxr-task" and script.startswith("set -e\n") and script.endswith('\nexec "$@"'):
        return list(command[4:])  # the xm launcher's prologue (modules, log directory)
    return None


def programs_needed(executable: Executable) -> list[str]:
    """What must be on the cluster's ``PATH`` (``command -v``) for ``executable`` to start:
    its container runtime, or the program of its command (inside lxr's own wrappers too).
    Paths (``./run.sh``, ``/opt/x/bin/y``) and ``~`` are left to the task: they depend on
    the working directory and the node; so is everything of an executable that sets its own
    ``PATH`` (the login node's is not its)."""
    if "PATH" in executable.env:
        return []
    if executable.container is not None:
        return [executable.container.runtime.value]
    names: list[str] = []
    command: list[str] | None = list(executable.command)
    while command:
        program = command[0]
        if "/" not in program and not program.startswith("~") and program not in names:
            names.append(program)
        command = _wrapped(command)
    return names


def programs_needed_by(spec: ExperimentSpec) -> list[str]:
    """:func:`programs_needed` of the experiment's executable, or of each of its components."""
    executables = (
        [spec.executable]
        if spec.executable is not None
        else [c.executable for c in (spec.components or {}).values()]
    )
    names: list[str] = []
    for exe in executables:
        names += [n for n in programs_needed(exe) if n not in names]
    return names
