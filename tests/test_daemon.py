"""The controller that is always there: ``lxr apply`` without ``--wait`` starts one in the
background when none runs (at most one per store), it outlives the applying shell, exits when
idle, and ``lxr controller stop|status|install`` manage it. Also what ``-v`` shows."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lxr.cli.daemon import daemon_files, daemon_pid, process_alive, stop_daemon
from lxr.store import Store
from lxr.testing import finished
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "lxr.cli"]


def _sweep(path: Path, name: str, n: int, seconds: float = 0.5) -> Path:
    path.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        "  cluster: local\n"
        f"  executable: {{command: [{sys.executable}, -c, 'import time; time.sleep({seconds})']}}\n"
        f"  workUnits: [{', '.join(['{}'] * n)}]\n"
    )
    return path


def _env(state_home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state_home), **extra}
    env.pop("LXR_NO_DAEMON", None)  # the suite opts out; these tests are about the daemon
    return env


@pytest.fixture
def cleanup_daemon(store: Store):
    yield
    stop_daemon(daemon_files(store.url))


def test_apply_starts_a_controller_that_outlives_the_shell(
    state_home: Path, store: Store, tmp_path: Path, cleanup_daemon: None
) -> None:
    files = daemon_files(store.url)
    assert daemon_pid(files) is None and store.lease() is None
    sweep = _sweep(tmp_path / "s.yaml", "walkaway", 4)
    # the applying shell exits at once (and with it its session's foreground jobs)
    shell = subprocess.run(
        ["bash", "-c", f"{' '.join(CLI)} apply -f {sweep}; exit 0"],
        cwd=REPO, env=_env(state_home, LXR_DAEMON_IDLE="10"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert "started a controller in the background" in shell.stderr, shell.stderr
    wait_for(lambda: finished(store, "walkaway"), 60, "the sweep to converge without the shell")
    assert store.get_experiment("walkaway").status.phase.value == "Succeeded"
    pid = daemon_pid(files)
    assert pid, "the background controller is gone before its idle period"
    status = subprocess.run(
        [*CLI, "controller", "status"], cwd=REPO, env=_env(state_home),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"(pid {pid} on this host)" in status.stdout, status.stdout
    assert re.search(r"last cycle: .*cluster local: 1 experiment", status.stdout), status.stdout
    assert f"daemon:     pid {pid}" in status.stdout, status.stdout
    # idle for LXR_DAEMON_IDLE seconds with nothing in flight: it exits, giving the lease up
    wait_for(lambda: not process_alive(pid), 60, "the idle background controller to exit")
    assert daemon_pid(files) is None
    assert store.lease() is None
    log = files.log.read_text()
    assert "submitted job" in log and "nothing to do for 10s: exiting" in log, log


def test_a_second_apply_uses_the_running_daemon(
    state_home: Path, store: Store, tmp_path: Path, cleanup_daemon: None
) -> None:
    env = _env(state_home, LXR_DAEMON_IDLE="60")
    first = subprocess.run(
        [*CLI, "apply", "-f", str(_sweep(tmp_path / "a.yaml", "one", 1))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "started a controller" in first.stderr, first.stderr
    pid = daemon_pid(daemon_files(store.url))
    assert pid
    wait_for(lambda: store.lease() is not None, 30, "the daemon to lead")
    second = subprocess.run(
        [*CLI, "apply", "-f", str(_sweep(tmp_path / "b.yaml", "two", 2))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert second.returncode == 0 and "started a controller" not in second.stderr, second.stderr
    wait_for(lambda: finished(store, "two"), 60, "the second sweep to converge")
    lease = store.lease()
    assert lease is not None and lease[0].split(":")[1] == str(pid)
    stopped = subprocess.run(
        [*CLI, "controller", "stop"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert stopped.returncode == 0 and f"(pid {pid}) stopped" in stopped.stdout, stopped
    assert not process_alive(pid) and store.lease() is None  # SIGTERM: it gave the lease up
    again = subprocess.run(
        [*CLI, "controller", "stop"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert again.returncode == 0 and "no background controller runs" in again.stderr


#: runs ``lxr ...`` and prints the modules it imported as a last line on stderr
_PROBE = """
import json, sys
from lxr.cli.main import main
sys.argv = ["lxr", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
sys.stderr.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def _probe(env: dict[str, str], *args: str) -> tuple[int, str, str, list[str]]:
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    err, _, mods = res.stderr.rpartition("\nMODULES ")
    return res.returncode, res.stdout, err, json.loads(mods)


def test_with_no_controller_apply_hands_the_file_to_the_daemon_it_starts(
    state_home: Path, store: Store, tmp_path: Path, cleanup_daemon: None
) -> None:
    """The background controller is started first and applies the file: the command never
    imports the store or typer (applying here, then starting the daemon, paid both starts
    one after the other), prints what applying here prints, and the sweep converges."""
    env = _env(state_home, LXR_DAEMON_IDLE="30")
    code, out, err, mods = _probe(env, "apply", "-f", str(_sweep(tmp_path / "a.yaml", "cold", 2)))
    assert (code, out) == (0, "experiment/cold created\n"), err
    pid = daemon_pid(daemon_files(store.url))
    assert pid and f"started a controller in the background (pid {pid}, log " in err, err
    for heavy in ("sqlalchemy", "typer", "pydantic", "lxr.store", "yaml"):
        assert heavy not in mods, f"{heavy} imported: the command applied the file itself"
    wait_for(lambda: finished(store, "cold"), 60, "the sweep to converge")
    assert store.get_experiment("cold").status.phase.value == "Succeeded"
    lease = store.lease()
    assert lease is not None and lease[0].split(":")[1] == str(pid)


def test_with_no_controller_an_invalid_file_is_refused_in_the_commands_words(
    state_home: Path, store: Store, tmp_path: Path, cleanup_daemon: None
) -> None:
    """Handed to the daemon the command starts, it is refused as the command itself refuses
    it (exit 2, the same error, nothing written)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: bad}\n"
        "spec: {cluster: local, executable: {command: [true]}, workUnits: 3}\n"
    )
    code, out, err, _ = _probe(_env(state_home, LXR_DAEMON_IDLE="30"), "apply", "-f", str(bad))
    here = subprocess.run(
        [*CLI, "apply", "-f", str(bad), "--no-daemon"],
        cwd=REPO, env=_env(state_home), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert here.returncode == 2 and "error:" in here.stderr, here.stderr
    assert (code, out) == (2, "")
    assert (
        err.replace(str(tmp_path), "T").splitlines()[0]
        == (here.stderr.replace(str(tmp_path), "T").splitlines()[0])
    )
    assert store.list_experiments() == []


def test_no_daemon_opts_out(state_home: Path, store: Store, tmp_path: Path) -> None:
    res = subprocess.run(
        [*CLI, "apply", "-f", str(_sweep(tmp_path / "a.yaml", "manual", 1)), "--no-daemon"],
        cwd=REPO, env=_env(state_home), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "no controller is running" in res.stderr, res.stderr
    time.sleep(1)
    assert daemon_pid(daemon_files(store.url)) is None and store.lease() is None


def test_two_daemons_at_once_one_runs(
    state_home: Path, store: Store, tmp_path: Path, cleanup_daemon: None
) -> None:
    """The pid file is a lock: a second daemon started in the same instant waits for it and
    never leads while the first lives."""
    env = _env(state_home, LXR_DAEMON_IDLE="60")
    files = daemon_files(store.url)
    procs = [
        subprocess.Popen(
            [*CLI, "controller", "run", "--daemon"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        wait_for(lambda: bool(daemon_pid(files)), 30, "one daemon to hold the lock")
        holder = daemon_pid(files)
        assert holder in {p.pid for p in procs}
        other = next(p for p in procs if p.pid != holder)
        wait_for(lambda: store.lease() is not None, 30, "the daemon to lead")
        for _ in range(20):  # the other never leads, never takes the pid file
            lease = store.lease()
            assert lease is not None and lease[0].split(":")[1] == str(holder)
            assert daemon_pid(files) == holder
            assert other.poll() is None  # it waits for the lock
            time.sleep(0.1)
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=30)


def test_controller_install_writes_a_user_unit(state_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "config"
    url = "postgresql+psycopg://lxr:s3cret@db.example.org/lxr"
    env = _env(state_home, XDG_CONFIG_HOME=str(config), LXR_DATABASE_URL=url)
    dry = subprocess.run(
        [*CLI, "controller", "install", "--dry-run"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    unit = config / "systemd" / "user" / "lxr-controller.service"
    assert f"# would write {unit}" in dry.stdout
    assert f"ExecStart={sys.executable} -m lxr.cli controller run" in dry.stdout
    assert "s3cret" not in dry.stdout + dry.stderr
    assert not unit.exists()
    res = subprocess.run(
        [*CLI, "controller", "install"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"wrote {unit}" in res.stdout and "systemctl --user enable --now" in res.stdout
    text = unit.read_text()
    assert "[Install]\nWantedBy=default.target" in text and "s3cret" not in text
    assert f"Environment=XDG_STATE_HOME={state_home}" in text
    env_file = config / "lxr" / "controller.env"
    assert f"EnvironmentFile={env_file}" in text
    assert env_file.read_text() == f"LXR_DATABASE_URL={url}\n"
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_status_without_a_controller(state_home: Path) -> None:
    res = subprocess.run(
        [*CLI, "controller", "status"], cwd=REPO, env=_env(state_home),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1
    assert "leader:     none" in res.stdout and "daemon:     not running" in res.stdout
    assert not (state_home / "lxr" / "lxr.db").exists()  # a read: no store created


def test_verbose_shows_cycles_and_actions_only(state_home: Path, tmp_path: Path) -> None:
    """-v: one line per controller cycle and one per action, no library noise."""
    sweep = _sweep(tmp_path / "v.yaml", "verbose", 3, 0.2)
    res = subprocess.run(
        [*CLI, "-v", "apply", "-f", str(sweep), "--wait"], cwd=REPO,
        env=_env(state_home, LXR_NO_DAEMON="1"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    logged = [line for line in res.stderr.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    names = {line.split()[3].rstrip(":") for line in logged}
    assert names <= {"lxr.controller", "lxr.cycles"}, names
    cycles = [line for line in logged if " lxr.cycles: " in line]
    assert cycles and all(
        re.search(r"cluster local: 1 experiment\(s\), \d+ work unit\(s\) active, \d+ in flight, "
                  r"\d+ loaded, \d+ planned, \d+ action\(s\), \d+ task\(s\) submitted, "
                  r"\d+\.\d{3}s$", line)
        for line in cycles
    ), cycles  # fmt: skip
    submitted = [line for line in logged if "submitted job" in line]
    assert len(submitted) == 1 and "3 task(s) of experiment verbose" in submitted[0], logged
    assert any("experiment verbose: Succeeded" in line for line in logged), logged
    for noise in ("alembic", "sqlalchemy", "asyncssh", "Context impl", "Will assume"):
        assert noise not in res.stderr, res.stderr
    quiet = subprocess.run(
        [*CLI, "apply", "-f", str(_sweep(tmp_path / "q.yaml", "quiet", 1, 0.1)), "--wait"],
        cwd=REPO, env=_env(state_home, LXR_NO_DAEMON="1"), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert quiet.returncode == 0 and "lxr.cycles" not in quiet.stderr, quiet.stderr
