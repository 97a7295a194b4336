"""A package's sources as a temporary copy, and a digest of them.

Builds never run in the user's folder: pip and build backends write ``build/``,
``*.egg-info`` or ``.pdm-build/`` next to the sources, and a build script may write anything.
So each build copies the folder first (with ``include``/``exclude`` applied, and never
:data:`ALWAYS_EXCLUDED`), and the copy's digest names the build: unchanged sources are not
built again (:func:`known_build`, :func:`remember_build`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lxr.packaging.cache import artifact_cache

__all__ = ["ALWAYS_EXCLUDED", "known_build", "remember_build", "source_copy"]

#: names never copied: version control, caches, environments and build leftovers
ALWAYS_EXCLUDED = (
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "*.pyc",
    "build",
    "*.egg-info",
    ".pdm-build",
    ".venv",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
)


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        pat = pat.rstrip("/")
        if fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(rel, pat):
            return True
        if pat.startswith("**/") and fnmatch.fnmatchcase(rel, pat[3:]):
            return True
    return False


def _walk(root: Path, include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root).as_posix()
        base = "" if base == "." else base + "/"
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not _matches(base + d, ALWAYS_EXCLUDED) and not _matches(base + d, exclude)
        )
        for name in filenames:
            rel = base + name
            if _matches(rel, ALWAYS_EXCLUDED) or _matches(rel, exclude):
                continue
            if include and not _matches(rel, include):
                continue
            out.append(rel)
    return sorted(out)


@contextmanager
def source_copy(
    path: Path, include: Sequence[str] = (), exclude: Sequence[str] = (), *, salt: str = ""
) -> Iterator[tuple[Path, str]]:
    """``(a temporary copy of path, the digest of what was copied and salt)``; the copy is
    removed afterwards. Exec bits are kept, symlinks followed."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"package path {path} is not a directory")
    h = hashlib.sha256(salt.encode())
    with tempfile.TemporaryDirectory(dir=artifact_cache(), prefix=".src-") as tmpdir:
        copy = Path(tmpdir) / path.resolve().name
        copy.mkdir()
        for rel in _walk(path, include, exclude):
            src, dst = path / rel, copy / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            h.update(f"\0{rel}\0{os.access(src, os.X_OK)}\0".encode())
            with open(dst, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        yield copy, h.hexdigest()


def _index() -> Path:
    return artifact_cache() / "builds.json"


def known_build(source_digest: str) -> str | None:
    """The cached artifact file built from these sources before, if it is still there."""
    try:
        known = json.loads(_index().read_text())
    except (OSError, ValueError):
        return None
    name = known.get(source_digest)
    if name and (artifact_cache() / name).exists():
        return str(name)
    return None


def remember_build(source_digest: str, artifact_name: str) -> None:
    """Note that these sources build into ``artifact_name`` (a file of the artifact cache)."""
    index = _index()
    try:
        known = json.loads(index.read_text())
    except (OSError, ValueError):
        known = {}
    known[source_digest] = artifact_name
    tmp = index.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known))
    os.replace(tmp, index)
