"""Executable specs, as in lxm3: what to build and how to run it on a cluster."""

from __future__ import annotations

import os
import re
import sys
import uuid
import weakref
from pathlib import Path
from typing import NamedTuple

import attr
from xmanager import xm

__all__ = [
    "PLACEHOLDER_RE",
    "CommandList",
    "Container",
    "DockerContainer",
    "Fileset",
    "ModuleName",
    "PDMProject",
    "PexBinary",
    "PythonContainer",
    "PythonPackage",
    "SingularityContainer",
    "UniversalPackage",
    "fileset_by_uid",
    "placeholder",
    "resolve_path",
]

#: a fileset path in args/env before staging: rewritten to the staged directory at launch
_PLACEHOLDER = "{{lxr-fileset:%s}}"
PLACEHOLDER_RE = re.compile(r"\{\{lxr-fileset:([0-9a-f]{32})\}\}")


def resolve_path(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute relative to the launch script's directory (like xmanager's
    ``resolve_path_relative_to_launcher``, but evaluated each time: one process may run
    several launch scripts)."""
    path = os.fspath(path)
    if os.path.isabs(path):
        return path
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else ""
    if not script:
        script = getattr(sys.modules.get("__main__"), "__file__", "") or ""
    base = os.path.dirname(os.path.realpath(script)) if script else os.getcwd()
    return os.path.realpath(os.path.join(base, path))


def _name_from_path(path: str) -> str:
    return re.sub(r"\W", "_", os.path.basename(path.rstrip(os.sep))) or "package"


class ModuleName(NamedTuple):
    """Run ``python3 -m <module_name>``."""

    module_name: str


class CommandList(NamedTuple):
    """Run these shell commands (bash); the work unit's args go to the last one."""

    commands: list[str]


class Fileset(xm.BinaryDependency):
    """Extra files shipped with an executable: ``Fileset(files={local_path: path_in_set})``.

    :meth:`get_path` gives the path a job sees; it is a placeholder until launch, when it
    becomes the staged (content-addressed, read-only) directory.
    """

    def __init__(self, files: dict[str, str] | None = None) -> None:
        self.uid = uuid.uuid4().hex
        self._files: dict[str, str] = {}
        for src, dst in (files or {}).items():
            self.add_path(src, dst)
        _FILESETS[self.uid] = self

    def add_path(self, src: str, dst: str) -> None:
        """Add local file ``src`` as ``dst`` in the set."""
        self._files[dst] = resolve_path(src)

    def get_path(self, name: str, executor_spec: xm.ExecutorSpec | None = None) -> str:
        """The path of ``name`` as jobs see it."""
        del executor_spec  # the same on every cluster: the staged directory
        return f"{_PLACEHOLDER % self.uid}/{name}"

    @property
    def files(self) -> list[tuple[str, str]]:
        """``(local path, path in the set)`` pairs."""
        return [(src, dst) for dst, src in self._files.items()]


#: filesets by uid, so placeholders found in args can be packaged even if not listed as resources
_FILESETS: weakref.WeakValueDictionary[str, Fileset] = weakref.WeakValueDictionary()


def fileset_by_uid(uid: str) -> Fileset:
    """The fileset a placeholder names."""
    return _FILESETS[uid]


def _resolve_all(paths: list[str]) -> list[str]:
    return [resolve_path(p) for p in paths]


@attr.s(auto_attribs=True)
class PythonPackage(xm.ExecutableSpec):
    """A Python project installed with ``pip install --no-deps`` into one zip on ``PYTHONPATH``.

    Dependencies are not bundled: install them on the cluster (or in a container).
    ``python``: the interpreter tasks run. By default, on a ``local`` cluster it is
    ``python3`` of the virtualenv that ran the launch script (as if activated: its packages
    are importable); on Slurm and Grid Engine clusters it is ``python3.X`` of the launching
    interpreter's version; inside a container, the image's ``python3``. Give ``python=`` (a
    name on the cluster's ``PATH`` or an absolute path) to choose another.
    """

    entrypoint: ModuleName | CommandList
    path: str = attr.ib(converter=resolve_path, default=".")
    resources: list[Fileset] = attr.ib(converter=list, factory=list)
    extra_packages: list[str] = attr.ib(converter=_resolve_all, factory=list)
    pip_args: list[str] = attr.ib(converter=list, factory=lambda: ["--no-deps", "--no-compile"])
    python: str | None = None

    @property
    def name(self) -> str:
        """The executable's name: from the project directory."""
        return _name_from_path(self.path)


@attr.s(auto_attribs=True)
class PexBinary(xm.ExecutableSpec):
    """lxm3's PEX executable: ``pex`` (from PyPI: ``pip install 'lxr[pex]'``) packs
    ``packages`` (directories, ``--package``) and ``modules`` (files, ``--module``) of the
    project at ``path`` into one ``.pex`` that runs ``entrypoint``. Dependencies are not
    bundled (``--inherit-path=fallback``: they come from the interpreter's environment);
    ``dependencies`` are filesets shipped next to it. ``python`` as for
    :class:`PythonPackage`."""

    entrypoint: ModuleName
    path: str = attr.ib(converter=resolve_path, default=".")
    packages: list[str] = attr.ib(converter=list, factory=list, kw_only=True)
    modules: list[str] = attr.ib(converter=list, factory=list, kw_only=True)
    dependencies: list[Fileset] = attr.ib(converter=list, factory=list)
    python: str | None = attr.ib(default=None, kw_only=True)

    @property
    def resources(self) -> list[Fileset]:
        """The filesets shipped with it."""
        return self.dependencies

    @property
    def name(self) -> str:
        """The executable's name: from the project directory."""
        return _name_from_path(self.path)


@attr.s(auto_attribs=True)
class UniversalPackage(xm.ExecutableSpec):
    """Anything a build script can produce: it fills ``$BUILDDIR``; jobs run ``entrypoint``
    in the staged copy of that directory (read-only: write outputs elsewhere)."""

    entrypoint: list[str]
    build_script: str
    build_args: list[str] = attr.ib(converter=list, factory=list)
    path: str = attr.ib(converter=resolve_path, default=".")
    resources: list[Fileset] = attr.ib(converter=list, factory=list)

    def __attrs_post_init__(self) -> None:
        self.build_script = os.path.join(self.path, self.build_script)
        if not os.access(self.build_script, os.X_OK):
            raise ValueError(f"build script {self.build_script} is not executable: chmod +x it")

    @property
    def name(self) -> str:
        """The executable's name: from the project directory."""
        return _name_from_path(self.path)


def _image(image: str) -> str:
    """A URI the runtime pulls (``docker://``, ``docker-daemon://``, ...) as is; a path made
    absolute (relative to the launch script) and checked."""
    if "://" in image:
        return image
    path = resolve_path(image)
    if not Path(path).is_file():
        raise ValueError(
            f"no container image at {path} (a relative path is relative to the launch script)"
        )
    return path


@attr.s(auto_attribs=True)
class Container(xm.ExecutableSpec):
    """Run a :class:`PythonPackage`, :class:`PexBinary` or :class:`UniversalPackage` inside a
    container image.

    ``image``: a local Singularity/Apptainer ``.sif`` file (staged like any artifact) or a URI
    the runtime pulls (``docker://python:3.11``). The runtime comes from the executor
    (``container_runtime``: ``singularity`` by default, ``apptainer``, ``podman`` or
    ``docker``); GPUs are passed through (``--nv``) only when the executor's requirements ask
    for GPUs.
    """

    entrypoint: PythonPackage | PexBinary | UniversalPackage
    image: str = attr.ib(converter=_image)
    #: the runtime this image needs, when the spec decides it (DockerContainer)
    runtime: str | None = attr.ib(default=None, kw_only=True)

    @property
    def name(self) -> str:
        """The wrapped executable's name."""
        return self.entrypoint.name


def SingularityContainer(  # lxm3's name
    entrypoint: PythonPackage | PexBinary | UniversalPackage,
    image_path: str | None = None,
    *,
    image: str | None = None,
) -> Container:
    """lxm3's spelling: ``SingularityContainer(spec, image_path="img.sif" |
    "docker://python:3.11" | "docker-daemon://tag")``."""
    chosen = image_path if image_path is not None else image
    if chosen is None:
        raise TypeError("SingularityContainer() needs image_path")
    return Container(entrypoint, chosen)


def DockerContainer(  # lxm3's name
    entrypoint: PythonPackage | PexBinary | UniversalPackage, image: str
) -> Container:
    """lxm3's ``DockerContainer(spec, image="python:3.11")``: run with Docker (``docker run``;
    the executor's ``docker_options`` add volumes and flags)."""
    return Container(entrypoint, image if "://" in image else f"docker://{image}", runtime="docker")


@attr.s(auto_attribs=True)
class PythonContainer(xm.ExecutableSpec):
    """lxm3's ``PythonContainer(path, base_image, entrypoint, requirements="requirements.txt")``:
    the project (installed as a :class:`PythonPackage`) runs in ``docker://<base_image>``; the
    ``requirements`` file is installed at task start into a scratch directory with
    ``pip install --target`` (lxr builds no images)."""

    entrypoint: ModuleName | CommandList
    base_image: str
    requirements: str = "requirements.txt"
    path: str = attr.ib(converter=resolve_path, default=".")
    resources: list[Fileset] = attr.ib(converter=list, factory=list)
    extra_packages: list[str] = attr.ib(converter=_resolve_all, factory=list)
    pip_args: list[str] = attr.ib(converter=list, factory=lambda: ["--no-deps", "--no-compile"])

    @property
    def name(self) -> str:
        """The executable's name: from the project directory."""
        return _name_from_path(self.path)

    def requirements_file(self) -> str | None:
        """The requirements file, if the project has one."""
        path = os.path.join(self.path, self.requirements)
        return path if os.path.isfile(path) else None


@attr.s(auto_attribs=True)
class PDMProject(xm.ExecutableSpec):
    """lxm3's ``PDMProject(entrypoint, base_image, lock_file="pdm.lock", path=".")``: the
    project is built by its own PEP 517 backend (pdm-backend) and runs in
    ``docker://<base_image>``. lxr does not install the locked dependencies: bake them into
    ``base_image``."""

    entrypoint: ModuleName | CommandList
    base_image: str
    lock_file: str = "pdm.lock"
    path: str = attr.ib(converter=resolve_path, default=".")
    resources: list[Fileset] = attr.ib(converter=list, factory=list)
    extra_packages: list[str] = attr.ib(converter=_resolve_all, factory=list)
    pip_args: list[str] = attr.ib(converter=list, factory=lambda: ["--no-deps", "--no-compile"])

    @property
    def name(self) -> str:
        """The executable's name: from the project directory."""
        return _name_from_path(self.path)

    def requirements_file(self) -> str | None:
        """PDM projects pin their dependencies in the lock file, not a requirements file."""
        return None


def placeholder(fileset: Fileset) -> str:
    """The placeholder of ``fileset``'s directory."""
    return _PLACEHOLDER % fileset.uid
