"""The packaging router: xm ``Packageable``s -> :class:`ClusterExecutable` (built locally once per
artifact per launch; staged to clusters when the experiment is written)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attr
from xmanager import xm

from lxr.packaging import (
    build_fileset,
    build_python_package,
    build_universal_package,
    file_blob,
)
from lxr.staging import Blob
from lxr.xm_cluster.specs import Container, Fileset, PythonPackage, UniversalPackage

__all__ = ["ClusterExecutable", "build_fileset_blob", "package_batch", "reset_build_cache"]

_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def reset_build_cache() -> None:
    """Forget what was built: each launch packages its artifacts again (once)."""
    with _cache_lock:
        _cache.clear()


def _once(key: str, build: Any) -> Any:
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = build()
    with _cache_lock:
        return _cache.setdefault(key, value)


@attr.s(auto_attribs=True, kw_only=True)
class ClusterExecutable(xm.Executable):
    """A packaged executable: its artifact(s) and how to run it once staged."""

    kind: str  # "python" | "universal"
    blob: Blob
    filesets: dict[str, Blob] = attr.Factory(dict)  # fileset uid -> its blob
    module: str | None = None
    commands: list[str] | None = None
    entrypoint: list[str] | None = None
    python: str = "python3"
    image: str | None = None  # a URI the runtime pulls, when not a staged .sif
    image_blob: Blob | None = None
    args: xm.SequentialArgs = attr.Factory(xm.SequentialArgs)
    env_vars: dict[str, str] = attr.Factory(dict)

    def blobs(self) -> list[Blob]:
        """Every artifact a task of this executable needs on its cluster."""
        out = [self.blob, *self.filesets.values()]
        if self.image_blob is not None:
            out.append(self.image_blob)
        return out


def build_fileset_blob(fileset: Fileset) -> Blob:
    """The fileset's artifact (built once per launch)."""
    files = {dst: Path(src) for src, dst in fileset.files}
    return _once(f"fileset:{fileset.uid}", lambda: build_fileset(files))


def _package_one(spec: xm.ExecutableSpec, packageable: xm.Packageable) -> ClusterExecutable:
    image: str | None = None
    image_blob: Blob | None = None
    if isinstance(spec, Container):
        if "://" in spec.image:
            image = spec.image
        else:
            path = spec.image
            image_blob = _once(f"image:{path}", lambda: file_blob(Path(path)))
        spec = spec.entrypoint
    if not isinstance(spec, (PythonPackage, UniversalPackage)):
        raise TypeError(
            f"{type(spec).__name__} cannot be packaged by lxr: use xm_cluster.PythonPackage, "
            "UniversalPackage or Container"
        )
    common: dict[str, Any] = {
        "name": spec.name,
        "image": image,
        "image_blob": image_blob,
        "args": xm.merge_args(packageable.args),
        "env_vars": {k: str(v) for k, v in packageable.env_vars.items()},
        "filesets": {fs.uid: build_fileset_blob(fs) for fs in spec.resources},
    }
    if isinstance(spec, PythonPackage):
        key = f"python:{spec.path}:{spec.extra_packages}:{spec.pip_args}"
        blob = _once(
            key,
            lambda: build_python_package(
                Path(spec.path),
                extra_packages=[Path(p) for p in spec.extra_packages],
                pip_args=spec.pip_args,
            ),
        )
        entry = spec.entrypoint
        commands = getattr(entry, "commands", None)
        return ClusterExecutable(
            kind="python",
            blob=blob,
            # duck-typed, as before: any entry point with module_name or commands
            module=getattr(entry, "module_name", None),
            commands=list(commands) if commands is not None else None,
            python=spec.python,
            **common,
        )
    universal = spec
    key = f"universal:{universal.path}:{universal.build_script}:{universal.build_args}"
    blob = _once(
        key,
        lambda: build_universal_package(
            Path(universal.path), Path(universal.build_script), universal.build_args
        ),
    )
    return ClusterExecutable(
        kind="universal", blob=blob, entrypoint=list(universal.entrypoint), **common
    )


def package_batch(packageables: Sequence[xm.Packageable]) -> list[xm.Executable]:
    """Build every packageable (each distinct artifact once)."""
    return [_package_one(p.executable_spec, p) for p in packageables]
