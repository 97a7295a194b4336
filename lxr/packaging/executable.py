"""``spec.executable.package`` built at apply time: the folder becomes one content-addressed
artifact, recorded in ``spec.executable.artifacts``, and the executable learns where the
cluster will have it (as :data:`~lxr.api.resources.STAGED_BLOBS` paths the controller fills in):

- ``python``: the zip goes first on ``PYTHONPATH``;
- ``universal``: tasks run in the unpacked tree (``workingDir``, unless given);
- ``files``: the unpacked tree, for the command to read.

Every kind sets ``LXR_PACKAGE`` to the staged path. Rebuilding unchanged sources is skipped and
gives the same digest, so applying the same file again changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lxr.api.artifacts import staged_path
from lxr.api.resources import STAGED_BLOBS, ArtifactRef, Executable, PackageKind
from lxr.packaging import build_folder, build_python_package, build_universal_package
from lxr.staging import Blob

__all__ = ["PACKAGE_ARTIFACT", "build_executable_package", "package_executable"]

#: the name of the artifact a package becomes
PACKAGE_ARTIFACT = "package"


def build_executable_package(exe: Executable, base_dir: str | os.PathLike[str] | None) -> Blob:
    """Build ``exe.package`` (a relative path is relative to ``base_dir``, else the cwd)."""
    pkg = exe.package
    assert pkg is not None
    path = _absolute(pkg.path, base_dir)
    if pkg.kind is PackageKind.PYTHON:
        return build_python_package(path, include=pkg.include, exclude=pkg.exclude)
    if pkg.kind is PackageKind.UNIVERSAL:
        script = Path(os.path.expanduser(pkg.build_script)) if pkg.build_script else None
        return build_universal_package(path, script, include=pkg.include, exclude=pkg.exclude)
    return build_folder(path, include=pkg.include, exclude=pkg.exclude)


def _absolute(path: str, base_dir: str | os.PathLike[str] | None) -> Path:
    p = Path(os.path.expanduser(path))
    if not p.is_absolute():
        p = Path(base_dir or os.getcwd()) / p
    return p.resolve()


def package_executable(
    exe: Executable,
    base_dir: str | os.PathLike[str] | None,
    put: Callable[[Blob], None] | None = None,
) -> Executable:
    """``exe`` with its package built and recorded (``put`` stores the blob), or ``exe`` as it
    is without a package."""
    pkg = exe.package
    if pkg is None:
        return exe
    blob = build_executable_package(exe, base_dir)
    if put is not None:
        put(blob)
    ref = ArtifactRef(
        name=PACKAGE_ARTIFACT,
        digest=blob.digest,
        bytes=blob.size,
        suffix=blob.suffix,
        unpack=blob.unpack,
    )
    where = staged_path(ref)
    env = dict(exe.env)
    env["LXR_PACKAGE"] = where
    if pkg.kind is PackageKind.PYTHON:
        # a path of an earlier build (a re-applied `get -o yaml`) is replaced, not kept
        rest = [p for p in env.get("PYTHONPATH", "").split(":") if p and STAGED_BLOBS not in p]
        env["PYTHONPATH"] = ":".join([where, *rest])
    working_dir = exe.working_dir
    if pkg.kind is PackageKind.UNIVERSAL and (not working_dir or STAGED_BLOBS in working_dir):
        working_dir = where
    others = [a for a in exe.artifacts if a.name != PACKAGE_ARTIFACT]
    return exe.model_copy(
        update={
            "package": pkg.model_copy(update={"path": str(_absolute(pkg.path, base_dir))}),
            "artifacts": [ref, *others],
            "env": env,
            "working_dir": working_dir,
        }
    )
