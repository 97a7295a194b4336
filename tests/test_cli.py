"""The ``lxr`` command line: validation, output shapes, exit codes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

EXPERIMENT = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata:
  name: {name}
  labels: {{team: cli}}
spec:
  executable:
    command: [{python}, -c, "import sys; sys.exit(0)"]
  sweep:
    grid:
      lr: [0.1, 0.2]
      seed: [1, 2]
"""


def lxr(
    *args: str, state: Path, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return run_cli(state, *args, timeout=timeout, check=check)


def db_dump(state: Path) -> list[str]:
    """Every row of every table, to prove a failed command wrote nothing."""
    path = state / "lxr" / "lxr.db"
    if not path.exists():
        return []
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        return [f"{t}:{row}" for t in sorted(tables) for row in con.execute(f"select * from {t}")]
    finally:
        con.close()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda t: t.replace("  sweep:", "  sweeep:"), "spec.sweeep: unknown field"),
        (
            lambda t: t.replace("seed: [1, 2]", 'seed: "12"'),
            "spec.sweep.grid.seed: Input should be a valid array (got '12')",
        ),
        (lambda t: t + "  parallelism: two\n", "spec.parallelism: Input should be a valid integer"),
        (
            lambda t: t + "  parallelism: 0\n",
            "spec.parallelism: Input should be greater than or equal to 1",
        ),
        (
            lambda t: t.replace("name: {name}", "name: Bad_Name"),
            "metadata.name: String should match pattern",
        ),
        (lambda t: t.replace("kind: Experiment", "kind: Experimnt"), "kind: expected one of"),
        (
            lambda t: t.replace("    grid:", "    grid: [").replace("seed: [1, 2]", "seed: [1, 2"),
            "invalid YAML",
        ),
        (
            lambda t: t + "  requeue: Sometimes\n",
            "spec.requeue: Input should be 'Controller' or 'Scheduler'",
        ),
    ],
)
def test_invalid_input_exits_2_names_file_and_field_and_writes_nothing(
    tmp_path: Path, state: Path, mutation, expected: str
) -> None:
    good = write(tmp_path, EXPERIMENT.format(name="first", python=sys.executable), "good.yaml")
    assert lxr("apply", "-f", str(good), state=state).returncode == 0
    before = db_dump(state)
    bad = write(
        tmp_path, mutation(EXPERIMENT).format(name="second", python=sys.executable), "bad.yaml"
    )
    result = lxr("apply", "-f", str(bad), state=state)
    assert result.returncode == 2, result.stderr
    assert str(bad) in result.stderr
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert db_dump(state) == before


def test_one_bad_document_in_a_directory_writes_nothing(tmp_path: Path, state: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    write(d, EXPERIMENT.format(name="ok-one", python=sys.executable), "a.yaml")
    write(
        d,
        EXPERIMENT.format(name="bad-one", python=sys.executable).replace("sweep:", "swep:"),
        "b.yaml",
    )
    result = lxr("apply", "-f", str(d), state=state)
    assert result.returncode == 2
    assert "b.yaml: spec.swep: unknown field" in result.stderr
    assert db_dump(state) == []


def test_immutable_fields_and_generation(tmp_path: Path, state: Path) -> None:
    text = EXPERIMENT.format(name="gen", python=sys.executable)
    path = write(tmp_path, text)
    assert "experiment/gen created" in lxr("apply", "-f", str(path), state=state, check=True).stdout
    assert "unchanged" in lxr("apply", "-f", str(path), state=state, check=True).stdout
    write(tmp_path, text + "  backoffLimitPerIndex: 5\n")
    assert "configured" in lxr("apply", "-f", str(path), state=state, check=True).stdout
    gen = json.loads(lxr("get", "experiments", "gen", "-o", "json", state=state, check=True).stdout)
    assert gen["metadata"]["generation"] == 2
    # the sweep may change (issue 15.3); what each work unit runs may not
    write(tmp_path, text + "  resources: {cpus: 2}\n")
    result = lxr("apply", "-f", str(path), state=state)
    assert result.returncode == 2 and "spec.resources: field is immutable" in result.stderr
    assert "a new experiment is the answer" in result.stderr
    # a labels-only change does not bump the generation
    write(tmp_path, text.replace("team: cli", "team: other") + "  backoffLimitPerIndex: 5\n")
    lxr("apply", "-f", str(path), state=state, check=True)
    gen = json.loads(lxr("get", "experiments", "gen", "-o", "json", state=state, check=True).stdout)
    assert gen["metadata"]["generation"] == 2 and gen["metadata"]["labels"] == {"team": "other"}


def test_dry_run_writes_nothing(tmp_path: Path, state: Path) -> None:
    path = write(tmp_path, EXPERIMENT.format(name="dry", python=sys.executable))
    result = lxr("apply", "-f", str(path), "--dry-run", state=state, check=True)
    assert "experiment/dry created (dry run)" in result.stdout
    assert not any(row.startswith("experiments:") for row in db_dump(state))


def test_status_in_input_is_ignored_with_a_warning(tmp_path: Path, state: Path) -> None:
    text = (
        EXPERIMENT.format(name="withstatus", python=sys.executable)
        + "status:\n  phase: Succeeded\n"
    )
    result = lxr("apply", "-f", str(write(tmp_path, text)), state=state, check=True)
    assert "status is written by lxr; ignored" in result.stderr
    exp = json.loads(
        lxr("get", "experiments", "withstatus", "-o", "json", state=state, check=True).stdout
    )
    assert exp["status"]["phase"] == "Pending"


def test_quickstart_converges_and_lists_are_kubectl_shaped(state: Path) -> None:
    result = lxr(
        "apply", "-f", "examples/quickstart.yaml", "--wait", "--timeout", "120", state=state
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Succeeded") >= 6
    listing = json.loads(
        lxr(
            "get", "workunits", "-l", "experiment=quickstart", "-o", "json", state=state, check=True
        ).stdout
    )
    assert listing["apiVersion"] == "lxr.dev/v1alpha1" and listing["kind"] == "List"
    items = listing["items"]
    assert len(items) == 6
    assert {(i["spec"]["args"]["lr"], i["spec"]["args"]["batch_size"]) for i in items} == {
        (lr, bs) for lr in (0.1, 0.01, 0.001) for bs in (32, 64)
    }
    for item in items:
        assert item["kind"] == "WorkUnit"
        assert item["metadata"]["labels"]["experiment"] == "quickstart"
        assert item["metadata"]["name"].startswith("quickstart-")
        assert item["spec"]["env"] == {}
        assert item["status"]["phase"] == "Succeeded"
        (att,) = item["status"]["attempts"]
        assert {"jobId", "index", "exitCode", "reason", "startTime", "endTime"} <= set(att)
        assert att["exitCode"] == 0
    exp = json.loads(
        lxr("get", "experiments", "quickstart", "-o", "json", state=state, check=True).stdout
    )
    assert exp["kind"] == "Experiment" and exp["status"]["phase"] == "Succeeded"
    conds = {c["type"]: c["status"] for c in exp["status"]["conditions"]}
    assert conds == {
        "Submitted": "True",
        "Finished": "True",
        "Succeeded": "True",
        "Failed": "False",
    }
    one = lxr("get", "workunits", "-l", "experiment=quickstart,index=3", "-o", "name", state=state)
    assert one.stdout.split() == ["workunit/quickstart-3"], one.stdout + one.stderr
    names = lxr("get", "experiments", "-o", "name", state=state, check=True).stdout.split()
    assert names == ["experiment/quickstart"]
    assert (
        lxr("wait", "experiment", "quickstart", "--for=condition=Succeeded", state=state).returncode
        == 0
    )
    assert (
        lxr("wait", "experiment", "quickstart", "--for=condition=Failed", state=state).returncode
        == 1
    )
    describe = lxr("describe", "experiment", "quickstart", state=state, check=True).stdout
    assert "AllSucceeded" in describe and "Submitted" in describe
    logs = lxr("logs", "experiment", "quickstart", "--wu", "2", state=state, check=True).stdout
    assert "done: lr=0.01 batch_size=32" in logs


def test_unknown_names_exit_1_with_message(state: Path) -> None:
    result = lxr("get", "experiments", "nope", state=state)
    assert result.returncode == 1 and "experiment 'nope' not found" in result.stderr


def test_help_teaches_and_does_not_import_heavy_modules(state: Path) -> None:
    result = lxr("--help", state=state, check=True)
    assert "lxr apply -f examples/quickstart.yaml --wait" in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from lxr.cli.main import app; "
            "print(any(m.startswith(('xmanager', 'sqlalchemy', 'asyncssh')) for m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert probe.stdout.strip() == "False"


def test_schema_matches_crds(state: Path) -> None:
    out = json.loads(lxr("schema", "Experiment", state=state, check=True).stdout)
    committed = json.loads((REPO / "crds" / "experiment.schema.json").read_text())
    assert out == committed


def test_dry_run_of_a_cluster_and_its_experiment_together(state: Path) -> None:
    result = lxr("apply", "-f", "examples/slurm/", "--dry-run", state=state)
    assert result.returncode == 0, result.stderr
    assert "cluster/dev-slurm created (dry run)" in result.stdout
    assert "experiment/slurm-sweep created (dry run)" in result.stdout
    assert db_dump(state) == [] or not any(
        r.startswith(("experiments:", "clusters:")) for r in db_dump(state)
    )


def test_stop_one_work_unit_of_an_experiment(tmp_path: Path, state: Path) -> None:
    path = write(tmp_path, EXPERIMENT.format(name="st", python=sys.executable))
    assert lxr("apply", "-f", str(path), state=state).returncode == 0
    res = lxr("stop", "experiment", "st", "--wu", "2", state=state)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "experiment/st work units 2: stop requested"
    again = lxr("stop", "experiment", "st", "--wu", "2", state=state)
    assert "nothing to stop" in again.stdout
    missing = lxr("stop", "experiment", "st", "--wu", "9", state=state)
    assert missing.returncode == 1 and "no work unit 9" in missing.stderr
    # the controller stops it; the other three run to Succeeded
    done = lxr(
        "wait", "experiment", "st", "--for", "condition=Finished", "--timeout", "90", state=state
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(
        lxr("get", "workunits", "-l", "experiment=st", "-o", "json", state=state).stdout
    )
    phases = {item["spec"]["index"]: item["status"]["phase"] for item in got["items"]}
    assert phases == {0: "Succeeded", 1: "Succeeded", 2: "Stopped", 3: "Succeeded"}
