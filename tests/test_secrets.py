"""Secrets stay secret: database passwords are masked in every log line and error, local tasks
get a clean environment, the database and job files are private."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lxr.redaction import RedactingFilter, redact
from lxr.schedulers.taskenv import INHERITED, task_environment
from tests.conftest import REPO

PASSWORD = "S3cret-pw"


def lxr(*args: str, state: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    # LXR_NO_DAEMON: no background controller (the tests run the controller they check)
    full = {"XDG_STATE_HOME": str(state), "PATH": "/usr/bin:/bin", "HOME": str(state)}
    full |= {"LXR_NO_DAEMON": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "lxr.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=REPO,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg://lxr:pw@db:5432/lxr", "postgresql+psycopg://lxr:***@db:5432/lxr"),
        ("on postgresql://u:p@ss@h/d now", "on postgresql://u:***@h/d now"),
        ("'mysql://root:x/y@h'", "'mysql://root:***@h'"),
        ("host=db password=hunter2 user=u", "host=db password=*** user=u"),
        ("pg://h/d?user=u&password=pw&x=1", "pg://h/d?user=u&password=***&x=1"),
        ("sqlite:////home/a/.local/state/lxr/lxr.db", "sqlite:////home/a/.local/state/lxr/lxr.db"),
        ("http://example.org:8080/x", "http://example.org:8080/x"),
    ],
)
def test_redact_masks_url_passwords(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_log_records_and_their_tracebacks_are_redacted() -> None:
    record = logging.LogRecord("lxr", logging.ERROR, __file__, 1, "cannot reach %s", ("x",), None)
    record.args = (f"postgresql://u:{PASSWORD}@h/d",)
    try:
        raise RuntimeError(f"bad url postgresql://u:{PASSWORD}@h/d")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    line = logging.Formatter().format(record)
    assert PASSWORD not in line
    assert "postgresql://u:***@h/d" in line and "RuntimeError: bad url" in line


@pytest.mark.parametrize(
    ("url", "args"),
    [
        # nothing listens on port 1: the connection fails
        (f"postgresql+psycopg://lxr:{PASSWORD}@127.0.0.1:1/lxr", ["get", "experiments"]),
        (f"postgresql+psycopg://lxr:{PASSWORD}@127.0.0.1:1/lxr", ["controller", "run", "--once"]),
        # not a URL SQLAlchemy can parse: its exception quotes the whole string
        (f"postgresql+psycopg://lxr:{PASSWORD}@127.0.0.1:port/lxr", ["get", "experiments"]),
        (f"postgresql+psycopg://lxr:{PASSWORD}@127.0.0.1:1/lxr", ["-v", "describe", "exp", "x"]),
    ],
)
def test_cli_errors_never_show_the_database_password(
    tmp_path: Path, url: str, args: list[str]
) -> None:
    result = lxr(*args, state=tmp_path, LXR_DATABASE_URL=url)
    assert result.returncode == 1, result
    output = result.stdout + result.stderr
    assert PASSWORD not in output, output
    assert "lxr:***@127.0.0.1" in output, output


@pytest.mark.integration
def test_controller_log_shows_no_password(tmp_path: Path, postgres_url: str) -> None:
    """``lxr -v controller run`` against the dev PostgreSQL: its start-up line and every log
    line name the database without the password."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    assert url.password, "the dev cluster's PostgreSQL URL has a password"
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: redact}\n"
        f"spec:\n  executable: {{command: [{sys.executable}, -c, 'print(1)']}}\n"
    )
    applied = lxr("apply", "-f", str(exp), state=tmp_path, LXR_DATABASE_URL=postgres_url)
    assert applied.returncode == 0, applied.stderr
    ran = lxr("-v", "controller", "run", "--once", state=tmp_path, LXR_DATABASE_URL=postgres_url)
    log = ran.stdout + ran.stderr
    assert ran.returncode == 0, log
    secret = f":{url.password}@"
    assert secret not in log, log
    assert f"{url.username}:***@" in log, log  # the start-up line names the database
    assert "INFO" in log  # -v: the controller's log lines were there to check


def test_state_dir_and_database_are_private_even_if_they_existed_looser(tmp_path: Path) -> None:
    home = tmp_path / "lxr"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    (home / "lxr.db").touch()
    (home / "lxr.db").chmod(0o644)
    assert lxr("get", "experiments", state=tmp_path).returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("lxr.db", "lxr.db-wal", "lxr.db-shm"):
        path = home / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (home / "lxr.db").exists()


def test_task_environment_keeps_only_the_documented_set() -> None:
    parent = {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_ALL": "C",
        "LXR_DATABASE_URL": "postgresql://u:pw@h/d",
        "AWS_SECRET_ACCESS_KEY": "x",
        "PYTHONPATH": "/p",
    }
    assert task_environment(parent) == {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C"}
    assert set(INHERITED) >= {"PATH", "HOME", "USER", "LANG"}


def test_local_task_sees_nothing_of_the_controllers_environment(tmp_path: Path) -> None:
    """A task started by ``apply --wait`` (the reconciler in that process) whose controller
    environment holds a secret, a database URL and more: the task has its spec's env, the
    LXR_* of the task, the documented inherited set, and what bash itself adds."""
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    exp = tmp_path / "env.yaml"
    exp.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: envcheck}\n"
        f"spec:\n  executable:\n    command: [{sys.executable}, -c, {json.dumps(dump)}]\n"
        "    env: {FROM_SPEC: 'yes'}\n"
    )
    controller_env = {
        "CONTROLLER_SECRET": "do-not-leak",
        "LXR_DATABASE_URL": f"sqlite:///{tmp_path / 'lxr' / 'lxr.db'}",
        "LXR_SOME_SETTING": "controller-only",
        "PYTHONPATH": "/nowhere",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
    }
    result = lxr(
        "apply", "-f", str(exp), "--wait", "--timeout", "90", state=tmp_path, **controller_env
    )
    assert result.returncode == 0, result.stderr
    logs = lxr("logs", "experiment", "envcheck", "--wu", "0", state=tmp_path, **controller_env)
    assert logs.returncode == 0, logs.stderr
    env = json.loads(logs.stdout.strip().splitlines()[-1])
    assert env["FROM_SPEC"] == "yes"
    assert env["LXR_EXPERIMENT"] == "envcheck" and env["LXR_WORK_UNIT"] == "0"
    assert env["LC_ALL"] == "C.UTF-8" and env["PATH"] == "/usr/bin:/bin"
    assert "CONTROLLER_SECRET" not in env and "PYTHONPATH" not in env
    assert "LXR_DATABASE_URL" not in env and "LXR_SOME_SETTING" not in env
    task_own = {"LXR_EXPERIMENT", "LXR_WORK_UNIT", "LXR_ATTEMPT", "LXR_JOB_DIR", "LXR_TASK_INDEX"}
    bash_own = {"PWD", "OLDPWD", "SHLVL", "_"}
    unexpected = set(env) - set(INHERITED) - {"FROM_SPEC"} - task_own - bash_own
    assert {k for k in unexpected if not k.startswith("LC_")} == set(), unexpected
    # the job files holding those values are the user's alone
    jobs = tmp_path / "lxr" / "clusters" / "local" / "jobs"
    files = [p for p in jobs.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in files), [
        (p, oct(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077
    ]
    assert stat.S_IMODE(jobs.stat().st_mode) == 0o700
    assert os.access(jobs, os.R_OK)


ENV_FROM_TASK = (
    "import hashlib, os, sys; "
    "print('A', hashlib.sha256(os.environ['TOKEN_A'].encode()).hexdigest()); "
    "print('B', hashlib.sha256(os.environ['TOKEN_B'].encode()).hexdigest()); "
    "print('SPEC', os.environ['SHARED']); print('Q', os.environ['QUOTED'])"
)


def test_env_from_a_file_and_a_command_on_the_local_cluster(tmp_path: Path) -> None:
    """Values reach the task, resolved when it starts; ``env`` wins over them; none of them
    is stored or printed by get, describe or the events."""
    import hashlib

    token_a, token_b = "tok-A-" + "7" * 20, "tok-B-" + "9" * 20
    secrets_dir = tmp_path / ".secrets"
    secrets_dir.mkdir()
    (secrets_dir / "a.env").write_text(
        f'# a comment\n\nexport TOKEN_A={token_a}\nSHARED=from-file\nQUOTED="two words"\n'
    )
    (secrets_dir / "b.txt").write_text(f"TOKEN_B='{token_b}'")  # no final newline
    exp = tmp_path / "envfrom.yaml"
    exp.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: envfrom}\n"
        "spec:\n  executable:\n"
        f"    command: [{sys.executable}, -c, {json.dumps(ENV_FROM_TASK)}]\n"
        "    env: {SHARED: from-spec}\n"
        "    envFrom:\n"
        "    - file: ~/.secrets/a.env\n"
        "    - command: [cat, .secrets/b.txt]\n"  # relative to workingDir
        "    - {file: ~/.secrets/missing.env, optional: true}\n"
        f"    workingDir: {tmp_path}\n"
    )
    result = lxr("apply", "-f", str(exp), "--wait", "--timeout", "90", state=tmp_path)
    assert result.returncode == 0, result.stderr
    logs = lxr("logs", "experiment", "envfrom", "--wu", "0", state=tmp_path)
    assert logs.stdout.splitlines() == [
        f"A {hashlib.sha256(token_a.encode()).hexdigest()}",
        f"B {hashlib.sha256(token_b.encode()).hexdigest()}",
        "SPEC from-spec",
        "Q two words",
    ], logs
    shown = ""
    for args in (
        ["get", "experiments", "envfrom", "-o", "yaml"],
        ["get", "experiments", "-o", "json"],
        ["get", "workunits", "envfrom", "-o", "yaml"],
        ["describe", "experiment", "envfrom"],
        ["get", "events"],
    ):
        out = lxr(*args, state=tmp_path)
        assert out.returncode == 0, (args, out.stderr)
        shown += out.stdout + out.stderr
    assert "~/.secrets/a.env" in shown  # the reference is shown...
    assert token_a not in shown and token_b not in shown  # ...never the values
    database = (tmp_path / "lxr" / "lxr.db").read_bytes()
    database += b"".join(p.read_bytes() for p in (tmp_path / "lxr").glob("lxr.db-*"))
    assert token_a.encode() not in database and token_b.encode() not in database
    jobs = (tmp_path / "lxr" / "clusters").rglob("*")
    assert not any(token_a.encode() in p.read_bytes() for p in jobs if p.is_file())


def test_env_from_a_missing_file_fails_the_task_with_a_message(tmp_path: Path) -> None:
    exp = tmp_path / "missing.yaml"
    exp.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: nosecret}\n"
        'spec:\n  executable:\n    command: ["true"]\n'
        "    envFrom: [{file: ~/nowhere.env}]\n  backoffLimitPerIndex: 0\n"
    )
    result = lxr("apply", "-f", str(exp), "--wait", "--timeout", "90", state=tmp_path)
    assert result.returncode == 1, result.stderr
    err = lxr("logs", "experiment", "nosecret", "--wu", "0", "--stderr", state=tmp_path)
    assert f"lxr: envFrom file {tmp_path}/nowhere.env: cannot read it" in err.stdout, err
    units = lxr("get", "workunits", "nosecret", "-o", "json", state=tmp_path)
    assert json.loads(units.stdout)["items"][0]["status"]["exitCode"] == 96


def remote_env_from(shell: Callable[[str], object], tag: str) -> tuple[dict, list[str]]:
    """For the Slurm and Grid Engine tests: secret files written on the cluster with
    ``shell`` (a command run there over ssh), and an executable whose task exits 0 only when
    ``envFrom`` delivered both values (it compares their sha256, so neither is in the spec)."""
    import hashlib
    import secrets

    tokens = [f"tokA-{secrets.token_hex(8)}", f"tokB-{secrets.token_hex(8)}"]
    d = f".lxr-envfrom/{tag}"
    shell(
        f"mkdir -p ~/{d} && chmod 700 ~/.lxr-envfrom ~/{d}"
        f" && printf 'export TOKEN_A=%s\\n' {tokens[0]} > ~/{d}/a.env"
        f" && printf \"TOKEN_B='%s'\" {tokens[1]} > ~/{d}/b.txt"
    )
    sha = [hashlib.sha256(t.encode()).hexdigest() for t in tokens]
    check = (
        f'test "$(printf %s "$TOKEN_A" | sha256sum | cut -d" " -f1)" = {sha[0]}'
        f' && test "$(printf %s "$TOKEN_B" | sha256sum | cut -d" " -f1)" = {sha[1]}'
        ' && test "$SHARED" = from-spec && echo envFrom-ok'
    )
    executable = {
        "command": ["bash", "-c", check],
        "env": {"SHARED": "from-spec"},
        "envFrom": [
            {"file": f"~/{d}/a.env"},
            {"command": ["sh", "-c", f'cat "$HOME/{d}/b.txt"']},
            {"file": f"~/{d}/missing.env", "optional": True},
        ],
    }
    return executable, tokens


def assert_shown_nowhere(name: str, tokens: list[str]) -> None:
    """None of ``tokens`` in any get/describe output of experiment ``name`` (the CLI runs on
    the store of this test's XDG_STATE_HOME) nor in the database file."""
    shown = ""
    for args in (
        ["get", "experiments", name, "-o", "yaml"],
        ["get", "experiments", "-o", "json"],
        ["get", "workunits", name, "-o", "yaml"],
        ["describe", "experiment", name],
        ["get", "events", name],
    ):
        out = subprocess.run(
            [sys.executable, "-m", "lxr.cli", *args],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, (args, out.stderr)
        shown += out.stdout + out.stderr
    assert "envFrom" in shown and ".lxr-envfrom/" in shown  # the references are shown
    assert not [t for t in tokens if t in shown], shown
    state = Path(os.environ["XDG_STATE_HOME"]) / "lxr"
    database = b"".join(p.read_bytes() for p in state.glob("lxr.db*"))
    assert database and not [t for t in tokens if t.encode() in database]
