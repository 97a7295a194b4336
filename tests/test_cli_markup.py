"""User text is printed verbatim by every command: nothing is read as rich markup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

MARKUP_ARGS = {"path": "[/scratch/x]", "size": "[small]", "pat": "[a-z]", "style": "[red]hot[/]"}

EXPERIMENT = f"""\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata:
  name: markup
  labels: {{team: cli}}
spec:
  executable:
    command: [{sys.executable}, -c, "import sys; print(sys.argv[1:]); print('[bold]out[/]')"]
  workUnits:
  - args: {json.dumps(MARKUP_ARGS)}
  - args: {{path: "[/scratch/x]", fail: "[/]"}}
  backoffLimitPerIndex: 0
"""

ON_MISSING_CLUSTER = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {name: lost}
spec:
  cluster: "[/oops]"
  executable: {command: [python3, -c, "pass"]}
"""


def lxr(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(state, *args, stdin=stdin)


@pytest.fixture(scope="module")
def converged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    state = tmp_path_factory.mktemp("markup") / "state"
    path = state.parent / "markup.yaml"
    path.write_text(EXPERIMENT)
    done = lxr(state, "apply", "-f", str(path), "--wait", "--timeout", "120")
    return state, done


def _clean(res: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in res.stderr, res.stderr
    assert "MarkupError" not in res.stderr + res.stdout


def test_apply_wait_final_table_prints_args_verbatim(converged) -> None:
    _state, done = converged
    _clean(done)
    assert done.returncode == 0, done.stdout + done.stderr
    for value in MARKUP_ARGS.values():
        assert value in done.stdout, done.stdout
    assert "fail=[/]" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("get", "workunits", "markup"),
        ("get", "workunits", "markup", "-o", "wide"),
        ("get", "workunits", "-l", "experiment=markup", "-o", "yaml"),
        ("get", "workunits", "markup", "-o", "custom-columns=ARGS:.spec.args"),
        ("describe", "experiment", "markup"),
        ("describe", "workunit", "markup-0"),
        ("get", "events", "markup"),
    ],
    ids=" ".join,
)
def test_every_view_prints_markup_like_values_verbatim(converged, args: tuple[str, ...]) -> None:
    state, _ = converged
    res = lxr(state, *args)
    _clean(res)
    assert res.returncode == 0, res.stderr
    if args[0] == "get" and args[1] == "events":
        assert "experiment/markup" in res.stdout
        return
    if args[0] == "describe" and args[1] == "experiment":
        assert "[bold]out[/]" in res.stdout, res.stdout
        return
    assert "[/scratch/x]" in res.stdout
    assert "[small]" in res.stdout and "[a-z]" in res.stdout, res.stdout


def test_json_and_jsonpath_keep_values(converged) -> None:
    state, _ = converged
    listing = json.loads(lxr(state, "get", "wu", "markup", "-o", "json").stdout)
    assert listing["items"][0]["spec"]["args"] == MARKUP_ARGS
    res = lxr(state, "get", "wu", "markup", "-o", "jsonpath={.items[0].spec.args.style}")
    assert res.stdout == "[red]hot[/]"


def test_logs_print_task_output_verbatim(converged) -> None:
    state, _ = converged
    res = lxr(state, "logs", "workunit", "markup-0")
    _clean(res)
    assert "'--path=[/scratch/x]'" in res.stdout and "[bold]out[/]" in res.stdout


def test_a_cluster_named_like_markup_is_an_error_not_a_crash(converged, tmp_path: Path) -> None:
    state, _ = converged
    path = tmp_path / "lost.yaml"
    path.write_text(ON_MISSING_CLUSTER)
    res = lxr(state, "apply", "-f", str(path))
    _clean(res)
    assert res.returncode == 2
    assert "cluster '[/oops]' not found" in res.stderr, res.stderr
    assert str(path) in res.stderr
    res = lxr(state, "apply", "-f", "-", stdin=ON_MISSING_CLUSTER.replace('"[/oops]"', '"[red]"'))
    _clean(res)
    assert "'[red]'" in res.stderr


def test_not_found_names_with_markup_are_printed(converged) -> None:
    state, _ = converged
    for args in (
        ("get", "experiments", "[/nope]"),
        ("describe", "experiment", "[/nope]"),
        ("delete", "experiment", "[/nope]"),
        ("wait", "experiment", "[/nope]"),
        ("stop", "experiment", "[/nope]", "--wu", "0"),
        ("logs", "experiment", "[/nope]", "--wu", "0"),
    ):
        res = lxr(state, *args)
        _clean(res)
        assert res.returncode == 1, (args, res.stderr)
        assert "[/nope]" in res.stderr, (args, res.stderr)
