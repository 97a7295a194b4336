"""Read-only commands create no state; completion asks before editing dotfiles; names complete."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli


def lxr(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home / "state", *args, home=home, env=env)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("get", "experiments"), 0),
        (("get", "workunits", "-o", "json"), 0),
        (("get", "clusters"), 0),
        (("get", "events"), 0),
        (("get", "experiments", "nope"), 1),
        (("describe", "experiment", "nope"), 1),
        (("describe", "cluster", "nope"), 1),
        (("logs", "workunit", "nope-0"), 1),
        (("wait", "experiment", "nope", "--timeout", "5"), 1),
        (("stop", "experiment", "nope", "--wu", "0"), 1),
        (("delete", "experiment", "nope"), 1),
        (("delete", "experiment", "--all"), 0),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_reads_on_a_missing_store_say_so_and_create_nothing(
    tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    res = lxr(tmp_path, *args)
    assert res.returncode == code, res.stdout + res.stderr
    db = tmp_path / "state" / "lxr" / "lxr.db"
    assert f"no store at sqlite:///{db}" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2, res.stderr
    assert not (tmp_path / "state").exists()


def test_a_database_password_is_never_printed(tmp_path: Path) -> None:
    url = "postgresql+psycopg://lxr:s3cr3t@127.0.0.1:1/lxr"
    res = lxr(tmp_path, "get", "experiments", LXR_DATABASE_URL=url)
    assert res.returncode == 1
    assert "127.0.0.1" in res.stderr and "s3cr3t" not in res.stderr, res.stderr


def test_install_completion_asks_first_and_edits_nothing_without_a_terminal(
    tmp_path: Path,
) -> None:
    res = lxr(tmp_path, "--install-completion", SHELL="/bin/bash")
    assert res.returncode == 1
    assert ".bashrc" in res.stderr and "not asking" in res.stderr, res.stderr
    assert not (tmp_path / ".bashrc").exists()
    shown = lxr(tmp_path, "--show-completion", SHELL="/bin/bash")
    assert shown.returncode == 0 and "_LXR_COMPLETE" in shown.stdout
    assert sorted(os.listdir(tmp_path)) == []


def test_names_complete(tmp_path: Path) -> None:
    assert lxr(tmp_path, "apply", "-f", "examples/quickstart.yaml").returncode == 0

    def complete(line: str) -> list[str]:
        words = line.split()
        cword = len(words) if line.endswith(" ") else len(words) - 1
        res = lxr(tmp_path, COMP_WORDS=line, COMP_CWORD=str(cword), _LXR_COMPLETE="complete_bash")
        return res.stdout.split()

    assert complete("lxr describe experiment ") == ["quickstart"]
    assert complete("lxr describe exp quick") == ["quickstart"]
    assert complete("lxr delete experiment q") == ["quickstart"]
    assert complete("lxr get wu quickstart-") == [f"quickstart-{i}" for i in range(6)]
    assert complete("lxr describe cluster ") == ["local"]
    assert complete("lxr describe exp zz") == []


@pytest.mark.parametrize(
    "args",
    [("--help",), ("get", "--help"), ("get", "clusters", "--help"), ("apply", "--help")],
    ids=" ".join,
)
def test_help_shows_no_bool_metavar_and_no_raw_rst(tmp_path: Path, args: tuple[str, ...]) -> None:
    res = lxr(tmp_path, *args)
    assert res.returncode == 0, res.stderr
    assert "<bool>" not in res.stdout and "``" not in res.stdout, res.stdout
    assert not (tmp_path / "state").exists()
