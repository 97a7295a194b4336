"""The fast path of reads (``lxr get``, ``describe experiment`` without typer, through the
plain-SQL reader) prints exactly what typer's path prints, for every form it takes, and
leaves everything else to typer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lxr.cli.fastpath import parse
from lxr.store.reads import UNIT_ORDER
from tests.conftest import REPO, run_cli

SWEEP = f"""\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata:
  name: fp
  labels: {{team: vision}}
  annotations: {{lxr.dev/title: "[bold]x[/bold]"}}
spec:
  executable:
    command: [{sys.executable}, -c, "import sys; sys.exit(3 if '--bad' in sys.argv else 0)"]
  workUnits:
  - args: {{note: "[/scratch/x]"}}
  - args: {{bad: true}}
    name: broken
  - args: {{long: "{"a" * 90}"}}
  backoffLimitPerIndex: 0
"""
PENDING = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {name: waits, labels: {team: audio}}
spec:
  executable: {command: ["true"]}
  sweep: {grid: {lr: [0.1, 0.01], seed: [1, 2]}}
  parallelism: 2
---
apiVersion: lxr.dev/v1alpha1
kind: Cluster
metadata: {name: login, labels: {site: a}}
spec:
  scheduler: slurm
  ssh: {host: 127.0.0.1, port: 2222, user: lxr}
"""
FAST = [sys.executable, "-m", "lxr.cli"]
TYPER = [sys.executable, "-c", "from lxr.cli.main import main; main(fast=False)"]


def run(cmd: list[str], state: Path, *args: str, stdin: str | None = None):
    return run_cli(state, *args, stdin=stdin, argv=cmd)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("fastpath") / "state"
    res = run(FAST, state, "apply", "-f", "-", "--wait", "--timeout", "120", stdin=SWEEP)
    assert res.returncode == 1, res.stdout + res.stderr  # fp-1 fails, on purpose
    res = run(FAST, state, "apply", "-f", "-", stdin=PENDING)
    assert res.returncode == 0, res.stderr
    return state


# every form the fast path takes; each is also run through typer
HANDLED = [
    "get experiments",
    "get exp -o wide",
    "get exp fp",
    "get exp/fp -o yaml",
    "get experiments -o json",
    "get experiment fp -o json",
    "get experiments -o name",
    "get exp -l team=vision",
    "get exp --selector=team!=vision --sort-by .metadata.name",
    "get exp -l team=vision -l team",
    "get exp -o custom-columns=N:.metadata.name,P:.status.phase,PAR:.spec.parallelism",
    "get exp -o jsonpath={.items[*].metadata.name}",
    "get exp --no-headers",
    "get exp --output=name --output=wide",
    "get exp nope",
    "get exp fp nope",
    "get exp -o bogus",
    "get exp -l =x",
    "get exp --sort-by .a[",
    "get exp wu/fp-1",
    "get exp/",
    "get workunits",
    "get wu fp",
    "get wu fp -o wide",
    "get wu fp-1 -o json",
    "get wu fp -o yaml",
    "get wu -l experiment=fp -o name",
    "get wu -l index=1",
    "get wu -l name=broken -o wide",
    "get wu --phase failed",
    "get wu --phase=SUCCEEDED -o name",
    "get wu --phase bogus",
    "get wu fp --sort-by .status.phase",
    "get wu --sort-by .status.exitCode -o name",
    "get wu waits fp --sort-by .metadata.name",
    "get wu --sort-by {.status.reason} -o wide",
    "get wu --sort-by .spec.args.note",
    "get wu --sort-by {.spec.index} -o custom-columns=N:.metadata.name,I:.spec.index",
    "get wu nope",
    "get wu fp-9",
    "get wu -o jsonpath={.items[0].metadata.name}",
    "get wu fp waits --no-headers -o wide",
    "get clusters",
    "get clusters login -o yaml",
    "get clusters -o json",
    "get clusters local",
    "get clusters local -o json",
    "get clusters nope",
    "get cluster -o name -l site=a",
    "get events",
    "get events fp",
    "get events fp -o json --limit 2",
    "get events nope",
    "describe experiment fp",
    "describe exp waits",
    "describe exp/fp",
    "describe experiment nope",
]
# left to typer: help, forms this parser does not take, other commands, typos
LEFT = [
    "",
    "get",
    "get --help",
    "get exp --help",
    "get exp -h",
    "get exp -ojson",
    "get exp -o",
    "get exp -- fp",
    "get exp --outptu json",
    "get exp -wo json",
    "get exp --no-headers=1",
    "get clusters -w",
    "get events --limit x",
    "get events a b",
    "get pods",
    "describe experiment",
    "describe experiment a b",
    "describe cluster local",
    "describe wu fp-1",
    "-v get exp",
    "apply -f x",
]


def _words(line: str) -> list[str]:
    return line.split()


def _same(text: str) -> str:
    # ages move between the two runs (5s -> 6s), and with them column widths
    return re.sub(r" +", " ", re.sub(r"\b\d+[smhd]\b", "AGE", text))


@pytest.mark.parametrize("line", HANDLED)
def test_the_fast_path_prints_what_typer_prints(state: Path, line: str) -> None:
    args = _words(line)
    assert parse(args) is not None, "the fast path takes this form"
    fast, slow = run(FAST, state, *args), run(TYPER, state, *args)
    assert (fast.returncode, _same(fast.stdout), _same(fast.stderr)) == (
        slow.returncode,
        _same(slow.stdout),
        _same(slow.stderr),
    ), line
    assert "Traceback" not in fast.stderr


@pytest.mark.parametrize("line", LEFT, ids=lambda s: s or "(nothing)")
def test_what_the_fast_path_does_not_take_is_typers(line: str) -> None:
    assert parse(_words(line)) is None


def test_reads_from_a_store_that_does_not_exist_say_so_the_same_way(tmp_path: Path) -> None:
    for line in (
        "get exp",
        "get wu nope",
        "get wu",
        "get clusters",
        "describe exp x",
        "get events",
    ):
        fast = run(FAST, tmp_path / "state", *_words(line))
        slow = run(TYPER, tmp_path / "state", *_words(line))
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            slow.returncode,
            slow.stdout,
            slow.stderr,
        ), line
        assert "no store at" in fast.stderr, line
    assert not (tmp_path / "state").exists()


def test_the_reader_reads_what_the_store_holds(state: Path) -> None:
    """Whole objects through the reader equal the store's models, key for key."""
    from lxr.cli.output import to_dict
    from lxr.store import Store
    from lxr.store.reads import Reader

    url = f"sqlite:///{state / 'lxr' / 'lxr.db'}"
    store, reader = Store(url), Reader.open(url)
    assert reader is not None
    try:

        def dumps(items) -> list[str]:
            return [json.dumps(to_dict(i)) for i in items]

        assert dumps(reader.list_experiments(full=True)) == dumps(store.list_experiments())
        assert dumps([reader.get_experiment("fp", full=True)]) == dumps(
            [store.get_experiment("fp")]
        )
        assert dumps(reader.list_clusters(full=True)) == dumps(store.list_clusters())
        assert dumps([reader.get_cluster("login", full=True)]) == dumps(
            [store.get_cluster("login")]
        )
        for name in ("fp", "waits"):
            assert dumps(reader.iter_work_units(name, page_size=2)) == dumps(
                store.list_work_units(name)
            )
            got, total = reader.work_units_needing_attention(name)
            want, want_total = store.work_units_needing_attention(name)
            assert (dumps(got), total) == (dumps(want), want_total)
        assert total == 0 and want_total == 0
        assert reader.work_units_needing_attention("fp")[1] == 1
        # a table's listing builds only what the table shows: the same rows
        from lxr.cli.output import TABLES

        for wide in (False, True):
            full = list(TABLES["WorkUnit"].rows(reader.iter_work_units("fp"), wide))
            table = list(TABLES["WorkUnit"].rows(reader.iter_work_units("fp", table=True), wide))
            assert table == full and len(full) == 3
        assert reader.list_events("fp") == store.list_events("fp")
        assert reader.cluster_events("login") == store.cluster_events("login")
        assert reader.experiments_on("local") == store.experiments_on("local")
        # light forms (tables) hold the same names, labels and status
        for light, whole in zip(reader.list_experiments(), store.list_experiments(), strict=True):
            d = to_dict(whole)
            assert light["metadata"]["labels"] == d["metadata"]["labels"]
            assert light["status"] == d["status"]
    finally:
        store.close()
        reader.close()


def test_a_database_at_another_revision_is_not_read_by_the_reader(tmp_path: Path) -> None:
    import sqlite3

    from lxr.store import Store
    from lxr.store.reads import Reader

    url = f"sqlite:///{tmp_path / 'x.db'}"
    Store(url).close()
    assert Reader.open(url) is not None
    with sqlite3.connect(tmp_path / "x.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0001'")
    assert Reader.open(url) is None, "another revision: the full store (which migrates) reads it"


@pytest.mark.integration
def test_reads_on_postgresql_go_through_psycopg_and_print_what_typer_prints(
    tmp_path: Path, postgres_url: str
) -> None:
    env_url = {"LXR_DATABASE_URL": postgres_url}

    def lxr(cmd: list[str], *args: str, stdin: str | None = None):
        env = {
            "XDG_STATE_HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LXR_NO_DAEMON": "1",
        }
        return subprocess.run(
            [*cmd, *args],
            capture_output=True,
            text=True,
            env={**env, **env_url},
            cwd=REPO,
            input=stdin,
            timeout=120,
        )

    assert lxr(FAST, "apply", "-f", "-", stdin=PENDING).returncode == 0
    for line in (
        "get exp -o wide",
        "get exp waits -o json",
        "get wu waits -o json",
        "get wu -o wide",
        "get clusters",
        "get clusters login -o yaml",
        "get events waits",
        "describe exp waits",
        "get exp nope",
    ):
        fast, slow = lxr(FAST, *_words(line)), lxr(TYPER, *_words(line))
        assert (fast.returncode, _same(fast.stdout), _same(fast.stderr)) == (
            slow.returncode,
            _same(slow.stdout),
            _same(slow.stderr),
        ), line
    from lxr.store.reads import Reader, _Core, _core_reader, _Psycopg

    # psycopg itself for a psycopg URL (no SQLAlchemy in a read), SQLAlchemy Core's
    # connection otherwise (the full store's engine, another driver): the same pages
    reader = Reader.open(postgres_url)
    assert reader is not None and isinstance(reader._conn, _Psycopg)
    core = _core_reader(postgres_url)
    assert isinstance(core, _Core)
    for conn in (reader, Reader(core, postgres_url)):
        assert [d["spec"]["index"] for d in conn.iter_work_units("waits", page_size=3)] == [
            0,
            1,
            2,
            3,
        ]
        conn.close()


def test_the_schema_revision_is_written_once() -> None:
    from lxr.store import engine, revision

    assert engine.HEAD_REVISION == revision.HEAD_REVISION, (
        "a new migration bumps HEAD_REVISION in lxr/store/revision.py (the engine imports it): "
        "reads compare the database's revision with that one"
    )


@pytest.mark.parametrize("cmd", [FAST, TYPER], ids=["fast", "typer"])
def test_a_reader_that_goes_away_ends_the_listing_quietly(tmp_path: Path, cmd: list[str]) -> None:
    big = PENDING.split("---")[0].replace("waits", "big").replace("[1, 2]", "list(range(2000))")
    big = big.replace("list(range(2000))", "[" + ", ".join(map(str, range(2000))) + "]")
    assert run(FAST, tmp_path, "apply", "-f", "-", stdin=big).returncode == 0
    line = " ".join(f"'{c}'" for c in cmd)
    for args, lines in (("get wu big", 1), ("get wu big -o json", 3), ("describe exp big", 2)):
        res = subprocess.run(
            ["bash", "-c", f"{line} {args} | head -n {lines}"],
            capture_output=True,
            text=True,
            env={
                "XDG_STATE_HOME": str(tmp_path),
                "PATH": "/usr/bin:/bin",
                "HOME": str(tmp_path),
                "LXR_NO_DAEMON": "1",
            },
            cwd=REPO,
            timeout=120,
        )
        assert res.returncode == 0 and len(res.stdout.splitlines()) == lines, res
        assert res.stderr == "", (args, res.stderr)


@pytest.mark.parametrize("path", ["{.metadata.name}", *(f".{a}.{b}" for a, b in UNIT_ORDER)])
def test_sorting_in_sql_is_the_order_of_sorting_in_memory(state: Path, path: str) -> None:
    """--sort-by on work units streams from SQL (merged across experiments): the same order
    as sorting every item in memory, ties in index order."""
    from lxr.cli.listing import iter_work_units, sql_order
    from lxr.cli.printing import sort_items
    from lxr.cli.selectors import parse_selector
    from lxr.store.reads import Reader

    reader = Reader.open(f"sqlite:///{state / 'lxr' / 'lxr.db'}")
    assert reader is not None
    try:
        assert sql_order(reader, path) is not None
        for names in ([], ["waits", "fp"], ["fp"]):
            got = list(iter_work_units(reader, names, parse_selector(None), None, sort_by=path))
            plain = list(iter_work_units(reader, names, parse_selector(None), None))
            want = sort_items(plain, path)
            assert [u["metadata"]["name"] for u in got] == [u["metadata"]["name"] for u in want]
            assert got == want
    finally:
        reader.close()
    assert sql_order(reader, ".spec.args.note") is None, "not a column: sorted in memory"
