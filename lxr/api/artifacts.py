"""Code as desired state: the package an experiment's executable names, the content-addressed
artifacts an apply or a launch recorded for it, and what the controller staged of them.

``spec.executable.package`` is what a user writes (a folder to package and how). ``lxr apply``
and ``lxr launch`` build it on the user's machine and record the result as
``spec.executable.artifacts``: each a blob named by the sha256 of its bytes, kept in the store's
blob store. The controller stages them to the cluster before it submits (``status.artifacts``,
condition ``ArtifactsReady``), under ``<stagingDir>/blobs/``. Commands, environment values,
``workingDir`` and arguments may name a staged blob's directory as :data:`STAGED_BLOBS`, which
the controller replaces with the absolute ``<stagingDir>/blobs`` of the cluster when it submits.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import Field

from lxr.api.model import SpecModel, StatusModel

__all__ = [
    "STAGED_BLOBS",
    "ArtifactPhase",
    "ArtifactRef",
    "ArtifactStatus",
    "Package",
    "PackageKind",
    "staged_path",
]

#: where staged blobs are on the cluster, filled in by the controller at submission
STAGED_BLOBS = "{lxr.blobs}"


class PackageKind(str, Enum):
    """How a package folder becomes an artifact, and how tasks see it."""

    PYTHON = "python"  # pip install --no-deps into a zip on PYTHONPATH
    UNIVERSAL = "universal"  # a build script fills $BUILDDIR (or the folder as is); tasks run in it
    FILES = "files"  # the folder's files as they are, unpacked; tasks find it in $LXR_PACKAGE


class Package(SpecModel):
    """Code to package on the applying machine and ship to the cluster with the experiment."""

    path: str = Field(
        description="the folder to package; a relative path is relative to the YAML file "
        "(recorded absolute)"
    )
    kind: PackageKind = PackageKind.PYTHON
    entrypoint: str | None = Field(
        default=None,
        description="without command: python runs [python3, -m, entrypoint]; universal and "
        "files run [./entrypoint] in the unpacked tree",
    )
    build_script: str | None = Field(
        default=None,
        description="universal: a script run in a temporary copy of path with $BUILDDIR set; "
        "what it puts in $BUILDDIR is the package (without it, the folder itself)",
    )
    include: list[str] = Field(
        default_factory=list,
        description="glob patterns relative to path (** for any depth): only these files "
        "(default: all)",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="glob patterns left out (.git, __pycache__, build/, *.egg-info, "
        ".pdm-build/ and .venv always are)",
    )


class ArtifactRef(SpecModel):
    """A content-addressed blob a work unit needs on its cluster (recorded by apply/launch)."""

    name: str = Field(description="what it is: package, a file set, an image")
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Annotated[int, Field(ge=0)]
    suffix: str = Field(default="", description="part of the staged name (.zip, .sif)")
    unpack: bool = Field(
        default=False, description="a .tar.gz the cluster unpacks into blobs/<digest>/"
    )

    @property
    def staged_name(self) -> str:
        """Its name under ``<stagingDir>/blobs/``."""
        return self.digest if self.unpack else f"{self.digest}{self.suffix}"


def staged_path(ref: ArtifactRef) -> str:
    """Where ``ref`` is on the cluster, as :data:`STAGED_BLOBS` ``/<name>``."""
    return f"{STAGED_BLOBS}/{ref.staged_name}"


class ArtifactPhase(str, Enum):
    """Where one artifact of an experiment stands on its cluster."""

    PENDING = "Pending"  # not (yet) found on the cluster
    STAGED = "Staged"  # present under its final name, verified by digest
    FAILED = "Failed"  # the last upload failed; retried


class ArtifactStatus(StatusModel):
    """One artifact of an experiment on its cluster (``status.artifacts``)."""

    name: str
    digest: str
    cluster: str
    bytes: int
    bytes_uploaded: int = Field(
        default=0, description="what the controller sent for this experiment (0: present)"
    )
    phase: ArtifactPhase = ArtifactPhase.PENDING
    message: str | None = None
