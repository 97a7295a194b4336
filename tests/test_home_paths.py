"""``~`` in paths: ``~/`` is the home directory where the task runs; ``~user`` is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from lxr.api.resources import ClusterSpec, Executable
from lxr.schedulers.base import TaskSpec
from lxr.schedulers.jobscript import LAUNCHER, TASKS_FILE, render_template, task_table


@pytest.mark.parametrize(
    "make",
    [
        lambda: ClusterSpec(scheduler="slurm", staging_dir="~root/x"),
        lambda: Executable(command=["true"], working_dir="~root/x"),
        lambda: Executable(command=["true"], env_from=[{"file": "~bob/.env"}]),
    ],
)
def test_tilde_user_is_refused_with_a_message(make) -> None:
    with pytest.raises(ValidationError, match="~user is not supported; write the absolute path"):
        make()


@pytest.mark.parametrize("working_dir", ["~", "~/", "~/sub"])
def test_launcher_expands_home_in_working_dir(tmp_path: Path, working_dir: str) -> None:
    """Over SSH workingDir is kept as written: the launcher, on the node, expands it (a
    ``workingDir: "~/"`` used to end in ``cannot cd to ~/``, exit 98)."""
    home = tmp_path / "home"
    (home / "sub").mkdir(parents=True)
    job = tmp_path / "job"
    job.mkdir()
    (job / LAUNCHER).write_text(render_template("run-task.sh.j2"))
    (job / TASKS_FILE).write_bytes(
        task_table([TaskSpec(array_index=0, argv=["pwd"], working_dir=working_dir)])
    )
    res = subprocess.run(
        ["bash", str(job / LAUNCHER), str(job), "0"],
        capture_output=True,
        text=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        timeout=30,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    expected = home / "sub" if working_dir.endswith("sub") else home
    assert res.stdout.strip() == str(expected)
    assert (job / "exit" / "0").read_text() == "0\n"


def test_a_task_ending_between_two_looks_is_finished_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time-of-check race that recorded an attempt exiting 3 as Lost: alive at the first
    look, gone at the second, its exit file written in between."""
    import json

    from lxr.schedulers.local import tasks

    job = tmp_path / "job"
    for kind in ("pid", "started"):
        (job / kind).mkdir(parents=True)
        (job / kind / "0").write_text("1 1\n")
    (job / "local.json").write_text(json.dumps({"indexes": [0]}))
    files = tasks.JobFiles.read(job)
    looks = iter([True, False])

    def alive(_path: Path) -> bool:
        alive_now = next(looks)
        if not alive_now:  # the task wrote its exit code and ended between the two looks
            (job / "exit").mkdir(exist_ok=True)
            (job / "exit" / "0").write_text("3\n")
        return alive_now

    monkeypatch.setattr(tasks, "task_alive", alive)
    obs = files.observe(0)
    assert (obs.phase, obs.exit_code) == (tasks.TaskPhase.FAILED, 3), obs
    assert obs.reason is not tasks.FailureReason.LOST
