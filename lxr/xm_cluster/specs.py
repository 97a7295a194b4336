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
    "Fileset",
    "ModuleName",
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


@attr.s(auto_attribs=True)
class PythonPackage(xm.ExecutableSpec):
    """A Python project installed with ``pip install --no-deps`` into one zip on ``PYTHONPATH``.

    Dependencies are not bundled: install them on the cluster (or in a :class:`Container`).
    """

    entrypoint: ModuleName | CommandList
    path: str = attr.ib(converter=resolve_path, default=".")
    resources: list[Fileset] = attr.ib(converter=list, factory=list)
    extra_packages: list[str] = attr.ib(
        converter=lambda xs: [resolve_path(x) for x in xs], factory=list
    )
    pip_args: list[str] = attr.ib(converter=list, factory=lambda: ["--no-deps", "--no-compile"])
    python: str = "python3"

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


@attr.s(auto_attribs=True)
class Container(xm.ExecutableSpec):
    """Run a :class:`PythonPackage` or :class:`UniversalPackage` inside a container image.

    ``image``: a local Singularity/Apptainer ``.sif`` file (staged like any artifact) or a URI
    the runtime pulls (``docker://python:3.11``). The runtime comes from the executor
    (``container_runtime``: ``singularity`` by default, ``apptainer`` or ``podman``); GPUs are
    passed through (``--nv``) only when the executor's requirements ask for GPUs.
    """

    entrypoint: PythonPackage | UniversalPackage
    image: str

    def __attrs_post_init__(self) -> None:
        if "://" not in self.image:
            self.image = resolve_path(self.image)
            if not Path(self.image).is_file():
                raise ValueError(f"no container image at {self.image}")

    @property
    def name(self) -> str:
        """The wrapped executable's name."""
        return self.entrypoint.name


#: lxm3's name for the same thing
SingularityContainer = Container


def placeholder(fileset: Fileset) -> str:
    """The placeholder of ``fileset``'s directory."""
    return _PLACEHOLDER % fileset.uid
