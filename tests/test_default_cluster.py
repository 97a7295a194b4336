"""The default cluster of executors that name none ($LXR_CLUSTER, else `lxr config
set-cluster`), and `lxr import lxm3-config` turning lxm3's [[clusters]] into lxr Clusters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xmanager")

from lxr import xm_cluster
from lxr.api.lxm3_config import clusters_from_lxm3
from lxr.store import Store

LXM3_CONFIG = """\
project = ""
[local.storage]
staging = "/home/alice/.cache/lxm3"

[[clusters]]
name = "cs"
server = "beaker.cs.ucl.ac.uk"
user = "alice"
ssh_private_key = "/keys/id_ucl"
proxycommand = "ssh -W %h:%p alice@jump.cs.ucl.ac.uk"
[clusters.storage]
staging = "/home/alice/lxm3-staging"

[[clusters]]
name = "myriad"
server = "myriad.rc.ucl.ac.uk"
user = "alice"
scheduler = "slurm"
"""


def _lxr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from lxr.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
        check=False,
    )


def test_an_executor_without_cluster_says_how_to_choose_one(store: Store) -> None:
    with pytest.raises(ValueError, match="LXR_CLUSTER.*lxr config set-cluster"):
        xm_cluster.Slurm().cluster_name()
    assert xm_cluster.Local().cluster_name() == "local"


def test_lxr_cluster_wins_over_the_settings_file(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = _lxr("config", "set-cluster", "nope")
    assert res.returncode == 1 and "no cluster 'nope'" in res.stderr
    res = _lxr("config", "set-cluster", "local")
    assert res.returncode == 0, res.stderr
    assert xm_cluster.GridEngine().cluster_name() == "local"
    assert _lxr("config", "get-cluster").stdout.startswith("local (from ")
    monkeypatch.setenv("LXR_CLUSTER", "dev-slurm")
    assert xm_cluster.Slurm(walltime=60).cluster_name() == "dev-slurm"
    assert xm_cluster.Slurm(cluster="other").cluster_name() == "other"
    assert _lxr("config", "get-cluster").stdout.strip() == "dev-slurm (from $LXR_CLUSTER)"


def test_lxm3_clusters_become_lxr_clusters(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(LXM3_CONFIG)
    with pytest.raises(ValueError, match="'cs' does not say its scheduler.*--scheduler"):
        clusters_from_lxm3(path)
    cs, myriad = clusters_from_lxm3(path, scheduler="sge")
    assert (cs.metadata.name, cs.spec.scheduler, myriad.spec.scheduler) == ("cs", "sge", "slurm")
    assert cs.spec.ssh is not None and cs.spec.ssh.model_dump(exclude_none=True) == {
        "host": "beaker.cs.ucl.ac.uk",
        "port": 22,
        "user": "alice",
        "identity_file": "/keys/id_ucl",
        "proxy_jump": "alice@jump.cs.ucl.ac.uk",
    }
    assert cs.spec.staging_dir == "/home/alice/lxm3-staging"
    path.write_text(LXM3_CONFIG.replace('user = "alice"\nscheduler', 'password = "x"\nscheduler'))
    with pytest.raises(ValueError, match="password.*SSH keys"):
        clusters_from_lxm3(path, scheduler="sge")


def test_import_lxm3_config_applies_them_and_sets_the_default(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(LXM3_CONFIG)
    res = _lxr("import", "lxm3-config", str(path), "--scheduler", "sge")
    assert res.returncode == 0, res.stderr
    assert "cluster/cs imported" in res.stdout and "cluster/myriad imported" in res.stdout
    assert {c.metadata.name for c in store.list_clusters()} >= {"cs", "myriad"}
    assert "default cluster: cs" in res.stderr
    assert xm_cluster.GridEngine().cluster_name() == "cs"
    missing = _lxr("import", "lxm3-config", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "no lxm3 config at" in missing.stderr
