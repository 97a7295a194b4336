"""Content-addressed staging: artifacts go to a cluster once, named by the sha256 of their content.

A cluster's staging directory holds ``blobs/<digest><suffix>`` (a zip, a ``.sif`` image, a file)
and, for archives that must be unpacked (``.tar.gz``), the unpacked tree ``blobs/<digest>/``.
A blob that exists is complete: uploads go to a temporary name and are renamed into place, and
trees are unpacked into a temporary directory that is renamed at the end.

One command checks which blobs the cluster already has (however many there are), then only the
missing ones are sent: a local copy for a cluster on this machine, SFTP over the cluster's one
pooled SSH connection otherwise, to ``blobs/.<name>.part``, continued after a dropped connection,
verified by sha256 on the cluster and only then renamed to its final name. Directories lxr
creates there are 0700.
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
    "shell_dir",
    "staged_bytes_total",
    "summary_line",
]

_CHUNK = 1 << 20
_UPLOAD_CHUNK = 4 << 20

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


#: the digest of an uploaded (not yet renamed) blob, as the cluster computes it
_DIGEST_SCRIPT = 'sha256sum "$1" 2>/dev/null || shasum -a 256 "$1"'


class Stager:
    """Stages blobs to one cluster through its transport.

    :meth:`check` is the observation (one command for any number of blobs), :meth:`upload`
    the action: resumable (a dropped connection leaves ``blobs/.<name>.part``, which the next
    upload continues), verified by digest on the cluster, and renamed into place only then.
    """

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        on_bytes: Callable[[str, int], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.transport = transport
        self.staging_dir = shell_dir(staging_dir, local=isinstance(transport, LocalTransport))
        self.on_bytes = on_bytes
        self.bytes_uploaded = 0  # over the life of this stager (tests read it)
        #: staged name -> bytes an earlier, interrupted upload had left (0: sent whole)
        self.resumed_at: dict[str, int] = {}

    async def check(self, names: Sequence[str]) -> tuple[str, set[str]]:
        """``(absolute staging directory, the names among names present under blobs/)``."""
        result = await self.transport.run(
            ["sh", "-c", _CHECK_SCRIPT, "sh", self.staging_dir, *dict.fromkeys(names)],
            rate_limited=False,
        )
        if not result.ok:
            raise StagingError(f"cluster {self.cluster}: {result.describe()}")
        lines = result.stdout.splitlines()
        if not lines:
            raise StagingError(f"cluster {self.cluster}: no staging directory from the check")
        return lines[0], set(lines[1:])

    async def stage(self, blobs: Sequence[Blob]) -> StagingReport:
        """Make every blob present on the cluster; upload only the missing ones."""
        unique = list({b.name: b for b in blobs}.values())
        root, present = await self.check([b.name for b in unique])
        missing = [b for b in unique if b.name not in present]
        sent = 0
        for blob in missing:
            sent += await self.upload(blob, root)
        return StagingReport(
            cluster=self.cluster,
            root=root,
            artifacts=len(unique),
            uploaded=len(missing),
            present=len(unique) - len(missing),
            bytes_uploaded=sent,
        )

    async def upload(self, blob: Blob, root: str) -> int:
        """Put ``blob`` under its final name in ``root``/blobs (unpacked when it says so);
        returns its bytes (once complete: an interrupted upload counts nothing, the one that
        completes it counts the whole blob)."""
        target = f"{root}/blobs/{blob.digest}{'.tar.gz' if blob.unpack else blob.suffix}"
        if isinstance(self.transport, LocalTransport):
            _copy_local(blob.source, Path(target))
            sent = blob.size
        elif getattr(self.transport, "sftp", None) is not None:
            sent = await self._sftp_upload(blob, target)
        else:  # any other transport: through its write_files (reads the blob into memory)
            await self.transport.write_files({target: blob.source.read_bytes()}, mode=0o400)
            sent = blob.size
        if blob.unpack:
            res = await self.transport.run(
                ["sh", "-c", _UNPACK_SCRIPT, "sh", root, blob.name], rate_limited=False
            )
            if not res.ok:
                raise StagingError(f"cluster {self.cluster}: unpacking failed: {res.describe()}")
        self._count(sent)
        return sent

    def _count(self, sent: int) -> None:
        self.bytes_uploaded += sent
        if sent:
            with _totals_lock:
                _totals[self.cluster] = _totals.get(self.cluster, 0) + sent
            if self.on_bytes is not None:
                self.on_bytes(self.cluster, sent)

    async def _sftp_upload(self, blob: Blob, target: str) -> int:
        import asyncssh

        part = str(PurePosixPath(target).with_name(f".{PurePosixPath(target).name}.part"))
        size = blob.size
        sent = 0
        try:
            sftp = await self.transport.sftp()  # type: ignore[attr-defined]
            try:
                offset = (await sftp.stat(part)).size or 0
            except asyncssh.SFTPNoSuchFile:
                offset = 0
            if offset > size:  # not a prefix of this blob: start over
                await sftp.remove(part)
                offset = 0
            async with sftp.open(part, "ab" if offset else "wb") as out:
                # local reads of 4 MiB between network writes: not worth a thread each
                with open(blob.source, "rb") as src:  # noqa: ASYNC230
                    src.seek(offset)
                    while data := src.read(_UPLOAD_CHUNK):
                        await out.write(data, offset)
                        offset += len(data)
                        sent += len(data)
        except (OSError, asyncssh.Error) as exc:
            # counted once the blob is complete: what reached the part is not sent again
            raise TransportError(f"uploading {blob.source} to {part} failed: {exc}") from exc
        res = await self.transport.run(["sh", "-c", _DIGEST_SCRIPT, "sh", part], rate_limited=False)
        got = res.stdout.split()[0] if res.ok and res.stdout.split() else None
        try:
            if got != blob.digest:
                await sftp.remove(part)  # a corrupt part is not continued either
                raise StagingError(
                    f"cluster {self.cluster}: {part} has sha256 {got or res.describe()}, "
                    f"expected {blob.digest}: removed, to be sent again"
                )
            await sftp.chmod(part, 0o400)
            await sftp.posix_rename(part, target)
        except (OSError, asyncssh.Error) as exc:
            raise TransportError(f"renaming {part} to {target} failed: {exc}") from exc
        self.resumed_at[blob.name] = size - sent
        return size  # the blob's bytes, a part left by an interrupted upload included


def shell_dir(path: str, *, local: bool) -> str:
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
        if sha256_file(Path(tmp)) != target.name.split(".")[0]:
            raise StagingError(f"copying {source} to {target}: the copy does not match its digest")
        os.chmod(tmp, 0o400)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
