"""The CLI's parsers and writers, without a database: selectors, JSONPath, tables, YAML."""

from __future__ import annotations

import io
import random
import string

import pytest
import yaml

from lxr.cli.columns import shorten_middle, write_table
from lxr.cli.jsonpath import JsonPathError, evaluate, render
from lxr.cli.selectors import SelectorError, parse_selector
from lxr.cli.yamltext import write_yaml

LABELS = {"team": "vision", "tier": "gpu", "index": "3"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("team=vision", True),
        ("team==vision", True),
        ("team!=vision", False),
        ("team!=audio", True),
        ("missing!=x", True),  # kubectl: != matches objects without the key
        ("team in (vision,audio)", True),
        ("team in (audio)", False),
        ("team notin (audio, speech)", True),
        ("missing notin (a)", True),
        ("team", True),
        ("!team", False),
        ("!missing", True),
        ("team=vision,tier=gpu", True),
        ("team=vision,tier=cpu", False),
        ("index in (1,2,3),team=vision", True),
        ("team=", False),
    ],
)
def test_selectors_match_as_kubectl(selector: str, matches: bool) -> None:
    assert parse_selector([selector]).matches(LABELS) is matches


@pytest.mark.parametrize(
    "selector",
    ["a=b=c", "team in vision", "team in (vision", "a b", "=x", ",", "team=(x)", "k in (a b)"],
)
def test_bad_selectors_are_errors_never_misread(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector([selector])


DATA = {
    "kind": "List",
    "items": [
        {"metadata": {"name": "a"}, "status": {"phase": "Running", "n": 2}},
        {"metadata": {"name": "b"}, "status": {"phase": "Failed", "n": 1}},
    ],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].metadata.name}", "a b"),
        ("{.items[0].status.n}", "2"),
        ("{.items[-1].metadata.name}", "b"),
        (
            '{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}',
            "a\tRunning\nb\tFailed\n",
        ),
        ('{.items[?(@.status.phase=="Failed")].metadata.name}', "b"),
        ("{..name}", "a b"),
        ("names: {.items[*].metadata.name}!", "names: a b!"),
        ("{.items[0].metadata}", '{"name":"a"}'),
    ],
)
def test_jsonpath_templates(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize("template", ["{.items[}", "{range .items[*]}{.x}", "no braces", "{end}"])
def test_bad_jsonpath_is_an_error(template: str) -> None:
    with pytest.raises(JsonPathError):
        render(template, DATA)


def test_evaluate_missing_field_is_empty() -> None:
    assert evaluate(DATA, ".items[0].nope") == []


def test_tables_never_fold_or_cut_cells() -> None:
    long = "x" * 300
    buf = io.StringIO()
    write_table(["NAME", "PHASE"], [[long, "Running"], ["short", "Failed"]], file=buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[1] == f"{long}   Running"
    assert lines[2].startswith("short ") and lines[2].endswith("   Failed")


def test_table_widths_come_from_the_first_page_later_cells_overflow() -> None:
    from lxr.cli import columns

    rows = [[f"n{i}", "a"] for i in range(columns.PAGE)] + [["much-longer-name", "b"]]
    buf = io.StringIO()
    write_table(["NAME", "X"], rows, file=buf)
    lines = buf.getvalue().splitlines()
    assert lines[1] == "n0     a"
    assert lines[-1] == "much-longer-name   b"


def test_cells_stay_on_one_line() -> None:
    buf = io.StringIO()
    write_table(["M"], [["two\nlines"]], no_headers=True, file=buf)
    assert buf.getvalue() == "two\\nlines\n"


def test_shorten_middle() -> None:
    assert shorten_middle("abc", 5) == "abc"
    text = "lr=0.1 " + "x" * 100 + " seed=7"
    short = shorten_middle(text, 40)
    assert len(short) == 40 and short.startswith("lr=0.1 ") and short.endswith(" seed=7")
    assert "…" in short


def test_yaml_round_trips_awkward_values() -> None:
    rng = random.Random(7)
    alphabet = string.printable + "üé😀\x85\u2028"
    docs = [
        {
            "yes": "no",
            "n": [1, 1.5, 1e-05, 1e20, None, True, "010", "0x1F", "~", "", " x", "a: b"],
            "empty": {},
            "list": [],
            "nested": [[1], {"k": [{"a": 1}]}],
            "markup": "[/scratch/x]",
        }
    ]
    for _ in range(500):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        docs.append({s: [s, {s: s}], "v": s})
    for doc in docs:
        buf = io.StringIO()
        write_yaml(doc, buf)
        assert yaml.safe_load(buf.getvalue()) == doc, buf.getvalue()


def test_paged_work_units_equal_the_api_objects(tmp_path) -> None:
    """The JSON form built from rows is the pydantic model's dump, key for key and in order."""
    import json

    from lxr.api.resources import Experiment
    from lxr.cli.output import to_dict
    from lxr.store import Store

    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    exp = Experiment.model_validate(
        {
            "metadata": {"name": "pg"},
            "spec": {
                "executable": {"command": ["true"]},
                "workUnits": [{"args": {"a": "[x]", "b": 1.5}, "name": "first", "env": {"K": "v"}}]
                + [{"args": {"i": i}} for i in range(1, 7)],
            },
        }
    )
    store.apply(exp)
    want = [json.dumps(to_dict(u)) for u in store.list_work_units("pg")]
    got = [json.dumps(d) for d in store.iter_work_units("pg", page_size=3)]
    assert got == want
    assert [d["spec"]["index"] for d in store.iter_work_units("pg", index=4)] == [4]
    assert list(store.iter_work_units("pg", phase="Failed")) == []
    assert store.work_units_needing_attention("pg") == ([], 0)


def test_validation_errors_are_one_line_per_problem() -> None:
    from lxr.api.loader import LoadError, parse_object

    doc = {
        "apiVersion": "lxr.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "bad", "labels": {"bad key!": "x"}},
        "spec": {
            "executable": {"comand": ["python3"]},
            "workUnits": [{"args": {"a": {"b": 1}, "c": [1], "d": None, "ok": 1}}],
        },
    }
    with pytest.raises(LoadError) as info:
        parse_object(doc, "f.yaml")
    problems = info.value.problems
    assert problems == [
        "f.yaml: metadata.labels: invalid label key 'bad key!' (got {'bad key!': 'x'})",
        "f.yaml: spec.executable.comand: unknown field (did you mean `command`?)",
        "f.yaml: spec.workUnits[0].args.a: expected a string, an integer, a number or a "
        "boolean (got {'b': 1})",
        "f.yaml: spec.workUnits[0].args.c: expected a string, an integer, a number or a "
        "boolean (got [1])",
        "f.yaml: spec.workUnits[0].args.d: expected a string, an integer, a number or a "
        "boolean (got None)",
    ]
    assert not any("Value error" in p for p in problems)
