"""Where a work unit runs: ``workingDir`` resolved when an experiment is applied or launched.

Desired state must not depend on the working directory of whichever process reconciles it
(``lxr controller run``, or any ``apply --wait``, ``wait`` or ``delete``). So the directory is
fixed at apply/launch time and recorded as an absolute path:

- On a cluster of **this machine** (no ``spec.ssh``: ``local``, or Slurm/Grid Engine run on
  the login node lxr runs on), a missing ``workingDir`` becomes the *base directory*: the
  directory of the YAML file (``lxr apply -f FILE``; for a directory of files, each file's
  own), the launch script's directory (``lxr launch``, lxm3's rule), or the current directory
  of the applying process (``lxr apply -f -``). A relative ``workingDir`` is taken relative to
  that base; ``~`` is expanded.
- On a cluster reached **over SSH**, local directories mean nothing: ``workingDir`` is kept
  as written. Tasks start in the login user's home directory there, and a relative
  ``workingDir`` is relative to it.

``command`` is recorded verbatim and runs in ``workingDir``: its program (``command[0]``) is
looked up on ``PATH`` unless it contains a ``/``, and every relative path in it, program or
argument, is relative to ``workingDir``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lxr.api.loader import Loaded
from lxr.api.resources import STAGED_BLOBS, Cluster, ClusterSpec, Executable, Experiment

__all__ = [
    "SCRIPT_SUFFIXES",
    "missing_script_paths",
    "resolve_executable",
    "resolve_loaded",
    "with_blobs_root",
]

#: arguments that name a program file, checked by :func:`missing_script_paths`
SCRIPT_SUFFIXES = (".py", ".sh", ".bash", ".pl", ".rb", ".R", ".jl", ".lua")


def resolve_executable(
    exe: Executable, base_dir: str | os.PathLike[str] | None, *, remote: bool
) -> Executable:
    """``exe`` with ``workingDir`` made absolute against ``base_dir`` (the current directory
    when None), unless the cluster is ``remote`` (over SSH), where it is kept as written."""
    if remote or (exe.working_dir or "").startswith(STAGED_BLOBS):
        return exe  # over SSH, or the unpacked tree of a staged package
    base = os.path.abspath(os.path.expanduser(os.fspath(base_dir) if base_dir else os.getcwd()))
    wd = exe.working_dir
    resolved = base if not wd else os.path.join(base, os.path.expanduser(wd))
    resolved = os.path.normpath(resolved)
    if resolved == wd:
        return exe
    return exe.model_copy(update={"working_dir": resolved})


def missing_script_paths(command: Sequence[str], working_dir: str) -> list[str]:
    """Entries of ``command`` that look like a script or program path (``./x``, ``a/b.py``,
    ``train.sh``) but name no file under ``working_dir``: a hint worth a warning at apply
    time, since the task would fail only later with "can't open file"."""
    missing = []
    for i, arg in enumerate(command):
        if not arg or arg.startswith("-") or any(c.isspace() for c in arg):
            continue
        if i == 0:
            looks_like_path = "/" in arg  # without one, the program is looked up on PATH
        else:
            looks_like_path = arg.startswith(("./", "../")) or arg.endswith(SCRIPT_SUFFIXES)
        if looks_like_path and not (Path(working_dir) / os.path.expanduser(arg)).exists():
            missing.append(arg)
    return missing


def _resolved(
    exe: Executable, field: str, item: Loaded, remote: bool, warnings: list[str]
) -> Executable:
    """``exe`` with its working dir resolved; a warning per script path missing there."""
    exe = resolve_executable(exe, item.base_dir, remote=remote)
    if not remote and not (exe.working_dir or "").startswith(STAGED_BLOBS):
        assert exe.working_dir is not None
        for arg in missing_script_paths(exe.command, exe.working_dir):
            warnings.append(
                f"{item.source}: {field}.command: {arg} does not exist in "
                f"workingDir {exe.working_dir} (relative paths in command are relative "
                "to workingDir, which defaults to the file's directory)"
            )
    return exe


def resolve_loaded(
    loaded: Sequence[Loaded], cluster_spec: Callable[[str], ClusterSpec | None]
) -> tuple[list[Loaded], list[str]]:
    """Every Experiment of ``loaded`` with its ``workingDir`` resolved against the directory
    of its file (see the module's doc), and warnings about script paths that do not exist
    there. ``cluster_spec(name)`` gives a cluster's spec (None when it does not exist: the
    experiment is then left as it is, for the caller's own check to refuse)."""
    batch = {i.obj.metadata.name: i.obj.spec for i in loaded if isinstance(i.obj, Cluster)}
    out: list[Loaded] = []
    warnings: list[str] = []
    for item in loaded:
        obj = item.obj
        if not isinstance(obj, Experiment):
            out.append(item)
            continue
        spec = batch.get(obj.spec.cluster) or cluster_spec(obj.spec.cluster)
        if spec is None:
            out.append(item)
            continue
        remote = spec.ssh is not None

        update: dict[str, object] = {}
        if obj.spec.executable is not None:
            update["executable"] = _resolved(
                obj.spec.executable, "spec.executable", item, remote, warnings
            )
        if obj.spec.components is not None:
            update["components"] = {
                name: c.model_copy(
                    update={
                        "executable": _resolved(
                            c.executable,
                            f"spec.components.{name}.executable",
                            item,
                            remote,
                            warnings,
                        )
                    }
                )
                for name, c in obj.spec.components.items()
            }
        new_spec = obj.spec.model_copy(update=update)
        out.append(dataclasses.replace(item, obj=obj.model_copy(update={"spec": new_spec})))
    return out, warnings


def with_blobs_root(exp: Experiment, root: str) -> Experiment:
    """``exp`` with :data:`STAGED_BLOBS` replaced by ``root`` (the absolute blob directory of a
    cluster on this machine, known at apply/launch time) in its command, environment,
    ``workingDir`` and work units' arguments and environment: desired state that names real
    paths. Over SSH the placeholder stays, for the controller to fill in at submission."""

    def fill(value: object) -> object:
        return value.replace(STAGED_BLOBS, root) if isinstance(value, str) else value

    def filled(exe: Executable) -> Executable:
        return exe.model_copy(
            update={
                "command": [str(fill(c)) for c in exe.command],
                "env": {k: str(fill(v)) for k, v in exe.env.items()},
                "working_dir": None if exe.working_dir is None else str(fill(exe.working_dir)),
            }
        )

    update: dict[str, object] = {}
    if exp.spec.executable is not None:
        update["executable"] = filled(exp.spec.executable)
    if exp.spec.components is not None:
        update["components"] = {
            name: c.model_copy(
                update={
                    "executable": filled(c.executable),
                    "args": {k: fill(v) for k, v in c.args.items()},
                    "env": {k: str(fill(v)) for k, v in c.env.items()},
                }
            )
            for name, c in exp.spec.components.items()
        }
    units = exp.spec.work_units
    if units is not None:
        units = [
            u.model_copy(
                update={
                    "args": {k: fill(v) for k, v in u.args.items()},
                    "env": {k: str(fill(v)) for k, v in u.env.items()},
                }
            )
            for u in units
        ]
    spec = exp.spec.model_copy(update={**update, "work_units": units})
    return exp.model_copy(update={"spec": spec})
