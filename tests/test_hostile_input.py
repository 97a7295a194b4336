"""Hostile input to ``lxr apply``: every case exits 2 quickly, in bounded memory, naming the file
and the field, and writes nothing. A hypothesis fuzz test looks for what the cases miss."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import typer
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lxr.api.decode import DecodeError, decode_file
from lxr.api.limits import DEFAULT_LIMITS, DEFAULT_MAX_WORK_UNITS
from lxr.api.loader import LoadError, load_objects
from tests.conftest import REPO

HEAD = """\
apiVersion: lxr.dev/v1alpha1
kind: Experiment
metadata: {name: hostile}
spec:
  executable: {command: [echo]}
"""


def _laughs(levels: int) -> str:
    """A "billion laughs" inside spec.sweep.list: each level lists the one before ten times."""
    body = (
        "  sweep:\n    list:\n    - &l0 {a: [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]}\n"
    )
    for i in range(1, levels):
        body += f"    - &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]\n"
    return HEAD + body


def _json_doc(command: str, extra: str = "") -> str:
    return (
        '{"apiVersion": "lxr.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "j"}, '
        f'"spec": {{{extra}"executable": {{"command": ["echo", "{command}"]}}}}}}'
    )


GRID_1000_4 = (
    HEAD
    + "  sweep:\n    grid:\n"
    + "".join(f"      k{j}: [{', '.join(str(i) for i in range(1000))}]\n" for j in range(4))
)

# (file name, content, what the message must say)
HOSTILE = [
    (
        "kind.yaml",
        "apiVersion: lxr.dev/v1alpha1\nkind: []\nmetadata: {name: x}\nspec: {}\n",
        "kind: expected one of Cluster, Experiment, got []",
    ),
    (
        "date-key.yaml",
        HEAD + "  sweep:\n    grid:\n      2024-01-01: [1]\n",
        "spec.sweep.grid: mapping key 2024-01-01 is a date, not a string",
    ),
    (
        "int-4300.yaml",
        HEAD + "  parallelism: " + "9" * 4300 + "\n",
        "spec.parallelism (line 6, column 16): integer of 4300 characters is out of range",
    ),
    (
        "recursive.yaml",
        HEAD + "  sweep:\n    list: &a [*a]\n",
        "spec.sweep.list[0] (line 7, column 15): recursive alias *a",
    ),
    (
        "deep-3000.yaml",
        HEAD + "  sweep:\n    list: " + "[" * 3000 + "]" * 3000 + "\n",
        f"nested deeper than {DEFAULT_LIMITS.max_depth} levels",
    ),
    ("laughs-7.yaml", _laughs(7), "spec.sweep.list[4][6] (line 12, column 36): aliases expand"),
    ("laughs-9.yaml", _laughs(9), "spec.sweep.list[4][6] (line 12, column 36): aliases expand"),
    (
        "grid-1000-4.yaml",
        GRID_1000_4,
        "spec.sweep: 1000000000000 work units (1000 x 1000 x 1000 x 1000), more than the limit",
    ),
    (
        "nul-argv.yaml",
        HEAD + '  sweep: {list: [{v: "a\\0b"}]}\n',
        "spec.sweep.list[0].v: value contains a NUL character",
    ),
    (
        "nul-env.yaml",
        HEAD.replace("{command: [echo]}", '{command: [echo], env: {X: "x\\0INJECTED=yes"}}'),
        "spec.executable.env.X: value contains a NUL character",
    ),
    (
        "lone-surrogate.json",
        _json_doc("\\ud83d"),
        "spec.executable.command[1]: value is not valid Unicode (a lone surrogate)",
    ),
    (
        "int-4300.json",
        _json_doc("x", '"parallelism": ' + "9" * 4300 + ", "),
        "spec.parallelism: integer of 4300 digits is out of range",
    ),
    (
        "deep-3000.json",
        _json_doc("x", '"x": ' + "[" * 3000 + "]" * 3000 + ", "),
        "line 1, column 129: nested deeper than 32 levels",
    ),
]


def _db_rows(state: Path) -> list[str]:
    path = state / "lxr" / "lxr.db"
    if not path.exists():
        return []
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        return [f"{t}:{row}" for t in sorted(tables) for row in con.execute(f"select * from {t}")]
    finally:
        con.close()


# A small interpreter forks and execs the CLI, then writes its child's rusage. Measured from
# pytest directly, ru_maxrss would be pytest's own size: Linux starts a child's peak RSS at
# the parent's when it forks (and at exec keeps the larger), so a long test session reads as
# the CLI's memory.
_MEASURE = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump([os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime,
               usage.ru_maxrss], out)
"""


def _run_measured(args: list[str], state: Path) -> tuple[int, str, float, int]:
    """Run the CLI; return (exit code, stderr, CPU seconds, peak RSS in KiB) of that process."""
    env = {
        "XDG_STATE_HOME": str(state),
        "PATH": "/usr/bin:/bin",
        "HOME": str(state),
        "LXR_NO_DAEMON": "1",
    }
    fd, name = tempfile.mkstemp(suffix=".json", prefix="cli-usage-")
    os.close(fd)
    usage_file = Path(name)
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(usage_file), "-m", "lxr.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    code, cpu, maxrss_kib = json.loads(usage_file.read_text())
    usage_file.unlink()
    assert proc.returncode == 0, proc.stderr  # the measuring interpreter itself
    return code, proc.stderr, cpu, maxrss_kib


@pytest.mark.parametrize(("name", "text", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_file_exits_2_fast_in_bounded_memory_and_writes_nothing(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    state = tmp_path / "state"
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert len(path.read_bytes()) < 20_000  # they are all small files

    # in process: the loader alone, timed and with its allocations traced
    tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    with pytest.raises(LoadError) as info:
        load_objects(path)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # CPU time is the bound (measured here: < 0.1 s); wall time on a machine shared by many
    # test runs only has to show there is no hang
    assert cpu < 2.0, cpu
    assert elapsed < 20.0, elapsed
    assert peak < 20 * 1024 * 1024, peak
    assert any(message in p for p in info.value.problems), info.value.problems

    # the command, with and without --dry-run
    for extra in ([], ["--dry-run"]):
        code, stderr, cpu, rss_kib = _run_measured(["apply", "-f", str(path), *extra], state)
        assert code == 2, stderr
        assert str(path) in stderr and message in stderr, stderr
        assert "Traceback" not in stderr
        assert cpu < 2.0, cpu  # CPU time: wall time on a shared machine says little
        assert rss_kib < 150 * 1024, rss_kib
    assert _db_rows(state) == []


def test_alias_expansion_is_checked_as_the_events_arrive(tmp_path: Path) -> None:
    """10 levels (10¹⁰ nodes once expanded) cost what 3 levels cost: the check stops reading."""

    def path(text: str) -> Path:
        file = tmp_path / "laughs.yaml"
        file.write_text(text)
        return file

    for levels in (3, 10):
        text = _laughs(levels)
        started = time.perf_counter()
        with pytest.raises(DecodeError, match="aliases expand"):
            decode_file(path(text), replace(DEFAULT_LIMITS, max_alias_nodes=50))
        assert time.perf_counter() - started < 0.5


def test_limits_are_documented_and_the_sweep_limit_can_be_raised(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    assert "--max-work-units" in readme and "100000 work units" in readme.replace(",", "")
    grid = (
        HEAD
        + "  sweep:\n    grid:\n"
        + f"      a: [{', '.join(map(str, range(400)))}]\n"
        + f"      b: [{', '.join(map(str, range(300)))}]\n"
    )
    path = tmp_path / "big.yaml"
    path.write_text(grid)
    state = tmp_path / "state"
    code, stderr, _, _ = _run_measured(["apply", "-f", str(path), "--dry-run"], state)
    assert code == 2 and "spec.sweep: 120000 work units (400 x 300)" in stderr, stderr
    assert "--max-work-units" in stderr
    code, stderr, _, _ = _run_measured(
        ["apply", "-f", str(path), "--dry-run", "--max-work-units", "120000"], state
    )
    assert code == 0, stderr
    small = tmp_path / "small.yaml"
    small.write_text(HEAD + "  sweep: {grid: {a: [1, 2], b: [3, 4]}}\n")
    code, stderr, _, _ = _run_measured(["apply", "-f", str(small), "--max-work-units", "3"], state)
    assert code == 2 and "4 work units (2 x 2), more than the limit of 3" in stderr, stderr
    # the dry run made the schema; nothing else was written
    assert [r for r in _db_rows(state) if not r.startswith("alembic_version:")] == []


def test_a_file_past_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(HEAD + "# " + "x" * DEFAULT_LIMITS.max_file_bytes + "\n")
    with pytest.raises(LoadError, match=r"huge.yaml: larger than 4194304 bytes"):
        load_objects(path)


def test_json_files_are_parsed_as_json(tmp_path: Path) -> None:
    """A surrogate pair is one character in JSON; YAML has no way to write it."""
    path = tmp_path / "emoji.json"
    path.write_text(_json_doc("\\ud83d\\ude00"))
    (obj,) = load_objects(path)
    assert obj.obj.spec.executable.command == ["echo", "\U0001f600"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"apiVersion": "lxr.dev/v1alpha1",\n "kind": }')
    with pytest.raises(LoadError, match=r"broken.json: line 2, column 10: invalid JSON"):
        load_objects(broken)


def test_values_that_are_fine_still_load(tmp_path: Path) -> None:
    """Anchors used a few times, 64-bit integers, dates as values and non-ASCII text pass."""
    path = tmp_path / "ok.yaml"
    path.write_text(
        HEAD.replace("[echo]", "[echo, 'héllo wörld 😀']")
        + "  sweep:\n    grid:\n      seed: [&big 9223372036854775807, -9223372036854775808]\n"
        + "      day: [2024-01-01]\n    list: [{x: *big}, {x: 1}]\n"
    )
    (obj,) = load_objects(path)
    assert obj.obj.spec.sweep.grid["day"] == ["2024-01-01"]
    assert obj.obj.spec.sweep.entries[0]["x"] == 2**63 - 1


# ---------------------------------------------------------------------------- fuzz

_SNIPPETS = [
    "&a [*a]",
    "[" * 200 + "]" * 200,
    "{a: " * 100 + "1" + "}" * 100,
    "2024-01-01",
    "9" * 5000,
    '"\\0"',
    '"\\ud83d"',
    "*undefined",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!python/object:os.system x",
    "&x [&y [&z [1,1,1,1,1,1,1,1,1,1], *z, *z, *z, *z, *z, *z, *z, *z, *z], *y, *y, *y]",
    ".nan",
    "-.inf",
    "yes",
    "~",
    "[]",
    "{}",
    "''",
    "\t",
    "'unterminated",
    "- a\n- b",
    "? [complex, key]\n: 1",
]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    st.dates().map(str),
    st.sampled_from(["local", "echo", "Controller", "1Gi", "Error", "In", "x" * 70]),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["list", "grid", "env"]), inner, max_size=4
        )
    ),
    max_leaves=8,
)

_FIELDS = [
    ("kind",),
    ("apiVersion",),
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "labels"),
    ("spec",),
    ("spec", "cluster"),
    ("spec", "executable"),
    ("spec", "executable", "command"),
    ("spec", "executable", "env"),
    ("spec", "executable", "workingDir"),
    ("spec", "sweep"),
    ("spec", "sweep", "grid"),
    ("spec", "sweep", "grid", "lr"),
    ("spec", "sweep", "list"),
    ("spec", "workUnits"),
    ("spec", "parallelism"),
    ("spec", "resources"),
    ("spec", "resources", "memory"),
    ("spec", "failurePolicy"),
    ("spec", "backoff"),
    ("spec", "requeue"),
    ("status",),
]


def _base(name: str, lr: list[float]) -> dict:
    return {
        "apiVersion": "lxr.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name, "labels": {"team": "fuzz"}},
        "spec": {
            "executable": {"command": ["true"], "env": {"A": "1"}},
            "sweep": {"grid": {"lr": lr}, "list": [{"seed": 1}]},
        },
    }


@st.composite
def _files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, text): an experiment (three names, so later files update or collide with
    earlier ones), valid or with some fields replaced by random or hostile values, written as
    JSON or YAML, or with raw snippets spliced into the YAML, or random bytes."""
    doc = _base(
        draw(st.sampled_from(["fa", "fb", "fc"])),
        draw(st.sampled_from([[0.1], [0.1], [0.1], [0.1, 0.2]])),  # immutable: a new one is refused
    )
    doc["spec"]["parallelism"] = draw(st.integers(1, 3))  # mutable: "configured"
    doc["metadata"]["labels"]["team"] = draw(st.sampled_from(["fuzz", "other"]))
    mutations = draw(st.sampled_from([0, 0, 1, 2, 3]))
    for _ in range(mutations):
        path = draw(st.sampled_from(_FIELDS))
        node = doc
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if draw(st.booleans()):
            node[path[-1]] = draw(_values)
        else:
            node.pop(path[-1], None)
    how = draw(st.sampled_from(["json", "yaml", "yaml", "splice", "bytes"]))
    if how == "json":
        text = json.dumps(doc, ensure_ascii=draw(st.booleans()), default=str)
        return ".json", text.encode("utf-8", "surrogatepass")
    if how == "bytes":
        return ".yaml", draw(st.binary(max_size=200))
    try:
        text = yaml.safe_dump(doc, default_flow_style=draw(st.booleans()), allow_unicode=True)
    except yaml.YAMLError:  # PyYAML cannot write some strings (lone surrogates): JSON is YAML
        text = json.dumps(doc, default=str)
    if how == "splice":
        lines = text.splitlines()
        at = draw(st.integers(0, len(lines) - 1))
        key, sep, _ = lines[at].partition(":")
        snippet = draw(st.sampled_from(_SNIPPETS))
        lines[at] = f"{key}{sep or ':'} {snippet}"
        text = "\n".join(lines) + "\n"
    return ".yaml", text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def fuzz_state() -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A state dir whose database exists, and a connection that watches it: SQLite's
    ``data_version`` moves whenever another connection commits a write."""
    from lxr.store import Store

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        state = Path(tmp)
        mp.setenv("XDG_STATE_HOME", str(state))
        mp.delenv("LXR_DATABASE_URL", raising=False)
        Store().close()
        con = sqlite3.connect(state / "lxr" / "lxr.db")
        try:
            yield state, con
        finally:
            con.close()


def _apply_in_process(path: Path) -> tuple[int, str]:
    """The body of ``lxr apply -f PATH`` (argument parsing aside): its exit code and output.
    Any exception other than the command's exit propagates, and fails the test."""
    from lxr.cli.commands.apply import apply

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            apply(
                filename=path,
                dry_run=False,
                wait=False,
                timeout=None,
                max_work_units=DEFAULT_MAX_WORK_UNITS,
            )
            code = 0
        except typer.Exit as exc:
            code = exc.exit_code
    return code, out.getvalue()


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(case=_files())
def test_fuzzed_files_exit_0_or_2_without_traceback_and_rejections_write_nothing(
    case: tuple[str, bytes], fuzz_state: tuple[Path, sqlite3.Connection]
) -> None:
    """1000 cases through the real ``apply`` command, in process against one SQLite store, so
    accepted files accumulate and later ones meet immutability checks too."""
    state, watch = fuzz_state
    suffix, text = case
    path = state / f"case{suffix}"
    path.write_bytes(text)
    before = watch.execute("pragma data_version").fetchone()
    code, output = _apply_in_process(path)
    event(
        f"exit {code}"
        + (" (written)" if watch.execute("pragma data_version").fetchone() != before else "")
    )
    assert code in (0, 2), (text, output)
    assert "Traceback" not in output
    if code == 2:
        assert str(path) in output or "experiment" in output, output
        assert watch.execute("pragma data_version").fetchone() == before, text
