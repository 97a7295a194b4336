"""kubectl's habits, as a table: kind words, kind/name, selectors, output formats, sorting,
delete forms, apply from stdin, and the exit codes of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

SWEEP = f"""\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata:
  name: kq
  labels: {{team: vision, tier: gpu}}
spec:
  executable:
    command: [{sys.executable}, -c, "import sys; print('hello', sys.argv[1:])"]
  sweep:
    grid:
      lr: [0.3, 0.1]
      seed: [1, 2]
"""
OTHER = SWEEP.replace("name: kq", "name: other").replace("team: vision", "team: audio")


def lxr(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(state, *args, stdin=stdin)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("kubectl") / "state"
    res = lxr(state, "apply", "-f", "-", "--wait", "--timeout", "120", stdin=SWEEP)
    assert res.returncode == 0, res.stdout + res.stderr
    res = lxr(state, "apply", "-f", "-", stdin=OTHER)  # stays Pending: no controller runs
    assert res.returncode == 0, res.stderr
    return state


def names(out: str) -> list[str]:
    return out.split()


# (argv, exit code, a check on stdout)
CASES = [
    # kind words and kind/name
    (
        ["get", "experiments", "-o", "name"],
        0,
        lambda o: names(o) == ["experiment/kq", "experiment/other"],
    ),
    (["get", "experiment", "kq", "-o", "name"], 0, lambda o: names(o) == ["experiment/kq"]),
    (["get", "exp", "kq", "-o", "name"], 0, lambda o: names(o) == ["experiment/kq"]),
    (["get", "Experiment", "kq", "-o", "name"], 0, lambda o: names(o) == ["experiment/kq"]),
    (["get", "exp/kq", "-o", "name"], 0, lambda o: names(o) == ["experiment/kq"]),
    (["get", "exp/kq", "exp/other", "-o", "name"], 0, lambda o: len(names(o)) == 2),
    (["get", "exp/kq", "wu/kq-1"], 2, None),
    (["get", "wu", "kq", "-o", "name"], 0, lambda o: len(names(o)) == 4),
    (["get", "workunit", "kq-2", "-o", "name"], 0, lambda o: names(o) == ["workunit/kq-2"]),
    (["get", "workunits", "kq", "-o", "name"], 0, lambda o: len(names(o)) == 4),
    (["get", "wu/kq-3", "-o", "name"], 0, lambda o: names(o) == ["workunit/kq-3"]),
    (["get", "cluster", "-o", "name"], 0, lambda o: names(o) == ["cluster/local"]),
    (["get", "clusters", "local", "-o", "name"], 0, lambda o: names(o) == ["cluster/local"]),
    (["get", "pods"], 2, None),
    (["get", "wu", "nope"], 1, None),
    # selectors
    (["get", "exp", "-l", "team=vision", "-o", "name"], 0, lambda o: names(o) == ["experiment/kq"]),
    (
        ["get", "exp", "-l", "team!=vision", "-o", "name"],
        0,
        lambda o: names(o) == ["experiment/other"],
    ),
    (["get", "exp", "-l", "team in (vision,audio)", "-o", "name"], 0, lambda o: len(names(o)) == 2),
    (
        ["get", "exp", "-l", "team notin (vision)", "-o", "name"],
        0,
        lambda o: names(o) == ["experiment/other"],
    ),
    (["get", "exp", "-l", "!team", "-o", "name"], 0, lambda o: o == ""),
    (["get", "exp", "-l", "tier", "-o", "name"], 0, lambda o: len(names(o)) == 2),
    (["get", "exp", "-l", "team=vision,tier=cpu", "-o", "name"], 0, lambda o: o == ""),
    (
        ["get", "wu", "-l", "experiment=kq,index in (1,3)", "-o", "name"],
        0,
        lambda o: names(o) == ["workunit/kq-1", "workunit/kq-3"],
    ),
    (["get", "wu", "-l", "experiment=kq,index!=0", "-o", "name"], 0, lambda o: len(names(o)) == 3),
    (
        ["get", "wu", "-l", "team=audio", "-o", "name"],
        0,
        lambda o: names(o)[0].startswith("workunit/other-"),
    ),
    (["get", "exp", "-l", "team in vision"], 2, None),
    (["get", "exp", "-l", "a=b=c"], 2, None),
    (["get", "exp", "-l", "team=vision,"], 2, None),
    # --phase: any case, validated
    (["get", "wu", "kq", "--phase", "succeeded", "-o", "name"], 0, lambda o: len(names(o)) == 4),
    (["get", "wu", "kq", "--phase", "SUCCEEDED", "-o", "name"], 0, lambda o: len(names(o)) == 4),
    (
        ["get", "wu", "--phase", "Pending", "-o", "name"],
        0,
        lambda o: all("other-" in n for n in names(o)),
    ),
    (["get", "wu", "kq", "--phase", "Done"], 2, None),
    # output formats
    (
        ["get", "wu", "kq", "--no-headers"],
        0,
        lambda o: len(o.splitlines()) == 4 and "NAME" not in o,
    ),
    (
        [
            "get",
            "wu",
            "kq",
            "--sort-by",
            ".spec.args.lr",
            "-o",
            "custom-columns=N:.metadata.name,LR:.spec.args.lr",
            "--no-headers",
        ],
        0,
        lambda o: [line.split()[1] for line in o.splitlines()] == ["0.1", "0.1", "0.3", "0.3"],
    ),
    (
        ["get", "exp", "--sort-by", "{.metadata.name}", "-o", "name"],
        0,
        lambda o: names(o) == ["experiment/kq", "experiment/other"],
    ),
    (
        ["get", "exp", "-o", "custom-columns=NAME:.metadata.name,TEAM:.metadata.labels.team"],
        0,
        lambda o: o.splitlines()[0].split() == ["NAME", "TEAM"] and "kq" in o and "vision" in o,
    ),
    (["get", "exp", "-o", "jsonpath={.items[*].metadata.name}"], 0, lambda o: o == "kq other"),
    (["get", "exp", "kq", "-o", "jsonpath={.status.phase}"], 0, lambda o: o == "Succeeded"),
    (
        [
            "get",
            "wu",
            "kq",
            "-o",
            'jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\\n"}{end}',
        ],
        0,
        lambda o: o.splitlines() == [f"kq-{i}=Succeeded" for i in range(4)],
    ),
    (["get", "exp", "-o", "jsonpath={.items[}"], 2, None),
    (["get", "exp", "-o", "custom-columns=NAME"], 2, None),
    (["get", "exp", "-o", "xml"], 2, None),
    (["get", "exp", "kq", "-o", "json"], 0, lambda o: json.loads(o)["kind"] == "Experiment"),
    (["get", "wu", "kq", "-o", "yaml"], 0, lambda o: len(yaml.safe_load(o)["items"]) == 4),
    # describe
    (
        ["describe", "experiment", "kq"],
        0,
        lambda o: "Name:" in o and "AllSucceeded" in o and "None" not in o,
    ),
    (["describe", "exp/kq"], 0, lambda o: "AllSucceeded" in o),
    (["describe", "workunit", "kq-1"], 0, lambda o: "Attempts:" in o and "None" not in o),
    (["describe", "wu/kq-1"], 0, lambda o: "kq-1" in o),
    (
        ["describe", "cluster", "local"],
        0,
        lambda o: "Scheduler:" in o and "local" in o and "None" not in o,
    ),
    (["describe", "wu", "kq-9"], 1, None),
    (["describe", "exp", "nope"], 1, None),
    # wait
    (["wait", "exp", "kq", "--for=condition=Succeeded"], 0, None),
    (["wait", "exp/kq", "--for=condition=succeeded"], 0, None),
    (["wait", "exp", "kq", "--for=condition=Bogus"], 2, None),
    (["wait", "exp", "kq", "--for=bogus"], 2, None),
    (["wait", "exp", "kq", "--for=condition=Failed"], 1, None),
    # delete forms that do not delete
    (["delete", "experiment", "nope", "--ignore-not-found"], 0, None),
    (["delete", "--ignore-not-found", "experiment", "nope"], 0, None),
    (["delete", "experiment", "nope"], 1, None),
    (["delete", "experiment"], 2, None),
    (["delete", "experiment", "kq", "--all"], 2, None),
    (["delete"], 2, None),
    (["delete", "experiment", "-l", "team=nobody"], 0, lambda o: "No experiments found" in o),
]


@pytest.mark.parametrize(("argv", "code", "check"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_kubectl_forms(state: Path, argv: list[str], code: int, check) -> None:
    res = lxr(state, *argv)
    assert res.returncode == code, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    if code != 0:
        assert res.stderr.strip(), "an error says why"
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    if check is not None:
        assert check(res.stdout), res.stdout


def test_get_yaml_list_reapplies_unchanged(state: Path) -> None:
    listing = lxr(state, "get", "experiments", "-o", "yaml").stdout
    res = lxr(state, "apply", "-f", "-", stdin=listing)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["experiment/kq unchanged", "experiment/other unchanged"]
    # one warning line per item, not one per server-written field
    assert len([line for line in res.stderr.splitlines() if "written by lxr" in line]) == 2


def test_paged_json_equals_the_api_objects_with_attempts(state: Path) -> None:
    from lxr.cli.output import to_dict
    from lxr.store import Store

    store = Store(f"sqlite:///{state / 'lxr' / 'lxr.db'}")
    try:
        want = [json.dumps(to_dict(u)) for u in store.list_work_units("kq")]
        got = [json.dumps(d) for d in store.iter_work_units("kq", page_size=3)]
    finally:
        store.close()
    assert got == want
    assert all(json.loads(g)["status"]["attempts"] for g in got)


def test_delete_by_file_label_and_all(state: Path, tmp_path: Path) -> None:
    one = SWEEP.replace("name: kq", "name: gone-a")
    two = SWEEP.replace("name: kq", "name: gone-b").replace("team: vision", "team: bye")
    three = SWEEP.replace("name: kq", "name: gone-c")
    for text in (one, two, three):
        assert lxr(state, "apply", "-f", "-", stdin=text).returncode == 0
    path = tmp_path / "a.yaml"
    path.write_text(one)
    res = lxr(state, "delete", "-f", str(path), "--timeout", "60")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "experiment/gone-a deleted" in res.stdout
    res = lxr(state, "delete", "exp", "-l", "team=bye", "--timeout", "60")
    assert res.returncode == 0 and "experiment/gone-b deleted" in res.stdout, res.stderr
    res = lxr(state, "delete", "-f", str(path))
    assert res.returncode == 1 and "gone-a" in res.stderr
    assert lxr(state, "delete", "-f", str(path), "--ignore-not-found").returncode == 0
    res = lxr(state, "delete", "experiment", "--all", "--timeout", "120")
    assert res.returncode == 0, res.stdout + res.stderr
    assert lxr(state, "get", "exp", "-o", "name").stdout == ""
