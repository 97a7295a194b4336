"""``lxr apply`` of a multi-document file is one transaction: when any document is refused,
nothing of the file is written (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lxr.store import Store
from tests.conftest import run_cli

EXPERIMENT = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec: {{executable: {{command: [/bin/true]}}, sweep: {{grid: {{x: [{values}]}}}}}}
"""
CLUSTER = """\
apiVersion: lxr.dev/v1alpha1
kind: Cluster
metadata: {name: extra}
spec: {scheduler: local}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lxr.db'}"
    return request.getfixturevalue("postgres_url")


def lxr(*args: str, url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LXR_DATABASE_URL": url}
    return run_cli(home / "state", *args, home=home, env=env)


def test_refused_last_document_writes_nothing(db_url: str, tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text(EXPERIMENT.format(name="a", values="1, 2"))
    assert lxr("apply", "-f", str(first), url=db_url, home=tmp_path).returncode == 0
    store = Store(db_url)
    try:
        events_before = store.list_events()
        # the repro: a new experiment, a new cluster, then `a` with an immutable field changed
        # (its command: the sweep itself may change since issue 15.3)
        both = tmp_path / "both.yaml"
        both.write_text(
            EXPERIMENT.format(name="b", values="1")
            + "---\n"
            + CLUSTER
            + "---\n"
            + EXPERIMENT.format(name="a", values="1, 2, 3").replace("/bin/true", "/bin/false")
        )
        result = lxr("apply", "-f", str(both), url=db_url, home=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "spec.executable: field is immutable" in result.stderr
        assert [e.metadata.name for e in store.list_experiments()] == ["a"]
        assert [c.metadata.name for c in store.list_clusters()] == ["local"]
        assert store.list_events() == events_before
        assert len(store.list_work_units("a")) == 2
    finally:
        store.close()


def test_apply_all_is_one_transaction(db_url: str) -> None:
    from lxr.api.resources import Cluster, ClusterSpec, Experiment, ObjectMeta
    from lxr.store import Invalid

    def experiment(name: str, values: list[int], command: str = "/bin/true") -> Experiment:
        return Experiment.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "cluster": "extra",
                    "executable": {"command": [command]},
                    "sweep": {"grid": {"x": values}},
                },
            }
        )

    store = Store(db_url)
    try:
        cluster = Cluster(metadata=ObjectMeta(name="extra"), spec=ClusterSpec(scheduler="local"))
        done = store.apply_all([experiment("a", [1]), cluster])  # clusters go first
        assert [(r.kind, r.action) for r in done] == [
            ("Cluster", "created"),
            ("Experiment", "created"),
        ]
        with pytest.raises(Invalid, match="spec.executable: field is immutable"):
            store.apply_all([experiment("b", [1]), experiment("a", [1, 2], "/bin/false")])
        assert [e.metadata.name for e in store.list_experiments()] == ["a"]
    finally:
        store.close()
