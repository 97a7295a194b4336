"""Shared fixtures. Integration tests need real daemons from deploy/dev-cluster/: on a
machine without them they skip with the reason, except in CI (CI=true), where they fail."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from lxr.store import Store

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
DEV_ENV = REPO / "deploy" / "dev-cluster" / "env.sh"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# `lxr apply` starts a background controller when none runs. Tests start (and stop) the
# controllers they want themselves, so the suite opts out as a user can; the tests of the
# background controller (tests/test_daemon.py) opt in again.
os.environ["LXR_NO_DAEMON"] = "1"


def require(condition: bool, reason: str) -> None:
    """Skip the test when ``condition`` is false; in CI fail instead, a missing daemon is a bug."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def dev_env() -> dict[str, str]:
    """The variables deploy/dev-cluster/env.sh exports (empty if it is missing)."""
    if not DEV_ENV.exists():
        return {}
    out = subprocess.run(
        ["bash", "-c", f"set -a; . {DEV_ENV}; env -0"], capture_output=True, check=False
    ).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    return {k: v for k, v in env.items() if k.startswith("LXR_")}


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG_STATE_HOME: the default database and local job files go there. The
    user's settings (default cluster) are private too: XDG_CONFIG_HOME, no LXR_CLUSTER."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("LXR_DATABASE_URL", raising=False)
    monkeypatch.delenv("LXR_CLUSTER", raising=False)
    monkeypatch.delenv("LXR_CONFIG", raising=False)
    return home


@pytest.fixture
def store(state_home: Path) -> Iterator[Store]:
    """A fresh SQLite store in the private state dir."""
    s = Store()
    yield s
    s.close()


@pytest.fixture(scope="session")
def dev_cluster() -> dict[str, str]:
    """The dev cluster's connection settings; skips (or fails in CI) when it is not up."""
    env = dev_env()
    require(bool(env), f"{DEV_ENV} is missing: run deploy/dev-cluster/up.sh as root")
    key = env.get("LXR_DEV_SSH_KEY", "")
    require(
        os.path.exists(key),
        f"no dev cluster SSH key at {key!r}: run deploy/dev-cluster/up.sh as root",
    )
    return env


def dev_ssh(env: dict[str, str]) -> dict[str, object]:
    """A Cluster's ``spec.ssh`` for the dev cluster's sshd, from :func:`dev_cluster`'s settings."""
    return {
        "host": env["LXR_DEV_SSH_HOST"],
        "port": int(env["LXR_DEV_SSH_PORT"]),
        "user": env["LXR_DEV_SSH_USER"],
        "identityFile": env["LXR_DEV_SSH_KEY"],
        "knownHosts": env["LXR_DEV_SSH_KNOWN_HOSTS"],
    }


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to the dev cluster's PostgreSQL whose ``search_path`` is a schema of this test's
    own, dropped afterwards: test runs at the same time never see each other's tables."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = dev_env().get("LXR_TEST_POSTGRES_URL", "")
    require(bool(url), "no PostgreSQL: run deploy/dev-cluster/up.sh (LXR_TEST_POSTGRES_URL)")
    schema = f"test_{os.getpid()}_{secrets.token_hex(4)}"
    engine = create_engine(url, pool_pre_ping=True)  # survives a server restart in a test
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # any failure to connect means "not reachable"
        engine.dispose()
        require(False, f"PostgreSQL at {url} is not reachable: {exc}")
    own = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield own.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def run_cli(
    state: Path,
    *args: str,
    stdin: str | None = None,
    timeout: float = 120,
    check: bool = False,
    home: Path | None = None,
    env: dict[str, str] | None = None,
    argv: Sequence[str] = (sys.executable, "-m", "lxr.cli"),
) -> subprocess.CompletedProcess[str]:
    """``lxr ARGS`` as a user runs it, in a clean environment of its own: the store under
    ``state`` (``XDG_STATE_HOME``; ``HOME`` too unless ``home`` is given), a minimal PATH, no
    background controller, ``env`` on top; stdin is ``stdin`` or empty, never the test's."""
    full = {
        "XDG_STATE_HOME": str(state),
        "PATH": "/usr/bin:/bin",
        "HOME": str(home or state),
        "LXR_NO_DAEMON": "1",
        **(env or {}),
    }
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=REPO,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        timeout=timeout,
        check=check,
    )


def have(cmd: str) -> bool:
    """True when ``cmd`` is on PATH."""
    return shutil.which(cmd) is not None


def start_controller(state: Path, **env: str) -> subprocess.Popen[bytes]:
    """``lxr controller run`` as a separate process on the store in ``state`` (its output goes
    to ``state/controller-*.log``, see :func:`controller_logs`)."""
    full = {**os.environ, "XDG_STATE_HOME": str(state), **env}
    full.pop("LXR_DATABASE_URL", None)
    log = state / f"controller-{time.monotonic_ns()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "lxr.cli", "controller", "run"],
            cwd=REPO,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def controller_logs(state: Path) -> str:
    """Everything the controllers started by :func:`start_controller` printed."""
    return "\n".join(p.read_text() for p in sorted(state.glob("controller-*.log")))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
