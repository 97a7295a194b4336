"""The store's content-addressed blob store: the bytes of the artifacts that applies and launches
recorded, where a controller on any host can read them.

- With SQLite (the embedded default), the bytes are files named by their digest in ``blobs/``
  beside the database file (0700): the controller runs on the same machine.
- With PostgreSQL, they are rows of ``artifact_chunks`` (4 MiB each) in the database itself, so a
  controller on another host reads them from the store; it keeps a verified copy in its own
  state directory (``blob-cache/``) while it stages them.

A blob is written under its final name only once complete and its digest verified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from lxr.paths import make_private_dir, state_dir
from lxr.store.engine import StoreEngine
from lxr.store.errors import NotFound
from lxr.store.tables import ArtifactChunkRow, ArtifactRow, StagedArtifactRow, SubmissionRow

__all__ = ["CHUNK_BYTES", "BlobStore", "StagedArtifact"]

#: bytes per ``artifact_chunks`` row
CHUNK_BYTES = 4 << 20
_READ = 1 << 20


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ):
            h.update(chunk)
    return h.hexdigest()


class StagedArtifact(NamedTuple):
    """A blob recorded as staged on a cluster."""

    cluster: str
    name: str  # under blobs/
    digest: str
    size: int
    staged_at: float
    used_at: float  # when an experiment last needed it


class BlobStore(StoreEngine):
    """Artifacts' bytes in and out, and what was staged where."""

    @property
    def blob_dir(self) -> Path:
        """Where a SQLite store keeps blob files: ``blobs/`` beside the database."""
        database = make_url(self.url).database if self.is_sqlite else None
        if database and database != ":memory:":
            return Path(database).resolve().parent / "blobs"
        return state_dir() / "blobs"

    def put_artifact(self, path: Path, digest: str | None = None) -> str:
        """Record the file at ``path`` by the sha256 of its content (a no-op when the store has
        it); returns the digest."""
        digest = digest or _sha256(path)
        size = path.stat().st_size
        if self.has_artifact(digest):
            return digest
        chunks = 0
        if self.is_sqlite:
            target = make_private_dir(self.blob_dir) / digest
            if not target.exists():
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{digest}.")
                os.close(fd)
                try:
                    shutil.copyfile(path, tmp)
                    if _sha256(Path(tmp)) != digest:
                        raise OSError(f"{path} changed while it was recorded")
                    os.chmod(tmp, 0o400)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
        try:
            with self.session() as s:
                if not self.is_sqlite:
                    with open(path, "rb") as fh:
                        while data := fh.read(CHUNK_BYTES):
                            s.add(ArtifactChunkRow(digest=digest, seq=chunks, data=data))
                            chunks += 1
                s.add(ArtifactRow(digest=digest, size=size, chunks=chunks, created_at=time.time()))
        except IntegrityError:  # recorded meanwhile by another apply: the same bytes
            pass
        return digest

    def has_artifact(self, digest: str) -> bool:
        """True when the store holds the blob ``digest``."""
        with self.session() as s:
            row = s.get(ArtifactRow, digest)
            if row is None:
                return False
            return row.chunks > 0 or (self.blob_dir / digest).exists()

    def artifact_file(self, digest: str) -> Path:
        """A local file holding the blob ``digest``, verified: the blob directory's own file
        (SQLite), or a copy assembled from the database's chunks (PostgreSQL)."""
        with self.session() as s:
            row = s.get(ArtifactRow, digest)
            chunks = None if row is None else row.chunks
        if chunks is None:
            raise NotFound(f"artifact {digest} is not in the store (apply or launch again)")
        if chunks == 0:
            path = self.blob_dir / digest
            if not path.exists():
                raise NotFound(f"artifact {digest}: {path} is missing (apply or launch again)")
            return path
        cache = make_private_dir(state_dir() / "blob-cache")
        target = cache / digest
        if target.exists():
            return target
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{digest}.")
        try:
            with os.fdopen(fd, "wb") as out:
                for seq in range(chunks):
                    with self.session() as s:
                        data = s.scalar(
                            select(ArtifactChunkRow.data).where(
                                ArtifactChunkRow.digest == digest, ArtifactChunkRow.seq == seq
                            )
                        )
                    if data is None:
                        raise NotFound(f"artifact {digest}: chunk {seq} of {chunks} is missing")
                    out.write(data)
            if _sha256(Path(tmp)) != digest:
                raise NotFound(f"artifact {digest}: the stored chunks do not match the digest")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def recorded_artifacts(self) -> dict[str, tuple[int, float]]:
        """Every blob the store holds: digest -> (bytes, when recorded)."""
        with self.session() as s:
            rows = s.execute(select(ArtifactRow.digest, ArtifactRow.size, ArtifactRow.created_at))
            return {d: (int(n), float(t)) for d, n, t in rows}

    def submission_tags(self, cluster: str) -> set[str]:
        """The tags of every submission the store holds for ``cluster`` (their job
        directories belong to experiments that still exist)."""
        with self.session() as s:
            return set(s.scalars(select(SubmissionRow.tag).where(SubmissionRow.cluster == cluster)))

    def delete_artifacts(self, digests: Iterable[str]) -> None:
        """Forget these blobs (``lxr gc``): rows, chunks and local files."""
        wanted = sorted(set(digests))
        with self.session() as s:
            for digest in wanted:
                s.execute(delete(ArtifactChunkRow).where(ArtifactChunkRow.digest == digest))
                s.execute(delete(ArtifactRow).where(ArtifactRow.digest == digest))
        for digest in wanted:
            (self.blob_dir / digest).unlink(missing_ok=True)

    # ------------------------------------------------------------ what is on the clusters

    def record_staged(self, cluster: str, items: Iterable[tuple[str, str, int]]) -> None:
        """Blobs ``(staged name, digest, bytes)`` are on ``cluster`` and needed now."""
        now = time.time()
        with self.session() as s:
            for name, digest, size in items:
                done = s.execute(
                    update(StagedArtifactRow)
                    .where(StagedArtifactRow.cluster == cluster, StagedArtifactRow.name == name)
                    .values(used_at=now)
                )
                if not done.rowcount:  # type: ignore[attr-defined]
                    s.add(
                        StagedArtifactRow(
                            cluster=cluster,
                            name=name,
                            digest=digest,
                            size=size,
                            staged_at=now,
                            used_at=now,
                        )
                    )

    def staged_artifacts(self, cluster: str) -> dict[str, StagedArtifact]:
        """What the controller recorded as staged on ``cluster``, by staged name."""
        with self.session() as s:
            rows = s.execute(
                select(
                    StagedArtifactRow.cluster,
                    StagedArtifactRow.name,
                    StagedArtifactRow.digest,
                    StagedArtifactRow.size,
                    StagedArtifactRow.staged_at,
                    StagedArtifactRow.used_at,
                ).where(StagedArtifactRow.cluster == cluster)
            ).all()
        return {r[1]: StagedArtifact(*r) for r in rows}

    def forget_staged(self, cluster: str, names: Iterable[str]) -> None:
        """``lxr gc`` removed these blobs from ``cluster``."""
        with self.session() as s:
            for name in names:
                s.execute(
                    delete(StagedArtifactRow).where(
                        StagedArtifactRow.cluster == cluster, StagedArtifactRow.name == name
                    )
                )
