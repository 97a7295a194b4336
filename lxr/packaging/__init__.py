"""Building artifacts from source on this machine, reproducibly, named by their content.

Every builder returns a :class:`~lxr.staging.Blob` in the local artifact cache
(``$XDG_STATE_HOME/lxr/artifacts``). Archives are written deterministically (sorted entries,
fixed timestamps, normalized modes), so unchanged sources give the same digest and staging
sends nothing the second time.

- :func:`build_python_package`: ``pip install --no-deps --target`` of a project, zipped; the
  zip goes on ``PYTHONPATH`` as is.
- :func:`build_universal_package`: a build script fills ``$BUILDDIR``; a tarball the cluster
  unpacks.
- :func:`build_folder`: a folder's files as they are (``include``/``exclude``); a tarball.

Builds run in a temporary copy of the sources (:mod:`lxr.packaging.sources`), never in the
user's folder, and unchanged sources reuse the artifact built from them before.
- :func:`build_fileset`: extra files (``{local path: path in the set}``); a tarball too.
- :func:`file_blob`: a file staged as is (a ``.sif`` image), its digest cached by size/mtime.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from lxr.packaging.cache import artifact_cache
from lxr.packaging.sources import known_build, remember_build, source_copy
from lxr.staging import Blob, sha256_file

__all__ = [
    "BuildError",
    "artifact_cache",
    "build_fileset",
    "build_folder",
    "build_pex",
    "build_python_package",
    "build_universal_package",
    "file_blob",
    "pex_command",
    "pip_command",
    "sha256_bytes",
    "tar_tree",
    "zip_tree",
]

_EPOCH_ZIP = (1980, 1, 1, 0, 0, 0)
_EPOCH_TAR = 315532800  # 1980-01-01, same instant as the zip epoch


class BuildError(RuntimeError):
    """Building an artifact failed; the message carries the tool's output."""


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file under ``root`` as (posix relative name, path), sorted; no caches."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            path = Path(dirpath) / name
            out.append((path.relative_to(root).as_posix(), path))
    yield from sorted(out)


def _mode(path: Path) -> int:
    return 0o755 if os.access(path, os.X_OK) else 0o644


def zip_tree(root: Path, out: Path) -> None:
    """Zip ``root`` deterministically into ``out``."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in _files(root):
            info = zipfile.ZipInfo(name, date_time=_EPOCH_ZIP)
            info.external_attr = (0o100000 | _mode(path)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def tar_tree(root: Path, out: Path) -> None:
    """Tar+gzip ``root`` deterministically into ``out`` (exec bits kept, owners dropped)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, path in _files(root):
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mtime = _EPOCH_TAR
            info.mode = _mode(path)
            with open(path, "rb") as src:
                tf.addfile(info, src)
    with open(out, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())


def _into_cache(tmp: Path, suffix: str, *, unpack: bool) -> Blob:
    digest = sha256_file(tmp)
    final = artifact_cache() / f"{digest}{suffix}"
    if final.exists():
        tmp.unlink()
    else:
        os.replace(tmp, final)
    return Blob(digest=digest, source=final, suffix=suffix, unpack=unpack)


def pip_command() -> list[str]:
    """How to run pip: this interpreter's pip, else ``uv pip`` (uv venvs have no pip)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "pip"]
    raise BuildError("neither pip (in this interpreter) nor uv is available to build packages")


def _cached(digest: str, suffix: str, *, unpack: bool) -> Blob | None:
    name = known_build(digest)
    if name is None:
        return None
    return Blob(digest=name[: -len(suffix)] if suffix else name, source=artifact_cache() / name,
                suffix=suffix, unpack=unpack)  # fmt: skip


def build_python_package(
    path: Path,
    *,
    extra_packages: Sequence[Path] = (),
    pip_args: Sequence[str] = ("--no-deps", "--no-compile"),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Blob:
    """``pip install <path> [extra packages] --target`` into a zip for ``PYTHONPATH``.

    Dependencies are not bundled (``--no-deps``): like lxm3, lxr expects them on the cluster
    (or in the container), since ML dependencies are large. pip runs on a temporary copy of
    ``path``; the same sources (and options) give the artifact built before, without pip.
    """
    salt = json.dumps(["python", list(map(str, extra_packages)), list(pip_args), sys.version])
    with source_copy(path, include, exclude, salt=salt) as (copy, source_digest):
        cached = _cached(source_digest, ".zip", unpack=False)
        if cached is not None:
            return cached
        blob = _pip_zip(copy, extra_packages, pip_args)
        remember_build(source_digest, blob.source.name)
        return blob


def _pip_zip(path: Path, extra_packages: Sequence[Path], pip_args: Sequence[str]) -> Blob:
    pip = pip_command()
    cache = artifact_cache()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmpdir:
        target = Path(tmpdir) / "site"
        args = list(pip_args)
        if pip[-1] == "pip" and pip[0] != sys.executable:
            # uv pip: install for this interpreter; --no-compile is pip's default in uv
            args = [a for a in args if a != "--no-compile"] + ["--python", sys.executable]
        argv = [
            *pip,
            "install",
            "--quiet",
            *args,
            "--target",
            str(target),
            str(path),
            *map(str, extra_packages),
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(
                f"building Python package {path} failed:\n$ {' '.join(argv)}\n"
                f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
            )
        # pip's install metadata names the source path and the installer: keep the digest a
        # function of the code only
        (target / ".lock").unlink(missing_ok=True)  # uv's
        for meta in target.glob("*.dist-info"):
            for noise in (
                "RECORD",
                "INSTALLER",
                "REQUESTED",
                "direct_url.json",
                "uv_build.json",
                "uv_cache.json",
            ):
                (meta / noise).unlink(missing_ok=True)
        out = Path(tmpdir) / "package.zip"
        zip_tree(target, out)
        return _into_cache(out, ".zip", unpack=False)


def pex_command() -> list[str]:
    """How to run pex: this interpreter's ``pex`` module, else ``pex`` on ``PATH``."""
    if importlib.util.find_spec("pex") is not None:
        return [sys.executable, "-m", "pex"]
    exe = shutil.which("pex")
    if exe is None:
        raise BuildError("PexBinary needs pex: pip install 'lxr[pex]' (or pex itself)")
    return [exe]


def build_pex(
    path: Path, *, entry_point: str, packages: Sequence[str] = (), modules: Sequence[str] = ()
) -> Blob:
    """A ``.pex`` of the sources ``packages``/``modules`` of ``path`` running ``entry_point``.

    No dependencies are bundled: the pex falls back to its interpreter's environment
    (``--inherit-path=fallback``), like lxm3's. pex writes reproducible archives, so unchanged
    sources give the same digest.
    """
    cache = artifact_cache()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmpdir:
        out = Path(tmpdir) / "app.pex"
        argv = [*pex_command(), "-o", str(out), "--inherit-path=fallback", "-e", entry_point]
        for pkg in packages:
            argv += ["--package", pkg]
        for mod in modules:
            argv += ["--module", mod]
        proc = subprocess.run(argv, cwd=path, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(
                f"building a pex of {path} failed:\n$ {' '.join(argv)}\n"
                f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
            )
        return _into_cache(out, ".pex", unpack=False)


def build_universal_package(
    path: Path,
    build_script: Path | None,
    build_args: Sequence[str] = (),
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Blob:
    """Run ``build_script`` in a temporary copy of ``path`` (with ``BUILDDIR`` set) and pack
    what it put there; without a script, the copy itself. A script inside ``path`` runs as
    copied; unchanged sources give the artifact built before."""
    path = Path(path)
    script = None if build_script is None else Path(build_script)
    if script is not None and not script.is_absolute():
        script = path / script
    if script is not None and not os.access(script, os.X_OK):
        raise BuildError(f"build script {script} is not executable (chmod +x it)")
    salt = json.dumps(["universal", str(script), list(build_args)])
    with source_copy(path, include, exclude, salt=salt) as (copy, source_digest):
        if script is not None and not script.resolve().is_relative_to(path.resolve()):
            with open(script, "rb") as fh:  # a script outside the folder is a source too
                source_digest = sha256_bytes(source_digest.encode() + fh.read())
        cached = _cached(source_digest, ".tar.gz", unpack=True)
        if cached is not None:
            return cached
        if script is None:
            blob = _tar_into_cache(copy)
        else:
            inside = script.resolve().is_relative_to(path.resolve())
            run = copy / script.resolve().relative_to(path.resolve()) if inside else script
            blob = _run_build_script(copy, run, build_args)
        remember_build(source_digest, blob.source.name)
        return blob


def build_folder(path: Path, *, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Blob:
    """A folder's files as they are, as a tarball the cluster unpacks."""
    with source_copy(path, include, exclude, salt="files") as (copy, source_digest):
        cached = _cached(source_digest, ".tar.gz", unpack=True)
        if cached is not None:
            return cached
        blob = _tar_into_cache(copy)
        remember_build(source_digest, blob.source.name)
        return blob


def sha256_bytes(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _tar_into_cache(tree: Path) -> Blob:
    with tempfile.TemporaryDirectory(dir=artifact_cache(), prefix=".build-") as tmpdir:
        out = Path(tmpdir) / "package.tar.gz"
        tar_tree(tree, out)
        return _into_cache(out, ".tar.gz", unpack=True)


def _run_build_script(cwd: Path, script: Path, build_args: Sequence[str]) -> Blob:
    cache = artifact_cache()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmpdir:
        build_dir = Path(tmpdir) / "build"
        build_dir.mkdir()
        proc = subprocess.run(
            [str(script), *build_args],
            cwd=cwd,
            env={**os.environ, "BUILDDIR": str(build_dir)},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BuildError(
                f"build script {script} exited {proc.returncode}:\n"
                f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
            )
        out = Path(tmpdir) / "package.tar.gz"
        tar_tree(build_dir, out)
        return _into_cache(out, ".tar.gz", unpack=True)


def build_fileset(files: Mapping[str, Path]) -> Blob:
    """Pack ``{name in the set: local file}`` into a tarball the cluster unpacks."""
    cache = artifact_cache()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmpdir:
        tree = Path(tmpdir) / "files"
        for name, src in files.items():
            rel = Path(name)
            if rel.is_absolute() or ".." in rel.parts:
                raise BuildError(f"fileset path {name!r} must be relative, without '..'")
            if not Path(src).is_file():
                raise BuildError(f"fileset file {src} does not exist")
            dest = tree / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
        tree.mkdir(exist_ok=True)
        out = Path(tmpdir) / "files.tar.gz"
        tar_tree(tree, out)
        return _into_cache(out, ".tar.gz", unpack=True)


def file_blob(path: Path, suffix: str | None = None) -> Blob:
    """A file staged as is. Its digest is cached by (path, size, mtime): images are large."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index = artifact_cache() / "digests.json"
    try:
        known = json.loads(index.read_text())
    except (OSError, ValueError):
        known = {}
    digest = known.get(key)
    if digest is None:
        digest = sha256_file(path)
        known[key] = digest
        tmp = index.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, index)
    return Blob(digest=digest, source=path, suffix=path.suffix if suffix is None else suffix)
