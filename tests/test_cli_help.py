"""Every command's ``--help`` reads as help for people: values named by what they are
(``FILE``, ``SECONDS``, ``NAME``), never by a Python type (``<list[str]>``, ``<float>``,
``<bool>``), and no reStructuredText from docstrings (````x````, ``:class:``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# a Python type as typer writes it: <str>, <int>, <float>, <path>, <list[str]>, <bool>, ...
PYTHON_TYPE = re.compile(r"<(str|int|float|bool|path|file|list\[[^]]*\]|tuple|dict|choice)[^>]*>")
RST = re.compile(r"``|:(class|func|mod|meth|data|attr|exc|ref):`|^\s*\.\. [a-z]+::", re.M)


def _commands() -> list[list[str]]:
    """Every command path, groups included (``[]`` is ``lxr`` itself)."""
    from lxr.cli.app import command

    found: list[list[str]] = []

    def walk(cmd, path: list[str]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            if not sub.hidden:
                walk(sub, [*path, name])

    walk(command(), [])
    return found


COMMAND_PATHS = _commands()


def test_every_command_is_walked() -> None:
    paths = {" ".join(p) for p in COMMAND_PATHS}
    assert {"", "apply", "get experiments", "describe cluster", "logs", "controller run"} <= paths
    assert len(paths) > 25


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "lxr")
def test_help_names_values_plainly_and_has_no_rst(tmp_path: Path, path: list[str]) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-m", "lxr.cli", *path, "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert text.startswith("Usage: lxr"), text
    assert PYTHON_TYPE.findall(text) == [], text
    assert RST.findall(text) == [], text
    # an option that takes a value shows a metavar in capitals (FILE, N, KEY=VALUE)
    options = (
        text.split("\nOptions:\n", 1)[-1].split("\n\n", 1)[0] if "\nOptions:\n" in text else ""
    )
    assert "--help" in options, "every command has options (-h at least)"
    for line in options.splitlines():
        column = re.match(r"  (-\S.*?)(?:\s{2,}|$)", line)
        if column is None:
            continue
        for part in re.split(r", | / ", column.group(1)):
            words = part.split()
            assert len(words) <= 2, line
            if len(words) == 2:
                assert re.fullmatch(r"[A-Z][A-Z0-9_:=.,|-]*", words[1]), line
    assert not (tmp_path / "lxr").exists(), "help creates no state"


def test_usage_errors_name_the_value_plainly(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-m", "lxr.cli", "describe", "experiment"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert res.returncode == 2
    assert "Missing argument 'NAME'" in res.stderr, res.stderr
