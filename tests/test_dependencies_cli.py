"""Dependencies through the command line on the local cluster: apply refuses unknown names and
cycles (exit 2, nothing written); a SameIndex pipeline runs each dependent after its own
upstream unit, stops the one whose upstream failed; delete refuses an upstream in use."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import controller_logs, start_controller, wait_for
from tests.test_cli import db_dump, lxr, write

UPSTREAM = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  executable:
    command: [{python}, -c, "{code}"]
  sweep: {{grid: {{i: [0, 1, 2]}}}}
  backoffLimitPerIndex: 0
"""
DEPENDENT = UPSTREAM.replace(
    "  backoffLimitPerIndex: 0\n",
    "  dependsOn:\n  - {{experiment: {upstream}, condition: Succeeded, match: SameIndex}}\n",
)

#: writes <dir>/<experiment>-<i>.start and .end (time.time()) around a short sleep; unit
#: ``fail`` of train exits 3
MARKER = (
    "import os, sys, time; d, n = {dir!r}, os.environ['LXR_EXPERIMENT'];"
    " i = sys.argv[-1].split('=')[1];"
    " open(f'{{d}}/{{n}}-{{i}}.start', 'w').write(repr(time.time()));"
    " time.sleep({sleep}); open(f'{{d}}/{{n}}-{{i}}.end', 'w').write(repr(time.time()));"
    " sys.exit(3 if n == 'train' and i == '{fail}' else 0)"
)


def doc(template: str, name: str, marker_dir: Path, **kw: object) -> str:
    code = MARKER.format(dir=str(marker_dir), sleep=kw.pop("sleep", 0.5), fail=kw.pop("fail", 9))
    return template.format(name=name, python=sys.executable, code=code, **kw)


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        (["a:b", "b:a"], "dependency cycle a -> b -> a"),
        (["a:a"], "dependency cycle a -> a"),
        (["a:nope"], "spec.dependsOn[0].experiment: no experiment named 'nope'"),
    ],
)
def test_apply_refuses_cycles_and_unknown_experiments_and_writes_nothing(
    tmp_path: Path, docs: list[str], message: str
) -> None:
    state = tmp_path / "state"
    base = doc(UPSTREAM, "base", tmp_path)
    assert lxr("apply", "-f", str(write(tmp_path, base, "base.yaml")), state=state).returncode == 0
    before = db_dump(state)
    text = "---\n".join(
        doc(DEPENDENT, d.split(":")[0], tmp_path, upstream=d.split(":")[1]) for d in docs
    )
    res = lxr("apply", "-f", str(write(tmp_path, text)), state=state)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert db_dump(state) == before


def test_a_cycle_through_a_stored_experiment_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = doc(UPSTREAM, "a", tmp_path)
    assert lxr("apply", "-f", str(write(tmp_path, first, "a.yaml")), state=state).returncode == 0
    second = doc(DEPENDENT, "b", tmp_path, upstream="a")
    assert lxr("apply", "-f", str(write(tmp_path, second, "b.yaml")), state=state).returncode == 0
    # a stored a -> b edge would close the cycle: refused before the immutable field is
    before = db_dump(state)
    again = doc(DEPENDENT, "a", tmp_path, upstream="b")
    res = lxr("apply", "-f", str(write(tmp_path, again, "a2.yaml")), state=state)
    assert res.returncode == 2 and "dependency cycle a -> b -> a" in res.stderr
    assert db_dump(state) == before
    # and dependsOn cannot change on an existing experiment
    other = doc(DEPENDENT, "a", tmp_path, upstream="base")
    base = doc(UPSTREAM, "base", tmp_path)
    lxr("apply", "-f", str(write(tmp_path, base, "base.yaml")), state=state, check=True)
    res = lxr("apply", "-f", str(write(tmp_path, other, "a3.yaml")), state=state)
    assert res.returncode == 2 and "spec.dependsOn: field is immutable" in res.stderr


def test_same_index_pipeline_on_the_local_cluster(tmp_path: Path) -> None:
    state = tmp_path / "state"
    marks = tmp_path / "marks"
    marks.mkdir()
    text = doc(UPSTREAM, "train", marks, sleep=12, fail=2) + "---\n"
    text += doc(DEPENDENT, "eval", marks, upstream="train", sleep=0.2)
    path = write(tmp_path, text)
    applied = lxr("apply", "-f", str(path), state=state)
    assert applied.returncode == 0, applied.stderr
    controller = start_controller(state)
    try:
        # before any train unit ended, every eval unit waits, and says for what
        seen: list[str] = []

        def all_wait() -> bool:
            seen.append(lxr("get", "workunits", "eval", state=state).stdout)
            return seen[-1].count("Waiting") == 3

        wait_for(all_wait, 60, "three waiting eval units")
        assert "waiting for train/1 to succeed" in seen[-1]
        one = json.loads(lxr("get", "workunits", "eval", "-o", "json", state=state).stdout)
        (cond,) = one["items"][1]["status"]["conditions"]
        assert (cond["type"], cond["status"], cond["reason"]) == (
            "DependenciesMet",
            "False",
            "DependencyNotMet",
        )
        assert cond["message"] == "waiting for train/1 to succeed"
        described = lxr("describe", "experiment", "eval", state=state).stdout
        assert "waiting for train/0 to succeed" in described, described
        refused = lxr("delete", "experiment", "train", "--no-wait", state=state)
        assert refused.returncode == 1 and "eval depend(s) on it" in refused.stderr
        done = lxr(
            "wait",
            "experiment",
            "eval",
            "--for",
            "condition=Finished",
            "--timeout",
            "120",
            state=state,
        )
        assert done.returncode == 0, done.stderr + controller_logs(state)
    finally:
        controller.terminate()
        controller.wait(30)
    got = json.loads(lxr("get", "workunits", "eval", "-o", "json", state=state).stdout)
    status = {item["spec"]["index"]: item["status"] for item in got["items"]}
    assert [status[i]["phase"] for i in range(3)] == ["Succeeded", "Succeeded", "Stopped"]
    assert status[2]["reason"] == "DependencyFailed"
    assert status[2]["message"] == "train/2 ended Failed"
    assert status[2]["conditions"][0]["reason"] == "DependencyFailed"
    for i in (0, 1):  # each eval started after its own train unit ended
        train_end = float((marks / f"train-{i}.end").read_text())
        eval_start = float((marks / f"eval-{i}.start").read_text())
        assert eval_start > train_end
    assert not (marks / "eval-2.start").exists()
    events = lxr("get", "events", "eval", state=state).stdout
    assert "DependencyMet" in events and "DependencyFailed" in events
    # once eval is finished, train can go
    assert lxr("delete", "experiment", "train", state=state).returncode == 0


#: exits 3 for unit 2 of train until the file ``fix`` exists (a bug the user then fixes)
FIXABLE = (
    "import os, sys; i = sys.argv[-1].split('=')[1];"
    " sys.exit(3 if os.environ['LXR_EXPERIMENT'] == 'train' and i == '2'"
    " and not os.path.exists({fix!r}) else 0)"
)


def test_rerun_of_a_failed_upstream_unit_revives_its_stopped_dependents(tmp_path: Path) -> None:
    state = tmp_path / "state"
    fix = tmp_path / "fix"
    code = FIXABLE.format(fix=str(fix))
    text = UPSTREAM.format(name="train", python=sys.executable, code=code) + "---\n"
    text += DEPENDENT.format(name="eval", python=sys.executable, code=code, upstream="train")
    text += "---\n" + DEPENDENT.format(
        name="report", python=sys.executable, code=code, upstream="eval"
    )
    assert lxr("apply", "-f", str(write(tmp_path, text)), state=state).returncode == 0

    def units(name: str) -> dict[int, dict]:
        got = json.loads(lxr("get", "workunits", name, "-o", "json", state=state).stdout)
        return {item["spec"]["index"]: item["status"] for item in got["items"]}

    def finished(name: str) -> None:
        res = lxr(
            "wait", "experiment", name, "--for", "condition=Finished", "--timeout", "120",
            state=state,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr + controller_logs(state)

    controller = start_controller(state)
    try:
        finished("report")
        for name in ("eval", "report"):  # unit 2 stopped down the pipeline, 0 and 1 ran
            got = units(name)
            assert [got[i]["phase"] for i in range(3)] == ["Succeeded", "Succeeded", "Stopped"]
            assert got[2]["reason"] == "DependencyFailed"
        fix.write_text("")
        res = lxr("rerun", "experiment", "train", "--failed", state=state)
        assert res.returncode == 0, res.stderr
        assert "experiment/train work units 2: rerun" in res.stdout
        assert "experiment/eval work units 2: waiting again" in res.stdout
        assert "experiment/report work units 2: waiting again" in res.stdout
        finished("report")
    finally:
        controller.terminate()
        controller.wait(30)
    for name in ("train", "eval", "report"):
        got = units(name)
        assert [got[i]["phase"] for i in range(3)] == ["Succeeded"] * 3, (name, got)
    # only unit 2 ran again: train-2 a second attempt, its dependents their first
    attempts = {n: [len(units(n)[i]["attempts"]) for i in range(3)] for n in ("train", "eval")}
    assert attempts == {"train": [1, 1, 2], "eval": [1, 1, 1]}, attempts
