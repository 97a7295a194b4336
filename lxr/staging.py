"""Content-addressed staging: artifacts go to a cluster once, named by the sha256 of their content.

A cluster's staging directory holds ``blobs/<digest><suffix>`` (a zip, a ``.sif`` image, a file)
and, for archives that must be unpacked (``.tar.gz``), the unpacked tree ``blobs/<digest>/``.
A blob that exists is complete: uploads go to a temporary name and are renamed into place, and
trees are unpacked into a temporary directory that is renamed at the end.

One command checks which blobs the cluster already has (however many there are), then only the
missing ones are sent: a local copy for a cluster on this machine, SFTP over the cluster's one
pooled SSH connection otherwise. Directories lxr creates there are 0700.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lxr.schedulers.transport import LocalTransport, Transport, TransportError

__all__ = [
    "Blob",
    "Stager",
    "StagingError",
    "StagingReport",
    "sha256_file",
    "staged_bytes_total",
    "summary_line",
]

_CHUNK = 1 << 20

#: the one existence check: make the blob dir (0700), print its absolute path, then the blobs
#: among "$@" that are present
_CHECK_SCRIPT = """umask 077
d=$1; shift
mkdir -p "$d/blobs" && chmod 700 "$d/blobs" && cd "$d" && pwd || exit 1
for n in "$@"; do [ -e "blobs/$n" ] && printf '%s\\n' "$n"; done
exit 0
"""

#: unpack uploaded tarballs: blobs/<digest>.tar.gz -> blobs/<digest>/ (atomic rename)
_UNPACK_SCRIPT = """umask 077
cd "$1/blobs" || exit 1; shift
for n in "$@"; do
  [ -e "$n" ] && continue
  t=".$n.unpack.$$"; rm -rf "$t"; mkdir "$t" &&
  tar -xzf "$n.tar.gz" -C "$t" && chmod -R a-w "$t" && chmod u+w "$t" && mv "$t" "$n" || exit 1
  rm -f "$n.tar.gz"
done
"""

_totals: dict[str, int] = {}
_totals_lock = threading.Lock()


class StagingError(RuntimeError):
    """The cluster's staging directory could not be checked or written."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def staged_bytes_total() -> dict[str, int]:
    """Bytes uploaded by this process, per cluster (what ``lxr_staging_bytes_total`` counts)."""
    with _totals_lock:
        return dict(_totals)


@dataclass(frozen=True)
class Blob:
    """A local file to stage under its digest.

    ``suffix`` is part of the staged name (``.zip``, ``.sif``). With ``unpack``, the file is a
    ``.tar.gz`` that the cluster unpacks into ``blobs/<digest>/`` (read-only), and the tarball is
    removed once unpacked.
    """

    digest: str
    source: Path
    suffix: str = ""
    unpack: bool = False

    @property
    def name(self) -> str:
        """The staged name under ``blobs/``: what jobs refer to."""
        return self.digest if self.unpack else f"{self.digest}{self.suffix}"

    @property
    def size(self) -> int:
        """Bytes to upload."""
        return self.source.stat().st_size


@dataclass(frozen=True)
class StagingReport:
    """What one staging pass did on one cluster."""

    cluster: str
    root: str  # absolute staging directory on the cluster
    artifacts: int
    uploaded: int
    present: int
    bytes_uploaded: int

    def path(self, blob: Blob) -> str:
        """Where ``blob`` is on the cluster."""
        return f"{self.root}/blobs/{blob.name}"


def summary_line(reports: Sequence[StagingReport]) -> str:
    """``staging: <n> artifacts, <bytes> bytes uploaded, <m> already present`` over all clusters."""
    n = sum(r.artifacts for r in reports)
    sent = sum(r.bytes_uploaded for r in reports)
    present = sum(r.present for r in reports)
    return f"staging: {n} artifacts, {sent} bytes uploaded, {present} already present"


class Stager:
    """Stages blobs to one cluster through its transport."""

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        on_bytes: Callable[[str, int], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.transport = transport
        self.staging_dir = _shell_dir(staging_dir, local=isinstance(transport, LocalTransport))
        self.on_bytes = on_bytes
        self.bytes_uploaded = 0  # over the life of this stager (tests read it)

    async def stage(self, blobs: Sequence[Blob]) -> StagingReport:
        """Make every blob present on the cluster; upload only the missing ones."""
        unique = list({b.name: b for b in blobs}.values())
        result = await self.transport.run(
            ["sh", "-c", _CHECK_SCRIPT, "sh", self.staging_dir, *(b.name for b in unique)],
            rate_limited=False,
        )
        if not result.ok:
            raise StagingError(f"cluster {self.cluster}: {result.describe()}")
        lines = result.stdout.splitlines()
        if not lines:
            raise StagingError(f"cluster {self.cluster}: no staging directory from the check")
        root, present = lines[0], set(lines[1:])
        missing = [b for b in unique if b.name not in present]
        sent = 0
        for blob in missing:
            sent += await self._upload(blob, root)
        to_unpack = [b.name for b in missing if b.unpack]
        if to_unpack:
            res = await self.transport.run(
                ["sh", "-c", _UNPACK_SCRIPT, "sh", root, *to_unpack], rate_limited=False
            )
            if not res.ok:
                raise StagingError(f"cluster {self.cluster}: unpacking failed: {res.describe()}")
        self.bytes_uploaded += sent
        if sent:
            with _totals_lock:
                _totals[self.cluster] = _totals.get(self.cluster, 0) + sent
            if self.on_bytes is not None:
                self.on_bytes(self.cluster, sent)
        return StagingReport(
            cluster=self.cluster,
            root=root,
            artifacts=len(unique),
            uploaded=len(missing),
            present=len(unique) - len(missing),
            bytes_uploaded=sent,
        )

    async def _upload(self, blob: Blob, root: str) -> int:
        target = f"{root}/blobs/{blob.digest}{'.tar.gz' if blob.unpack else blob.suffix}"
        size = blob.size
        if isinstance(self.transport, LocalTransport):
            _copy_local(blob.source, Path(target))
            return size
        sftp_of = getattr(self.transport, "sftp", None)
        if sftp_of is not None:
            import asyncssh

            tmp = f"{target}.{os.getpid()}.tmp"
            try:
                sftp = await sftp_of()
                await sftp.put(str(blob.source), tmp)
                await sftp.chmod(tmp, 0o400)
                await sftp.posix_rename(tmp, target)
            except (OSError, asyncssh.Error) as exc:
                raise TransportError(f"uploading {blob.source} to {target} failed: {exc}") from exc
            return size
        # any other transport: through its write_files (reads the blob into memory)
        await self.transport.write_files({target: blob.source.read_bytes()}, mode=0o400)
        return size


def _shell_dir(path: str, *, local: bool) -> str:
    """The staging dir as the check script's ``cd`` needs it: ``~`` expanded here, or made
    relative to the remote home (where an SSH session starts)."""
    if local:
        return os.path.expanduser(path)
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:]
    return str(PurePosixPath(path))


def _copy_local(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o400)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
