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
    build_pex,
    build_python_package,
    build_universal_package,
    file_blob,
)
from lxr.staging import Blob
from lxr.xm_cluster.specs import (
    Container,
    Fileset,
    PDMProject,
    PexBinary,
    PythonContainer,
    PythonPackage,
    UniversalPackage,
)

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

    kind: str  # "python" | "pex" | "universal"
    blob: Blob
    filesets: dict[str, Blob] = attr.Factory(dict)  # fileset uid -> its blob
    module: str | None = None
    commands: list[str] | None = None
    entrypoint: list[str] | None = None
    python: str | None = None  # None: chosen per cluster at launch (see PythonPackage)
    image: str | None = None  # a URI the runtime pulls, when not a staged .sif
    image_blob: Blob | None = None
    runtime: str | None = None  # the container runtime the spec requires (DockerContainer)
    requirements_blob: Blob | None = None  # pip requirements installed at task start
    args: xm.SequentialArgs = attr.Factory(xm.SequentialArgs)
    env_vars: dict[str, str] = attr.Factory(dict)

    def blobs(self) -> list[Blob]:
        """Every artifact a task of this executable needs on its cluster."""
        out = [self.blob, *self.filesets.values()]
        for extra in (self.image_blob, self.requirements_blob):
            if extra is not None:
                out.append(extra)
        return out


def build_fileset_blob(fileset: Fileset) -> Blob:
    """The fileset's artifact (built once per launch)."""
    files = {dst: Path(src) for src, dst in fileset.files}
    return _once(f"fileset:{fileset.uid}", lambda: build_fileset(files))


def _python_blob(spec: Any) -> Blob:
    key = f"python:{spec.path}:{spec.extra_packages}:{spec.pip_args}"
    return _once(
        key,
        lambda: build_python_package(
            Path(spec.path),
            extra_packages=[Path(p) for p in spec.extra_packages],
            pip_args=spec.pip_args,
        ),
    )


def _entry(entry: Any) -> dict[str, Any]:
    return {
        "module": entry.module_name if hasattr(entry, "module_name") else None,
        "commands": list(entry.commands) if hasattr(entry, "commands") else None,
    }


def _package_one(spec: xm.ExecutableSpec, packageable: xm.Packageable) -> ClusterExecutable:
    image: str | None = None
    image_blob: Blob | None = None
    runtime: str | None = None
    if isinstance(spec, Container):
        runtime = spec.runtime
        if "://" in spec.image:
            image = spec.image
        else:
            path = spec.image
            image_blob = _once(f"image:{path}", lambda: file_blob(Path(path)))
        spec = spec.entrypoint
    elif isinstance(spec, PythonContainer | PDMProject):
        image = f"docker://{spec.base_image}" if "://" not in spec.base_image else spec.base_image
    common: dict[str, Any] = {
        "name": spec.name,
        "image": image,
        "image_blob": image_blob,
        "runtime": runtime,
        "args": xm.merge_args(packageable.args),
        "env_vars": {k: str(v) for k, v in packageable.env_vars.items()},
        "filesets": {fs.uid: build_fileset_blob(fs) for fs in getattr(spec, "resources", [])},
    }
    if isinstance(spec, PythonPackage):
        return ClusterExecutable(
            kind="python",
            blob=_python_blob(spec),
            python=spec.python,
            **_entry(spec.entrypoint),
            **common,
        )
    if isinstance(spec, PythonContainer | PDMProject):
        req = spec.requirements_file()
        req_blob = _once(f"file:{req}", lambda: file_blob(Path(req))) if req else None
        return ClusterExecutable(
            kind="python",
            blob=_python_blob(spec),
            python="python3",
            requirements_blob=req_blob,
            **_entry(spec.entrypoint),
            **common,
        )
    if isinstance(spec, PexBinary):
        key = f"pex:{spec.path}:{spec.packages}:{spec.modules}:{spec.entrypoint}"
        blob = _once(
            key,
            lambda: build_pex(
                Path(spec.path),
                entry_point=spec.entrypoint.module_name,
                packages=spec.packages,
                modules=spec.modules,
            ),
        )
        return ClusterExecutable(kind="pex", blob=blob, python=spec.python, **common)
    if isinstance(spec, UniversalPackage):
        key = f"universal:{spec.path}:{spec.build_script}:{spec.build_args}"
        blob = _once(
            key,
            lambda: build_universal_package(
                Path(spec.path), Path(spec.build_script), spec.build_args
            ),
        )
        return ClusterExecutable(
            kind="universal", blob=blob, entrypoint=list(spec.entrypoint), **common
        )
    raise TypeError(
        f"{type(spec).__name__} cannot be packaged by lxr: use xm_cluster.PythonPackage, "
        "PexBinary, UniversalPackage, PythonContainer, PDMProject or a container of one"
    )


def package_batch(packageables: Sequence[xm.Packageable]) -> list[xm.Executable]:
    """Build every packageable (each distinct artifact once)."""
    return [_package_one(p.executable_spec, p) for p in packageables]
