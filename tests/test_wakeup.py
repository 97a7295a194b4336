"""`lxr apply` wakes a running controller at once: a notification, not a slow DB poll."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from lxr.reconciler.wakeup import CHANNEL, WakeupListener, notify
from lxr.store import Store
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_apply_wakes_an_idle_controller(state_home: Path, store: Store, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    log = open(tmp_path / "controller.log", "wb")  # closed in finally
    ctl = subprocess.Popen(
        [sys.executable, "-m", "lxr.cli", "controller", "run", "--interval", "60"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while store.lease() is None:
            assert time.monotonic() < deadline, "controller never took the lease"
            time.sleep(0.05)
        time.sleep(1.0)  # let it finish its first pass and go to sleep for 60 s
        exp = tmp_path / "exp.yaml"
        exp.write_text(
            "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: wake}\n"
            f"spec:\n  executable: {{command: [{sys.executable}, -c, 'pass']}}\n"
        )
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "lxr.cli", "apply", "-f", str(exp)],
            cwd=REPO,
            env=env,
            check=True,
        )
        applied = time.monotonic()
        while not any(e.reason == "Submitted" for e in store.list_events("wake")):
            assert time.monotonic() - applied < 10, "controller did not pick up the apply"
            time.sleep(0.01)
        picked_up = time.monotonic() - applied
    finally:
        ctl.terminate()
        ctl.wait(10)
        log.close()
    # the controller sleeps 60 s between cycles: only a wake-up explains seconds or less
    assert picked_up < 2.0, f"pick-up took {picked_up:.2f}s (apply itself {applied - started:.2f}s)"
    assert ctl.returncode == 0 or ctl.returncode == -15
    assert store.lease() is None, "a controller stopped with SIGTERM gives its lease up"


def test_postgres_notify_wakes_a_listener_on_any_host(tmp_path: Path, postgres_url: str) -> None:
    store = Store(postgres_url)
    conninfo = store.postgres_conninfo()
    assert conninfo is not None and conninfo.startswith("postgresql://")

    async def main() -> tuple[bool, bool, float]:
        async with WakeupListener(tmp_path / "w.sock", conninfo) as wake:
            idle = await wake.wait(0.3)
            started = time.monotonic()
            await anyio.to_thread.run_sync(store.notify, CHANNEL)
            woke = await wake.wait(10)
            return idle, woke, time.monotonic() - started

    try:
        idle, woke, seconds = anyio.run(main)
    finally:
        store.close()
    assert (idle, woke) == (False, True)
    assert seconds < 2.0, f"NOTIFY took {seconds:.2f}s to arrive"


def test_unreachable_postgres_does_not_stop_the_socket_channel(tmp_path: Path) -> None:
    sock = tmp_path / "w.sock"

    async def main() -> bool:
        bad = "postgresql://nobody:x@127.0.0.1:1/none"  # nothing listens on port 1
        async with WakeupListener(sock, bad) as wake:
            assert notify(str(sock))
            return await wake.wait(5)

    assert anyio.run(main) is True
    assert Store(f"sqlite:///{tmp_path / 'x.db'}").postgres_conninfo() is None


def test_a_deep_state_directory_still_gets_a_bindable_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state directory deeper than a Unix socket path allows (pytest's own tmp paths can
    be): the socket goes to a short per-user directory, and a controller can bind it."""
    import socket

    from lxr.reconciler.sockets import SUN_PATH_MAX, controller_socket_path

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    monkeypatch.setenv("XDG_STATE_HOME", str(deep))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path = controller_socket_path("sqlite:///x.db", "123.abcdef12")
    assert not str(path).startswith(str(deep)) and len(os.fsencode(path)) <= SUN_PATH_MAX
    assert path.parent.stat().st_mode & 0o777 == 0o700
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(path))  # what WakeupListener does
    finally:
        sock.close()
        path.unlink()
    import tempfile

    shallow = Path(tempfile.mkdtemp(prefix="lxr-"))  # /tmp/lxr-XXXXXXXX
    monkeypatch.setenv("XDG_STATE_HOME", str(shallow))
    try:  # a state directory of a usual depth keeps its sockets in its run/
        assert controller_socket_path("sqlite:///x.db", "1.a").parent == shallow / "lxr" / "run"
    finally:
        shallow.rmdir()
