"""What `lxr get` and `lxr apply` import: never the controller, a driver, SSH, Alembic,
xmanager or the rich layout engine (each costs startup time on every command)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PROBE = """
import json, sys
from lxr.cli.main import main
sys.argv = ["lxr", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""

# never imported by a read, nor by apply without --wait
FORBIDDEN = (
    "lxr.reconciler.controller",
    "lxr.reconciler.planner",
    "lxr.reconciler.actions",
    "lxr.schedulers.base",
    "lxr.schedulers.transport",
    "lxr.schedulers.ssh",
    "lxr.schedulers.local.driver",
    "lxr.schedulers.slurm.driver",
    "lxr.schedulers.sge.driver",
    "asyncssh",
    "alembic",
    "xmanager",
    "jinja2",
    "prometheus_client",
    "rich",
    "lxr.xm_cluster",
)
# reads import the database layer and the schema, no more
FORBIDDEN_FOR_GET = (*FORBIDDEN, "anyio", "yaml", "lxr.api.loader", "lxr.reconciler")


def imported(state: Path, *args: str) -> list[str]:
    env = {
        "XDG_STATE_HOME": str(state),
        "PATH": "/usr/bin:/bin",
        "HOME": str(state),
        "LXR_NO_DAEMON": "1",
    }
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    # the module list is the last JSON line (a note on a missing store may follow it, at exit)
    return json.loads([line for line in res.stderr.splitlines() if line.startswith("[")][-1])


def _store_with_an_experiment(tmp_path: Path) -> Path:
    """A state dir whose store exists (creating one migrates it, which imports Alembic)."""
    state = tmp_path / "state"
    subprocess.run(
        [sys.executable, "-m", "lxr.cli", "apply", "-f", "examples/quickstart.yaml"],
        env={
            "XDG_STATE_HOME": str(state),
            "PATH": "/usr/bin:/bin",
            "HOME": str(state),
            "LXR_NO_DAEMON": "1",
        },
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return state


def _hits(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize(
    "args",
    [
        ("get", "experiments"),
        ("get", "workunits", "-o", "json"),
        ("get", "clusters", "-o", "name"),
        ("describe", "cluster", "local"),
    ],
    ids=" ".join,
)
def test_reads_import_no_controller_driver_ssh_or_layout_engine(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    state = _store_with_an_experiment(tmp_path)
    mods = imported(state, *args)
    assert "lxr.store" in mods, "the probe ran the command"
    assert _hits(mods, FORBIDDEN_FOR_GET) == []


def test_apply_imports_no_controller_driver_or_ssh(tmp_path: Path) -> None:
    state = _store_with_an_experiment(tmp_path)
    mods = imported(state, "apply", "-f", str(REPO / "examples" / "quickstart.yaml"))
    assert "lxr.api.loader" in mods and "lxr.store" in mods
    assert _hits(mods, FORBIDDEN) == []


def test_help_imports_no_store(tmp_path: Path) -> None:
    mods = imported(tmp_path / "state", "--help")
    assert _hits(mods, ("sqlalchemy", "pydantic", "lxr.store", "lxr.api.resources")) == []


# the reads people run all day take the fast path: no typer, no SQLAlchemy, no pydantic, no
# lxr models (tables and work-unit dumps are built from rows)
FORBIDDEN_FOR_FAST_READS = (
    *FORBIDDEN_FOR_GET,
    "typer",
    "click",
    "sqlalchemy",
    "pydantic",
    "pydantic_core",
    "lxr.api.resources",
    "lxr.cli.app",
    "lxr.store.store",
    "lxr.store.engine",
)
#: how many modules such a read may import (stdlib included; 122 when this was written):
#: one heavy library more is hundreds
FAST_READ_MODULES = 160


@pytest.mark.parametrize(
    "args",
    [
        ("get", "experiments"),
        ("get", "exp", "-o", "wide"),
        ("get", "experiments", "quickstart", "-o", "name"),
        ("get", "workunits"),
        ("get", "wu", "quickstart", "-o", "json"),
        ("get", "clusters"),
        ("get", "events", "quickstart"),
        ("describe", "experiment", "quickstart"),
    ],
    ids=" ".join,
)
def test_everyday_reads_import_neither_typer_nor_sqlalchemy_nor_pydantic(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    state = _store_with_an_experiment(tmp_path)
    mods = imported(state, *args)
    assert "lxr.store.reads" in mods, "the probe ran the command"
    assert _hits(mods, FORBIDDEN_FOR_FAST_READS) == []
    assert len(mods) <= FAST_READ_MODULES, len(mods)


def test_whole_experiments_are_dumped_through_their_model_without_the_orm(tmp_path: Path) -> None:
    state = _store_with_an_experiment(tmp_path)
    mods = imported(state, "get", "experiments", "-o", "json")
    assert "lxr.api.resources" in mods, "-o json prints what the model holds"
    assert _hits(mods, ("typer", "sqlalchemy", "lxr.store.store", *FORBIDDEN_FOR_GET)) == []


def test_a_store_that_does_not_exist_is_said_without_sqlalchemy(tmp_path: Path) -> None:
    mods = imported(tmp_path / "state", "get", "experiments")
    assert "lxr.store.reads" in mods
    assert _hits(mods, FORBIDDEN_FOR_FAST_READS) == []
    assert not (tmp_path / "state").exists()


# `lxr apply -f FILE` to a running controller hands the file over (lxr.cli.applyclient): the
# command imports the standard library and a few lxr modules of plain paths, no more
FORBIDDEN_FOR_HANDED_APPLY = (
    *FORBIDDEN_FOR_FAST_READS,
    "yaml",
    "lxr.api",
    "lxr.store",
    "lxr.cli.console",
    "lxr.cli.fastpath",
    "logging",
    "typing",
)
#: how many modules a handed-over apply may import (stdlib included; 87 when this was written)
HANDED_APPLY_MODULES = 110


def test_apply_to_a_running_controller_imports_the_standard_library_only(tmp_path: Path) -> None:
    state = _store_with_an_experiment(tmp_path)
    env = {"XDG_STATE_HOME": str(state), "PATH": "/usr/bin:/bin", "HOME": str(state)}
    ctl = subprocess.Popen(
        [sys.executable, "-m", "lxr.cli", "controller", "run", "--interval", "60"],
        env={**env, "LXR_NO_DAEMON": "1"},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import time

        deadline = time.monotonic() + 60
        while not list((state / "lxr" / "run").glob("*.api.sock")):
            assert time.monotonic() < deadline and ctl.poll() is None, "no controller"
            time.sleep(0.1)
        time.sleep(0.5)  # leading: its first pass takes the lease
        mods = imported(state, "apply", "-f", str(REPO / "examples" / "quickstart.yaml"))
    finally:
        ctl.terminate()
        ctl.wait(30)
    assert "lxr.cli.applyclient" in mods, "the probe ran the command"
    # of the reconciler, only where its sockets are
    allowed = {"lxr.reconciler", "lxr.reconciler.sockets"}
    assert [m for m in _hits(mods, FORBIDDEN_FOR_HANDED_APPLY) if m not in allowed] == []
    assert len(mods) <= HANDED_APPLY_MODULES, len(mods)
