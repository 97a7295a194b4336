"""Code as desired state, on this machine: ``spec.executable.package`` built by apply from a
temporary copy, recorded by digest in the store's blob store, staged by the controller before it
submits (``status.artifacts``, ``ArtifactsReady``), and ``lxr gc``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lxr.api.records import ExperimentRecord
from lxr.api.resources import ArtifactRef, Executable, ExperimentSpec
from lxr.reconciler.artifacts import plan_artifact_status, plan_uploads
from lxr.store import Store
from lxr.testing import converge

REPO = Path(__file__).resolve().parents[1]


def _lxr(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lxr.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ,
        timeout=300,
        check=False,
    )


def _project(root: Path, message: str = "hello") -> Path:
    """A setuptools project (whose in-tree builds leave build/ and *.egg-info behind)."""
    src = root / "proj"
    (src / "src" / "mypkg").mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "mypkg"
            version = "0.1"
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
            [tool.setuptools.packages.find]
            where = ["src"]
            """
        )
    )
    (src / "src" / "mypkg" / "__init__.py").write_text("")
    (src / "src" / "mypkg" / "main.py").write_text(
        f"import sys\nprint({message!r}, sys.argv[1:])\n"
    )
    return src


def _experiment(path: Path, name: str, package: str = "proj", cluster: str = "local") -> Path:
    doc = path / f"{name}.yaml"
    doc.write_text(
        textwrap.dedent(
            f"""
            apiVersion: lxr.dev/v1alpha1
            kind: Experiment
            metadata: {{name: {name}}}
            spec:
              cluster: {cluster}
              executable:
                package: {{path: {package}, kind: python}}
                command: [python3, -m, mypkg.main]
              sweep: {{grid: {{seed: [1, 2]}}}}
            """
        )
    )
    return doc


def _artifacts(store: Store, name: str) -> list[tuple[str, int, int, str]]:
    exp = store.get_experiment(name)
    assert exp.status is not None
    return [(a.digest, a.bytes, a.bytes_uploaded, a.phase.value) for a in exp.status.artifacts]


@pytest.mark.slow
def test_a_yaml_package_is_built_from_a_copy_and_shipped_once(store: Store, tmp_path: Path) -> None:
    src = _project(tmp_path)
    res = _lxr("apply", "-f", str(_experiment(tmp_path, "pkg-a")), cwd=Path("/"))
    assert res.returncode == 0, res.stderr
    # the build ran on a temporary copy: the user's folder holds only what it held
    left = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    assert left == ["pyproject.toml", "src", "src/mypkg", "src/mypkg/__init__.py",
                    "src/mypkg/main.py"]  # fmt: skip
    exp = store.get_experiment("pkg-a")
    [ref] = exp.spec.executable.artifacts
    assert exp.spec.executable.package is not None
    assert exp.spec.executable.package.path == str(src)  # recorded absolute
    assert store.has_artifact(ref.digest)
    # the work unit waits for its artifact, with the reason, until a controller stages it
    units = store.list_work_units("pkg-a")
    assert {u.status.phase.value for u in units} == {"Pending"}
    converge(store, ["pkg-a"], timeout=120)
    exp = store.get_experiment("pkg-a")
    assert exp.status is not None and exp.status.phase.value == "Succeeded"
    conds = {c.type: (c.status.value, c.reason) for c in exp.status.conditions}
    assert conds["ArtifactsReady"] == ("True", "Staged")
    assert _artifacts(store, "pkg-a") == [(ref.digest, ref.bytes, ref.bytes, "Staged")]
    logs = _lxr("logs", "experiment", "pkg-a", "--wu", "1")
    assert "hello ['--seed=2']" in logs.stdout, logs.stdout + logs.stderr
    events = _lxr("get", "events", "pkg-a")
    assert "ArtifactsStaged" in events.stdout

    # applied again unchanged: nothing changes, and nothing is rebuilt
    again = _lxr("apply", "-f", str(tmp_path / "pkg-a.yaml"))
    assert again.returncode == 0 and "experiment/pkg-a unchanged" in again.stdout, again
    # the same code in another experiment: found on the cluster, 0 bytes uploaded
    _lxr("apply", "-f", str(_experiment(tmp_path, "pkg-b")))
    converge(store, ["pkg-b"], timeout=120)
    assert _artifacts(store, "pkg-b") == [(ref.digest, ref.bytes, 0, "Staged")]
    assert store.staged_bytes() == {"local": ref.bytes}
    # one source file changed: one new zip, uploaded
    (src / "src" / "mypkg" / "main.py").write_text("print('changed')\n")
    _lxr("apply", "-f", str(_experiment(tmp_path, "pkg-c")))
    converge(store, ["pkg-c"], timeout=120)
    [(digest, size, sent, phase)] = _artifacts(store, "pkg-c")
    assert digest != ref.digest and sent == size > 0 and phase == "Staged"
    assert store.staged_bytes() == {"local": ref.bytes + size}


def test_unchanged_sources_are_not_rebuilt(
    state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lxr.packaging import build_python_package

    src = _project(tmp_path)
    first = build_python_package(src)
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda *a, **k: pytest.fail(f"rebuilt: {a}"),  # type: ignore[misc]
    )
    again = build_python_package(src)
    assert (again.digest, again.source) == (first.digest, first.source)


def test_apply_refuses_a_package_that_does_not_build(store: Store, tmp_path: Path) -> None:
    doc = _experiment(tmp_path, "nopkg", package="missing")
    res = _lxr("apply", "-f", str(doc))
    assert res.returncode == 2
    assert "spec.executable.package" in res.stderr and "missing" in res.stderr
    assert store.list_experiments() == []


def test_a_universal_package_runs_in_its_unpacked_tree(store: Store, tmp_path: Path) -> None:
    tree = tmp_path / "tool"
    tree.mkdir()
    (tree / "build.sh").write_text('#!/bin/sh\ncp run.sh "$BUILDDIR/run.sh"\n')
    (tree / "run.sh").write_text('#!/bin/sh\necho "in $(basename "$PWD") with $*"\n')
    os.chmod(tree / "build.sh", 0o755)
    os.chmod(tree / "run.sh", 0o755)
    doc = tmp_path / "u.yaml"
    doc.write_text(
        textwrap.dedent(
            """
            apiVersion: lxr.dev/v1alpha1
            kind: Experiment
            metadata: {name: universal}
            spec:
              executable:
                package: {path: tool, kind: universal, buildScript: build.sh, entrypoint: run.sh}
              workUnits: [{args: {x: 1}}]
            """
        )
    )
    res = _lxr("apply", "-f", str(doc))
    assert res.returncode == 0, res.stderr
    exp = store.get_experiment("universal")
    [ref] = exp.spec.executable.artifacts
    assert exp.spec.executable.command == ["./run.sh"]
    assert exp.spec.executable.working_dir is not None
    assert exp.spec.executable.working_dir.endswith(f"/blobs/{ref.digest}")
    converge(store, ["universal"], timeout=120)
    logs = _lxr("logs", "experiment", "universal", "--wu", "0")
    assert f"in {ref.digest} with --x=1" in logs.stdout, logs.stdout + logs.stderr
    assert not (tree / "build").exists()


def _record(*refs: ArtifactRef, staged: frozenset[str] = frozenset()) -> ExperimentRecord:
    spec = ExperimentSpec(executable=Executable(command=["true"], artifacts=list(refs)))
    return ExperimentRecord(uid="u1", name="e", cluster="c1", generation=1, spec=spec,
                            staged=staged)  # fmt: skip


def test_the_staging_plan_sends_each_missing_blob_once() -> None:
    a = ArtifactRef(name="package", digest="a" * 64, bytes=10, suffix=".zip")
    b = ArtifactRef(name="files", digest="b" * 64, bytes=20, unpack=True)
    e1, e2 = _record(a, b), _record(b)
    assert plan_uploads([e1, e2], present={a.staged_name}) == [b]
    credited: set[str] = set()
    first = plan_artifact_status(e1, {a.staged_name}, {b.staged_name: 20}, {}, credited, 0.0)
    second = plan_artifact_status(e2, {a.staged_name}, {b.staged_name: 20}, {}, credited, 0.0)
    assert first is not None and second is not None
    # the bytes are counted once, for the first experiment that needed them
    assert [x["bytesUploaded"] for x in first.artifacts] == [0, 20]
    assert [x["bytesUploaded"] for x in second.artifacts] == [0]
    assert {c["type"]: c["status"] for c in first.conditions} == {"ArtifactsReady": "True"}
    failed = plan_artifact_status(_record(b), set(), {}, {b.staged_name: "boom"}, set(), 0.0)
    assert failed is not None and failed.event is not None
    assert [(c["status"], c["reason"]) for c in failed.conditions] == [("False", "UploadFailed")]
    # nothing new: nothing to write
    assert plan_artifact_status(_record(a, staged=frozenset({a.digest})), {a.staged_name},
                                {}, {}, set(), 0.0) is None  # fmt: skip


@pytest.mark.slow
def test_gc_lists_exactly_the_unreferenced_blobs_then_removes_them(
    store: Store, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Cluster\nmetadata: {name: gc-local}\n"
        f"spec: {{scheduler: local, stagingDir: {staging}}}\n"
    )
    assert _lxr("apply", "-f", str(cluster)).returncode == 0
    _project(tmp_path)
    _lxr("apply", "-f", str(_experiment(tmp_path, "keep", cluster="gc-local")))
    other = _project(tmp_path / "o", message="other")
    _lxr("apply", "-f", str(_experiment(other.parent, "drop", cluster="gc-local")))
    converge(store, ["keep", "drop"], timeout=120)
    [kept] = store.get_experiment("keep").spec.executable.artifacts
    [dropped] = store.get_experiment("drop").spec.executable.artifacts
    _, tag, _, _ = store.find_attempt("drop", 0)
    assert _lxr("delete", "experiment", "drop", "--wait").returncode == 0

    listed = _lxr("gc", "--cluster", "gc-local", "--older-than", "0")
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if line.startswith("cluster/")]
    assert [line.split()[1] for line in lines] == [
        f"blobs/{dropped.staged_name}",
        f"jobs/{tag}",
    ], listed.stdout
    assert all("would be removed (dry run)" in line for line in lines)
    assert (staging / "blobs" / dropped.staged_name).exists()  # a dry run removes nothing
    # within the grace period nothing is listed
    assert "0 blob(s)" in _lxr("gc", "--cluster", "gc-local").stdout

    removed = _lxr("gc", "--cluster", "gc-local", "--now")
    assert removed.returncode == 0, removed.stderr
    assert not (staging / "blobs" / dropped.staged_name).exists()
    assert not (staging / "jobs" / tag).exists()
    assert (staging / "blobs" / kept.staged_name).exists()
    assert (
        "0 blob(s), 0 bytes, and 0 job director(y/ies) would be removed"
        in _lxr("gc", "--cluster", "gc-local", "--older-than", "0").stdout
    )
    # the store's own copy of the dropped code is unreferenced too
    stored = _lxr("gc", "--older-than", "0")
    assert f"store artifact/{dropped.digest}" in stored.stdout
    assert f"store artifact/{kept.digest}" not in stored.stdout
    assert json.loads(_lxr("get", "experiments", "-o", "json").stdout)["items"]
