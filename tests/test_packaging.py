"""Artifacts are built reproducibly: unchanged sources give the same digest."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from lxr.packaging import BuildError, build_fileset, build_python_package, build_universal_package

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "examples" / "xm" / "py_package"


def test_python_package_zip_is_reproducible_and_tracks_code(
    state_home: Path, tmp_path: Path
) -> None:
    src = tmp_path / "pkg"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    first = build_python_package(src)
    assert build_python_package(src).digest == first.digest
    names = zipfile.ZipFile(first.source).namelist()
    assert "sweep_demo/train.py" in names
    assert not any(n.endswith("RECORD") or "direct_url" in n for n in names)
    (src / "src" / "sweep_demo" / "__init__.py").write_text('"""changed"""\n')
    assert build_python_package(src).digest != first.digest


def test_universal_package_runs_the_build_script(state_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "build.sh"
    script.write_text(
        '#!/bin/sh\necho "#!/bin/sh" > "$BUILDDIR/run.sh"; chmod +x "$BUILDDIR/run.sh"\n'
    )
    os.chmod(script, 0o755)
    blob = build_universal_package(tmp_path, script)
    assert blob.unpack and blob.suffix == ".tar.gz"
    with tarfile.open(blob.source) as tf:
        assert tf.getmember("run.sh").mode == 0o755
    assert build_universal_package(tmp_path, script).digest == blob.digest
    script.write_text("#!/bin/sh\nexit 4\n")
    with pytest.raises(BuildError, match="exited 4"):
        build_universal_package(tmp_path, script)


def test_fileset_rejects_escaping_paths(state_home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.txt"
    cfg.write_text("x")
    assert build_fileset({"conf/c.txt": cfg}).digest == build_fileset({"conf/c.txt": cfg}).digest
    with pytest.raises(BuildError, match="relative"):
        build_fileset({"../c.txt": cfg})
