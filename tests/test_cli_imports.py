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
    return json.loads(res.stderr.strip().splitlines()[-1])


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
