"""Desired state never depends on the reconciler's working directory: ``workingDir`` is fixed
at apply time (relative to the YAML file) and recorded as an absolute path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lxr.api.loader import load_objects
from lxr.api.paths import missing_script_paths, resolve_executable, resolve_loaded
from lxr.api.resources import ClusterSpec, Executable
from tests.conftest import REPO


def run_lxr(
    *args: str, state: Path, cwd: Path, timeout: float = 180, full_env: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {
        "XDG_STATE_HOME": str(state),
        "PATH": "/usr/bin:/bin",
        "HOME": str(state),
        "LXR_NO_DAEMON": "1",
    }
    if full_env:  # this environment's PATH, HOME (uv and its cache), certificates, ...
        env = {**os.environ, "XDG_STATE_HOME": str(state)}
        env.pop("LXR_DATABASE_URL", None)
    env["PYTHONPATH"] = str(REPO)  # lxr from this checkout, whatever the cwd
    return subprocess.run(
        [sys.executable, "-m", "lxr.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def workunits(name: str, state: Path) -> list[dict]:
    out = run_lxr("get", "workunits", name, "-o", "json", state=state, cwd=Path("/"))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["items"]


# ------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize(
    ("working_dir", "base", "remote", "expected"),
    [
        (None, "/proj/examples", False, "/proj/examples"),
        ("out", "/proj/examples", False, "/proj/examples/out"),
        ("../data", "/proj/examples", False, "/proj/data"),
        ("/scratch/run", "/proj/examples", False, "/scratch/run"),
        ("~/runs", "/proj", False, os.path.expanduser("~/runs")),
        (None, "/proj", True, None),  # over SSH: the login home, kept as written
        ("runs/a", "/proj", True, "runs/a"),
    ],
)
def test_working_dir_is_resolved_against_the_files_directory(
    working_dir: str | None, base: str, remote: bool, expected: str | None
) -> None:
    exe = Executable(command=["python3", "train.py"], working_dir=working_dir)
    assert resolve_executable(exe, base, remote=remote).working_dir == expected
    assert resolve_executable(exe, base, remote=remote).command == ["python3", "train.py"]


def test_stdin_documents_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exe = Executable(command=["python3", "x.py"])
    assert resolve_executable(exe, None, remote=False).working_dir == str(tmp_path)


def test_missing_script_paths_are_named(tmp_path: Path) -> None:
    (tmp_path / "quickstart").mkdir()
    (tmp_path / "quickstart" / "train.py").write_text("")
    ok = ["python3", "quickstart/train.py", "--steps=5"]
    assert missing_script_paths(ok, str(tmp_path)) == []
    bad = ["python3", "examples/quickstart/train.py", "--out=x.py", "-c", "print(1)"]
    assert missing_script_paths(bad, str(tmp_path)) == ["examples/quickstart/train.py"]
    assert missing_script_paths(["./run.sh", "a b.py"], str(tmp_path)) == ["./run.sh"]
    assert missing_script_paths(["bash", "-c", "echo $1", "train"], str(tmp_path)) == []


def test_loaded_experiments_get_the_directory_of_their_own_file() -> None:
    loaded = load_objects(REPO / "examples" / "quickstart.yaml")
    assert loaded[0].base_dir == str(REPO / "examples")
    resolved, warnings = resolve_loaded(loaded, lambda name: ClusterSpec(scheduler="local"))
    assert resolved[0].obj.spec.executable.working_dir == str(REPO / "examples")
    assert warnings == []
    remote = ClusterSpec.model_validate({"scheduler": "slurm", "ssh": {"host": "h", "user": "u"}})
    resolved, _ = resolve_loaded(loaded, lambda name: remote)
    assert resolved[0].obj.spec.executable.working_dir is None


# ------------------------------------------------------------------------------ end to end


def test_quickstart_from_examples_and_from_root_with_a_controller_elsewhere(
    tmp_path: Path,
) -> None:
    """The README's quickstart converges whether it is applied from examples/ or from /,
    while the controller runs in a third directory (it failed every task on 52d3a3d)."""
    state, third = tmp_path / "state", tmp_path / "third"
    third.mkdir()
    state.mkdir()
    env = {
        "XDG_STATE_HOME": str(state),
        "PATH": "/usr/bin:/bin",
        "HOME": str(state),
        "PYTHONPATH": str(REPO),
        "LXR_NO_DAEMON": "1",
    }
    with open(state / "controller.log", "wb") as log:
        controller = subprocess.Popen(
            [sys.executable, "-m", "lxr.cli", "controller", "run"],
            cwd=third,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (state / "lxr" / "lxr.db").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        for cwd, path in [
            (REPO / "examples", "quickstart.yaml"),
            (Path("/"), str(REPO / "examples" / "quickstart.yaml")),
        ]:
            out = run_lxr("apply", "-f", path, "--wait", "--timeout", "150", state=state, cwd=cwd)
            assert out.returncode == 0, (cwd, out.stdout, out.stderr)
            assert "warning" not in out.stderr, out.stderr
            units = workunits("quickstart", state)
            assert [u["status"]["phase"] for u in units] == ["Succeeded"] * 6, units
            assert all(len(u["status"]["attempts"]) == 1 for u in units), units
            got = run_lxr("get", "experiments", "quickstart", "-o", "json", state=state, cwd=third)
            exe = json.loads(got.stdout)["spec"]["executable"]
            assert exe["workingDir"] == str(REPO / "examples"), exe
            out = run_lxr(
                "delete", "experiment", "quickstart", "--timeout", "60", state=state, cwd=third
            )
            assert out.returncode == 0, out.stderr
    finally:
        controller.terminate()
        controller.wait(timeout=30)


def test_delete_from_another_directory_never_touches_another_experiment(tmp_path: Path) -> None:
    """``delete experiment A`` run from / reconciles in its own process (no controller runs):
    B, queued meanwhile, must run in its own directory and never fail (on 52d3a3d, B ran
    from the delete's cwd and failed every attempt)."""
    state, proj = tmp_path / "state", tmp_path / "proj"
    (proj / "bin").mkdir(parents=True)
    (proj / "bin" / "b.py").write_text(
        "import os, sys\nopen(f'cwd-{sys.argv[-1]}', 'w').write(os.getcwd())\n"
    )
    (proj / "a.yaml").write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: exp-a}\n"
        "spec:\n  executable:\n    command: [python3, -c, 'import time; time.sleep(300)']\n"
        "  workUnits: [{args: {i: 0}}]\n"
    )
    (proj / "b.yaml").write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: exp-b}\n"
        "spec:\n  executable:\n    command: [python3, bin/b.py]\n"
        "  sweep: {grid: {i: [0, 1]}}\n  backoffLimitPerIndex: 0\n"
    )
    for name in ("a.yaml", "b.yaml"):
        out = run_lxr("apply", "-f", name, state=state, cwd=proj)
        assert out.returncode == 0, out.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run_lxr("delete", "experiment", "exp-a", "--timeout", "60", state=state, cwd=Path("/"))
    assert out.returncode == 0, out.stderr
    out = run_lxr(
        "wait", "experiment", "exp-b", "--for=condition=Succeeded", "--timeout", "120",
        state=state, cwd=elsewhere,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout, out.stderr)
    units = workunits("exp-b", state)
    assert [u["status"]["phase"] for u in units] == ["Succeeded", "Succeeded"], units
    assert [len(u["status"]["attempts"]) for u in units] == [1, 1], units
    for i in (0, 1):
        assert (proj / f"cwd---i={i}").read_text() == str(proj)
    assert not list(Path("/").glob("cwd-*")) and not list(elsewhere.glob("cwd-*"))
    gone = run_lxr("get", "experiments", "exp-a", state=state, cwd=proj)
    assert gone.returncode == 1


def test_a_file_moved_after_apply_keeps_its_recorded_directory(tmp_path: Path) -> None:
    """Recorded, not re-derived: the absolute workingDir stays what apply saw."""
    state, proj = tmp_path / "state", tmp_path / "proj"
    shutil.copytree(REPO / "examples" / "quickstart", proj / "quickstart")
    shutil.copy(REPO / "examples" / "quickstart.yaml", proj / "q.yaml")
    out = run_lxr("apply", "-f", "q.yaml", state=state, cwd=proj)
    assert out.returncode == 0, out.stderr
    got = run_lxr("get", "experiments", "quickstart", "-o", "json", state=state, cwd=Path("/"))
    assert json.loads(got.stdout)["spec"]["executable"]["workingDir"] == str(proj)
    # applying the same file again is "unchanged", from any directory
    again = run_lxr("apply", "-f", str(proj / "q.yaml"), state=state, cwd=Path("/"))
    assert again.returncode == 0 and "unchanged" in again.stdout, (again.stdout, again.stderr)


def test_apply_warns_when_a_script_is_not_where_the_task_will_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "e.yaml").write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: e}\n"
        "spec:\n  executable:\n    command: [python3, examples/quickstart/train.py]\n"
        "  workUnits: [{args: {i: 0}}]\n"
    )
    out = run_lxr("apply", "-f", "e.yaml", "--dry-run", state=state, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"examples/quickstart/train.py does not exist in workingDir {tmp_path}" in out.stderr


def test_launch_records_the_launch_scripts_directory(tmp_path: Path) -> None:
    """``lxr launch`` from another directory: tasks on this machine run beside the script."""
    state = tmp_path / "state"
    script = REPO / "examples" / "xm" / "launch_local.py"
    out = run_lxr(  # it builds the package: with uv, its cache, the certificates
        "launch", str(script), "--", "--lrs=0.1", "--seeds=1", state=state, cwd=tmp_path,
        full_env=True,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout, out.stderr)
    got = run_lxr("get", "experiments", "-o", "json", state=state, cwd=Path("/"))
    (exp,) = json.loads(got.stdout)["items"]
    assert exp["spec"]["executable"]["workingDir"] == str(script.parent)
