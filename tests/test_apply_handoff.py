"""``lxr apply -f FILE`` handed to the running controller (lxr.cli.applyclient): the same
output, exit codes and desired state as the command applying it itself, on valid and invalid
files, and the command still applies it itself whenever no controller can."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxr.cli.applyclient import PROTOCOL, parse
from lxr.cli.applyserve import serve_apply
from lxr.reconciler.sockets import request_sockets
from lxr.store import Store
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.slow

#: runs ``lxr ...`` and prints the modules it imported as a last line on stderr
PROBE = """
import json, sys
from lxr.cli.main import main
sys.argv = ["lxr", *sys.argv[2:]]
code = 0
try:
    main(fast=__import__("os").environ["PROBE_FAST"] == "1")
except SystemExit as exc:
    code = exc.code
sys.stderr.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def lxr(state: Path, *args: str, fast: bool = True, stdin: str | None = None, cwd: Path = REPO):
    """``lxr ARGS`` on the store in ``state``: (exit code, stdout, stderr, modules)."""
    env = {**os.environ, "XDG_STATE_HOME": str(state), "PROBE_FAST": "1" if fast else "0"}
    env.pop("LXR_DATABASE_URL", None)
    res = subprocess.run(
        [sys.executable, "-c", PROBE, "lxr", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        input=stdin,
        timeout=120,
    )
    err, _, mods = res.stderr.rpartition("\nMODULES ")
    return res.returncode, res.stdout, err, json.loads(mods)


def _leading(state: Path) -> bool:
    """True once a controller of the store in ``state`` leads and serves requests."""
    db = state / "lxr" / "lxr.db"
    if not db.exists() or not list((state / "lxr" / "run").glob("*.api.sock")):
        return False
    store = Store(f"sqlite:///{db}")
    try:
        return store.lease() is not None
    finally:
        store.close()


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two stores, each with a controller leading it (a pass a minute unless woken): one is
    applied to through its controller, the other by the command itself (typer's path, which
    never hands over)."""
    base = tmp_path_factory.mktemp("handoff")
    states = (base / "a" / "state", base / "b" / "state")
    procs = []
    try:
        for state in states:
            env = {**os.environ, "XDG_STATE_HOME": str(state), "LXR_NO_DAEMON": "1"}
            env.pop("LXR_DATABASE_URL", None)
            state.mkdir(parents=True)
            with open(state / "controller.log", "wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "lxr.cli", "controller", "run", "--interval", "60"],
                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
        for state in states:
            wait_for(lambda s=state: _leading(s), 60, f"a controller leading {state}")
        yield states
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


EXPERIMENT = """apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  executable: {{command: [{python}, -c, pass]}}
  sweep: {{grid: {{i: {values}}}}}
"""


def _files(tmp: Path) -> list[tuple[str, list[str], str | None]]:
    """(what, apply's arguments, stdin) in order: each step sees the store the last left."""
    py = sys.executable
    (tmp / "new.yaml").write_text(EXPERIMENT.format(name="ho-a", python=py, values="[1, 2]"))
    (tmp / "more.yaml").write_text(EXPERIMENT.format(name="ho-a", python=py, values="[1, 2, 3]"))
    (tmp / "invalid.yaml").write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: ho-bad}\n"
        "spec:\n  executable: {command: []}\n  parallelism: -1\n  bogus: 1\n"
    )
    (tmp / "no-cluster.yaml").write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: ho-nc}\n"
        "spec:\n  cluster: nowhere\n  executable: {command: [true]}\n"
    )
    (tmp / "immutable.yaml").write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: ho-a}\n"
        "spec:\n  executable: {command: [false]}\n  sweep: {grid: {i: [1, 2, 3]}}\n"
    )
    (tmp / "status.yaml").write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: ho-s}\n"
        "spec:\n  executable: {command: [python3, missing.py]}\nstatus: {phase: Succeeded}\n"
    )
    (tmp / "two.json").write_text(
        json.dumps(
            {
                "apiVersion": "lxr.dev/v1alpha1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "lxr.dev/v1alpha1",
                        "kind": "Cluster",
                        "metadata": {"name": "ho-c"},
                        "spec": {"scheduler": "local", "maxParallel": 2},
                    },
                    {
                        "apiVersion": "lxr.dev/v1alpha1",
                        "kind": "Experiment",
                        "metadata": {"name": "ho-j"},
                        "spec": {
                            "cluster": "ho-c",
                            "executable": {"command": [py, "-c", "pass"], "workingDir": "sub"},
                        },
                    },
                ],
            }
        )  # fmt: skip
    )
    (tmp / "broken.yaml").write_text("kind: [unclosed\n")
    (tmp / "empty.yaml").write_text("# nothing\n")
    (tmp / "nul.yaml").write_text('apiVersion: "a\\0b"\n')
    stdin = EXPERIMENT.format(name="ho-in", python=py, values="[7]")
    return [
        ("created", ["-f", "new.yaml"], None),
        ("unchanged", ["-f", "./new.yaml"], None),
        ("dry run", ["apply-dry"], None),
        ("configured", ["--filename=more.yaml"], None),
        ("validation errors", ["-f", "invalid.yaml"], None),
        ("a missing cluster", ["-f", "no-cluster.yaml"], None),
        ("an immutable field", ["-f", "immutable.yaml"], None),
        ("status ignored, a missing script", ["-f", str(tmp / "status.yaml")], None),
        ("JSON, a List, a cluster", ["-f", "two.json"], None),
        ("not YAML", ["-f", "broken.yaml"], None),
        ("no resources", ["-f", "empty.yaml"], None),
        ("a NUL", ["-f", "nul.yaml"], None),
        ("too many work units", ["-f", "more.yaml", "--max-work-units", "2"], None),
        ("stdin", ["-f", "-"], stdin),
    ]


def test_a_file_handed_to_the_controller_applies_as_the_command_applies_it(
    two_stores: tuple[Path, Path], tmp_path: Path
) -> None:
    handed, itself = two_stores
    codes = []
    for what, args, stdin in _files(tmp_path):
        if args == ["apply-dry"]:
            args = ["-f", "more.yaml", "--dry-run"]
        assert parse(["apply", *args]) is not None, what
        a = lxr(handed, "apply", *args, stdin=stdin, cwd=tmp_path)
        b = lxr(itself, "apply", *args, fast=False, stdin=stdin, cwd=tmp_path)
        assert a[:3] == b[:3], what
        assert "Traceback" not in a[2], what
        # handed over: the command imported neither the models nor the database layer
        assert not [m for m in a[3] if m.split(".")[0] in ("pydantic", "sqlalchemy", "typer")]
        assert "typer" in b[3], what
        codes.append(a[0])
    assert codes.count(0) >= 5 and codes.count(2) >= 5, codes
    # the same desired state in both stores, paths resolved at apply time
    for name in ("ho-a", "ho-s", "ho-j", "ho-in"):
        specs = []
        for state in two_stores:
            store = Store(f"sqlite:///{state / 'lxr' / 'lxr.db'}")
            try:
                specs.append(store.get_experiment(name).spec.model_dump(mode="json", by_alias=True))
            finally:
                store.close()
        assert specs[0] == specs[1], name
    assert specs[0]["executable"]["workingDir"] == str(tmp_path)  # stdin: the cwd
    handed_store = Store(f"sqlite:///{handed / 'lxr' / 'lxr.db'}")
    try:
        wd = handed_store.get_experiment("ho-j").spec.executable.working_dir
    finally:
        handed_store.close()
    assert wd == str(tmp_path / "sub")


def test_what_is_not_handed_over_is_applied_by_the_command(
    two_stores: tuple[Path, Path], tmp_path: Path
) -> None:
    handed, _ = two_stores
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.yaml").write_text(
        EXPERIMENT.format(name="ho-dir", python=sys.executable, values="[1]")
    )
    for args in (["-f", "d"], ["-f", "d/x.yaml", "--wait", "--timeout", "60"], ["--help"]):
        code, out, err, mods = lxr(handed, "apply", *args, cwd=tmp_path)
        assert code == 0, err
        assert "typer" in mods, args
    assert "experiment/ho-dir" in lxr(handed, "get", "exp", "-o", "name")[1]


def test_with_no_live_controller_the_command_applies_it_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket left by a controller killed with -9 is refused: the command applies the file."""
    from lxr.reconciler.sockets import controller_socket_path, request_socket_path

    state = tmp_path / "state"
    (state / "lxr" / "run").mkdir(parents=True)
    url = f"sqlite:///{state / 'lxr' / 'lxr.db'}"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    dead = request_socket_path(controller_socket_path(url, "999999.dead"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(dead))
    sock.close()  # the file stays, nothing listens
    assert request_sockets(url) == [dead]
    (tmp_path / "x.yaml").write_text(
        EXPERIMENT.format(name="alone", python=sys.executable, values="[1]")
    )
    code, out, err, mods = lxr(state, "apply", "-f", "x.yaml", cwd=tmp_path)
    assert (code, out) == (0, "experiment/alone created\n"), err
    assert "sqlalchemy" in mods
    # stdin, read for the controller that was not there, is read again by the command
    code, out, err, _ = lxr(state, "apply", "-f", "-", stdin="kind: [x\n", cwd=tmp_path)
    assert code == 2 and "error: <stdin>" in err, err
    stdin = EXPERIMENT.format(name="alone2", python=sys.executable, values="[1]")
    code, out, err, _ = lxr(state, "apply", "-f", "-", stdin=stdin, cwd=tmp_path)
    assert (code, out) == (0, "experiment/alone2 created\n"), err


def _request(text: str, tmp: Path, **extra: object) -> dict[str, object]:
    return {
        "protocol": PROTOCOL,
        "command": "apply",
        "text": text,
        "source": "x.yaml",
        "base_dir": str(tmp),
        "home": os.environ.get("HOME"),
        "color": False,
        "dry_run": False,
        "max_work_units": None,
        **extra,
    }


def test_the_controller_hands_back_what_it_must_not_apply(store: Store, tmp_path: Path) -> None:
    package = (
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: pkg}\n"
        "spec:\n  executable:\n    package: {path: ., kind: files}\n    command: [./run.sh]\n"
    )
    assert "fallback" in serve_apply(store, _request(package, tmp_path))
    parts = (
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\nmetadata: {name: parts}\n"
        "spec:\n  components:\n    a:\n      executable: {command: [./a]}\n"
        "    b:\n      executable:\n        package: {path: ., kind: files}\n"
        "        command: [./b]\n"
    )
    assert "fallback" in serve_apply(store, _request(parts, tmp_path)), "a component's package"
    assert "fallback" in serve_apply(store, _request(package, tmp_path, protocol=PROTOCOL + 1))
    assert "fallback" in serve_apply(store, _request(package, tmp_path, home="/elsewhere"))
    assert store.list_experiments() == [], "nothing written"
    plain = EXPERIMENT.format(name="plain", python=sys.executable, values="[1]")
    answer = serve_apply(store, _request(plain, tmp_path))
    assert answer == {"stdout": "experiment/plain created\n", "stderr": "", "code": 0,
                      "wake": True}  # fmt: skip
    bad = serve_apply(store, _request("kind: Experiment\n", tmp_path))
    assert bad["code"] == 2 and bad["stderr"].startswith("error: x.yaml") and not bad["wake"]


@pytest.mark.parametrize(
    "argv",
    [
        ["apply", "-f", "x.yaml", "--wait"],
        ["apply", "-fx.yaml"],
        ["apply", "-f"],
        ["apply", "--dry-run=yes", "-f", "x"],
        ["apply", "-f", "x", "--max-work-units", "0"],
        ["apply", "-f", "x", "--max-work-units", "-3"],
        ["apply", "x.yaml"],
        ["apply", "--help"],
        ["-v", "apply", "-f", "x.yaml"],
        ["apply"],
    ],
    ids=" ".join,
)
def test_forms_the_command_reads_itself(argv: list[str]) -> None:
    assert parse(argv) is None


def test_the_handed_over_apply_starts_a_pass_at_once(
    two_stores: tuple[Path, Path], tmp_path: Path
) -> None:
    """The controller sleeps between passes; a handed-over file is planned at once."""
    handed, _ = two_stores
    (tmp_path / "now.yaml").write_text(
        EXPERIMENT.format(name="ho-now", python=sys.executable, values="[1, 2]")
    )
    started = time.monotonic()
    code, out, err, _ = lxr(handed, "apply", "-f", "now.yaml", cwd=tmp_path)
    assert (code, out) == (0, "experiment/ho-now created\n"), err
    store = Store(f"sqlite:///{handed / 'lxr' / 'lxr.db'}")
    try:
        wait_for(
            lambda: any(e.reason == "Submitted" for e in store.list_events("ho-now")),
            10,
            "the submission",
        )
    finally:
        store.close()
    assert time.monotonic() - started < 10


def test_a_controller_that_does_not_lead_hands_every_file_back(store: Store) -> None:
    """A standby's write would wait for the leader's resync: the command applies it itself."""
    import anyio

    from lxr.reconciler.controller import Controller

    served: list[dict[str, object]] = []

    def handler(_store: Store, request: dict[str, object]) -> dict[str, object]:
        served.append(request)
        return {"stdout": "", "stderr": "", "code": 0, "wake": True}

    standby = Controller(store, requests=handler)
    assert not standby.leader
    answer = anyio.run(standby._request, {"protocol": PROTOCOL, "command": "apply"})
    assert "fallback" in answer and served == []

    async def leading() -> dict[str, object]:
        assert await standby.acquire_lease()
        return await standby._request({"protocol": PROTOCOL, "command": "apply"})

    assert anyio.run(leading) == {"stdout": "", "stderr": "", "code": 0}, "wake is the server's"
    assert len(served) == 1


def test_a_request_to_a_starting_controller_waits_for_its_first_lease(store: Store) -> None:
    """``lxr apply`` hands the file to the daemon it just started as soon as its socket is up,
    before the daemon first tried to lead: it waits for that try, not answering that it does
    not lead (the command would then apply the file itself, as if no daemon had started)."""
    import anyio

    from lxr.reconciler.controller import Controller

    served: list[object] = []

    def handler(_store: Store, request: dict[str, object]) -> dict[str, object]:
        served.append(request)
        return {"stdout": "ok\n", "stderr": "", "code": 0}

    ctl = Controller(store, requests=handler)
    answers: list[dict[str, object]] = []

    async def main() -> None:
        ctl._first_lease = anyio.Event()  # what run() sets up before it listens

        async def ask() -> None:
            answers.append(await ctl._request({"protocol": PROTOCOL, "command": "apply"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await anyio.sleep(0.3)
            assert answers == [] and served == []  # waiting
            assert await ctl.acquire_lease()
            ctl._first_lease.set()

    anyio.run(main)
    assert answers == [{"stdout": "ok\n", "stderr": "", "code": 0}]
    assert len(served) == 1


def test_an_idle_controller_answers_the_request_it_is_applying_before_it_exits(
    store: Store,
) -> None:
    """A background controller exits after an idle period; a file handed to it just then is
    applied and answered (the command must not apply it again itself), and the controller
    stays for the work it was given."""
    import anyio

    from lxr.cli.applyclient import _ask
    from lxr.reconciler.controller import Controller
    from lxr.reconciler.sockets import request_socket_path

    def slow(_store: Store, request: dict[str, object]) -> dict[str, object]:
        time.sleep(1.5)  # applying takes longer than the idle period
        return {"stdout": "experiment/x created\n", "stderr": "", "code": 0}

    ctl = Controller(store, requests=slow, idle_exit=0.5, interval=0.1)
    answers: list[object] = []
    exited_at: list[float] = []

    async def main() -> None:
        async def ask() -> None:
            path = request_socket_path(ctl.socket_path)
            for _ in range(3000):  # until it leads and serves
                if ctl.leader and path.exists():
                    break
                await anyio.sleep(0.01)
            payload = json.dumps({"protocol": PROTOCOL, "command": "apply"}).encode()
            answers.append(await anyio.to_thread.run_sync(_ask, path, payload))
            answers.append(time.monotonic())

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            with anyio.fail_after(30):
                await ctl.run()
            exited_at.append(time.monotonic())

    anyio.run(main)
    answer, answered_at = answers
    assert answer == {"stdout": "experiment/x created\n", "stderr": "", "code": 0}
    # it exited idle, but only after the answer and a whole idle period after it
    assert exited_at[0] - answered_at >= 0.5 - 0.05  # type: ignore[operator]


def test_a_controller_that_decided_to_exit_hands_the_file_back(store: Store) -> None:
    """Once idle enough to exit, nothing it is handed is applied: no one would reconcile it."""
    import anyio

    from lxr.reconciler.controller import Controller

    served: list[object] = []
    ctl = Controller(store, requests=lambda _s, r: served.append(r) or {}, idle_exit=0.0)

    async def exiting() -> dict[str, object]:
        assert await ctl.acquire_lease()
        assert ctl._idle()
        return await ctl._request({"protocol": PROTOCOL, "command": "apply"})

    answer = anyio.run(exiting)
    assert "fallback" in answer and served == []
