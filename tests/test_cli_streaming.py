"""``lxr get workunits`` at scale prints a table and names from SQL's cells, without building
the work units' JSON form: the same bytes as the general printers make from the JSON form,
for awkward values (newlines, tabs, markup, unicode, numbers and YAML words as strings), in
every order ``--sort-by`` takes in SQL, across page boundaries and experiments."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from lxr.cli.formats import OutputSpec
from lxr.cli.listing import _unit_rows, iter_work_units, sql_path
from lxr.cli.output import write_list
from lxr.cli.printing import print_items, print_unit_rows
from lxr.cli.selectors import parse_selector
from lxr.store.reads import UNIT_NAME_CELLS, UNIT_TABLE_CELLS, UNIT_WIDE_CELLS, Reader
from tests.conftest import run_cli

#: strings a printer must not mangle, nor a YAML reader read as something else
AWKWARD = [
    "[x]",
    "[bold]x[/bold]",
    "a: b",
    "line1\nline2",
    "tab\there",
    "cr\rx",
    "ünïcødé ☃ 𝄞",
    "123",
    "0.5",
    "1e3",
    "010",
    "yes",
    "no",
    "null",
    "~",
    "On",
    "",
    " lead",
    "trail ",
    "2026-01-01",
    "12:30",
    "- x",
    "#c",
    "a #b",
    "*ref",
    "!tag",
    "{a}",
    "'q'",
    '"dq"',
    "back\\slash",
    "\x07bell",
    "\u2028sep",
    "a" * 90,
]


def _experiment() -> dict:
    units = []
    for i, text in enumerate(AWKWARD):
        args: dict = {"s": text, f"k{i}": i}
        if i % 5 == 0:
            args.update({"f": 1e-05, "g": 0.1, "b": True, "c": False, "big": 2**62, "h": -2.5e300})
        if i % 9 == 0:
            args = {}
        unit: dict = {"args": args}
        if i % 4 == 1:
            unit["env"] = {"E": text, "yes": "no"}
        if i % 7 == 0:
            unit["name"] = f"named-{i}"
        units.append(unit)
    return {
        "apiVersion": "lxr.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "odd", "labels": {"team": "x"}},
        "spec": {
            "executable": {
                # the units with an odd count of arguments fail: exit codes and reasons differ
                "command": [sys.executable, "-c", "import sys; sys.exit(len(sys.argv) % 2 * 3)"]
            },
            "workUnits": units,
            "backoffLimitPerIndex": 0,
        },
    }


_APPLY_WAIT = ("apply", "-f", "-", "--wait", "--timeout", "240")


def _awkward() -> str:
    return json.dumps(_experiment(), ensure_ascii=False)  # (YAML has no surrogate pairs)


PENDING = {
    "apiVersion": "lxr.dev/v1alpha1",
    "kind": "Experiment",
    "metadata": {"name": "later"},
    "spec": {
        "executable": {"command": ["true"]},
        "workUnits": [{"args": {"v": "x" * ((i * 37) % 97), "i": i}} for i in range(1100)],
    },
}


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("streaming") / "state"
    res = run_cli(state, *_APPLY_WAIT, stdin=_awkward(), timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr  # the odd ones fail, on purpose
    res = run_cli(state, "apply", "-f", "-", stdin=json.dumps(PENDING))
    assert res.returncode == 0, res.stderr
    db = state / "lxr" / "lxr.db"
    with sqlite3.connect(db) as conn:  # a waiting unit shows what it waits for as its reason
        conn.execute(
            "UPDATE work_units SET phase = 'Waiting', message = 'waiting for a/1\tto succeed'"
            " WHERE idx = 3 AND name = '3'"
        )
    opened = Reader.open(f"sqlite:///{db}")
    assert opened is not None
    yield opened
    opened.close()


def _printed(fn, *args: object) -> str:
    """What ``fn(*args)`` prints."""
    buf = io.StringIO()
    with redirect_stdout(buf):
        fn(*args)
    return buf.getvalue()


_CELLS = {"table": UNIT_TABLE_CELLS, "wide": UNIT_WIDE_CELLS, "name": UNIT_NAME_CELLS}


@pytest.mark.parametrize("fmt", ["table", "wide", "name"])
@pytest.mark.parametrize(
    "sort_by", [None, ".status.phase", "{.metadata.name}", ".status.exitCode", ".status.reason"]
)
@pytest.mark.parametrize("names", [[], ["odd"], ["later", "odd"], ["odd-3", "later-1000"]])
def test_rows_from_sql_print_what_the_objects_print(
    reader: Reader, fmt: str, sort_by: str | None, names: list[str]
) -> None:
    sel = parse_selector(None)
    path = sql_path(reader, sort_by)
    assert (path is None) == (sort_by is None)
    cells = _CELLS[fmt]
    fast = _printed(lambda: print_unit_rows(_unit_rows(reader, names, sel, None, cells, path), fmt))
    objects = iter_work_units(reader, names, sel, None, sort_by=sort_by)
    slow = _printed(lambda: print_items("WorkUnit", objects, OutputSpec(fmt)))
    assert fast == slow
    assert fast.count("\n") == len(list(iter_work_units(reader, names, sel, None))) + (
        fmt != "name"
    ), "one line per work unit (a newline in a value is written \\n)"


def test_a_table_row_shows_the_awkward_values_on_one_line(reader: Reader) -> None:
    sel = parse_selector(None)
    text = _printed(
        lambda: print_unit_rows(
            _unit_rows(reader, ["odd"], sel, None, UNIT_WIDE_CELLS, None), "wide"
        )
    )
    lines = text.split("\n")[:-1]  # (splitlines would also cut at \u2028)
    assert len(lines) == 1 + len(AWKWARD)
    assert "s=line1\\nline2" in lines[4] and "s=tab here" in lines[5] and "s=cr\\rx" in lines[6]
    assert "waiting for a/1 to succeed" in lines[4], "a waiting unit's reason is what it waits for"
    assert "s=[bold]x[/bold]" in lines[2] and "s=ünïcødé ☃ 𝄞" in lines[7]
    assert "b=True c=False" in lines[6] and "f=1e-05 g=0.1" in lines[6], "values as Python prints"


def _listing(reader: Reader, fmt: str, names: list[str], sort_by: str | None = None) -> str:
    units = iter_work_units(reader, names, parse_selector(None), None, sort_by=sort_by)
    return _printed(lambda: write_list(units, fmt, sys.stdout))


@pytest.mark.parametrize("names", [[], ["odd"]])
def test_yaml_reads_back_as_the_json(reader: Reader, names: list[str]) -> None:
    import yaml

    text = _listing(reader, "yaml", names)
    assert yaml.safe_load(text) == json.loads(_listing(reader, "json", names))
    assert 's: "[bold]x[/bold]"' in text and "s: yes" not in text and 's: "yes"' in text


def test_work_units_in_yaml_are_written_as_the_general_writer_writes_them(reader: Reader) -> None:
    """The writer of the work units' own shape and the general one agree, item for item."""
    from lxr.cli import yamltext

    units = list(iter_work_units(reader, [], parse_selector(None), None))
    general: list[str] = []
    yamltext._seq(units, "", general)
    assert _listing(reader, "yaml", []).split("\n", 3)[3] == "\n".join(general) + "\n"
    odd = {**units[0], "extra": 1}  # not a work unit's shape: the general writer's
    lines: list[str] = []
    yamltext._seq([odd], "", lines)
    assert _printed(lambda: yamltext.write_yaml_items([odd], sys.stdout)) == "\n".join(lines) + "\n"


def _sorted_listings_agree(reader: Reader, names_list: list[list[str]]) -> None:
    from lxr.cli.printing import sort_items
    from lxr.store.reads import UNIT_ORDER

    sel = parse_selector(None)
    for a, b in UNIT_ORDER:
        path = f".{a}.{b}"
        assert sql_path(reader, path) == (a, b)
        for names in names_list:
            got = list(iter_work_units(reader, names, sel, None, sort_by=path))
            want = sort_items(iter_work_units(reader, names, sel, None), path)
            assert [u["metadata"]["name"] for u in got] == [u["metadata"]["name"] for u in want]
            assert got == want
            for fmt in ("table", "name"):
                rows = _unit_rows(reader, names, sel, None, _CELLS[fmt], (a, b))
                fast = _printed(print_unit_rows, rows, fmt)
                slow = _printed(print_items, "WorkUnit", want, OutputSpec(fmt))
                assert fast == slow, (path, names, fmt)


@pytest.mark.integration
def test_postgresql_orders_text_in_sql_as_python_sorts_it(
    tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL, --sort-by is ordered in SQL too (text in code-point order): the order
    of sorting in memory, for awkward text, and the rows print what the objects print."""
    env = {"LXR_DATABASE_URL": postgres_url}
    res = run_cli(tmp_path, *_APPLY_WAIT, stdin=_awkward(), timeout=300, env=env)
    assert res.returncode == 1, res.stdout + res.stderr
    res = run_cli(tmp_path, "apply", "-f", "-", stdin=json.dumps(PENDING), env=env)
    assert res.returncode == 0, res.stderr
    reader = Reader.open(postgres_url)
    assert reader is not None and reader.orders_in_sql
    try:
        _sorted_listings_agree(reader, [[], ["later", "odd"]])
    finally:
        reader.close()


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("sort_by", [None, ".status.phase", ".metadata.name"])
@pytest.mark.parametrize("names", [[], ["odd"], ["later", "odd"], ["odd-3", "odd-5"], ["nope-1"]])
def test_json_and_yaml_from_rows_are_those_of_the_json_form(
    reader: Reader, names: list[str], sort_by: str | None, fmt: str
) -> None:
    from lxr.cli.listing import _print_unit_records

    sel = parse_selector(None)
    path = sql_path(reader, sort_by)
    if names == ["nope-1"]:
        from lxr.cli.console import exit_with

        # (typer's Exit once typer is loaded, SystemExit on the fast path)
        with pytest.raises(type(exit_with(1))):
            _printed(_print_unit_records, reader, names, sel, None, sort_by, path, fmt)
        return
    fast = _printed(_print_unit_records, reader, names, sel, None, sort_by, path, fmt)
    assert fast == _listing(reader, fmt, names, sort_by)
    failed = _printed(_print_unit_records, reader, names, sel, "Failed", sort_by, path, fmt)
    units = iter_work_units(reader, names, sel, "Failed", sort_by=sort_by)
    assert failed == _printed(lambda: write_list(units, fmt, sys.stdout))
