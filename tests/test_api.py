"""Resources, sweep expansion and argv rendering."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lxr.api.argv import render_args, task_argv
from lxr.api.resources import ExperimentSpec, Resources, parse_memory_mib
from lxr.api.sweep import expand_work_units


def spec(**kw: object) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"executable": {"command": ["run"]}, **kw})


def test_grid_is_a_cartesian_product_last_key_fastest() -> None:
    units = expand_work_units(spec(sweep={"grid": {"a": [1, 2], "b": ["x", "y", "z"]}}))
    assert [u.args for u in units] == [{"a": a, "b": b} for a in (1, 2) for b in "xyz"]
    assert [u.index for u in units] == list(range(6))


def test_grid_times_list_and_list_alone() -> None:
    units = expand_work_units(
        spec(sweep={"grid": {"a": [1, 2]}, "list": [{"m": "p"}, {"m": "q", "a": 9}]})
    )
    assert [u.args for u in units] == [
        {"a": 1, "m": "p"},
        {"a": 9, "m": "q"},
        {"a": 2, "m": "p"},
        {"a": 9, "m": "q"},
    ]
    assert [u.args for u in expand_work_units(spec(sweep={"list": [{"k": 1}]}))] == [{"k": 1}]


def test_explicit_work_units_keep_names_and_env() -> None:
    units = expand_work_units(
        spec(workUnits=[{"name": "base", "args": {"x": 1}, "env": {"A": "1"}}, {}])
    )
    assert [(u.name, u.args, u.env) for u in units] == [
        ("base", {"x": 1}, {"A": "1"}),
        ("1", {}, {}),
    ]
    assert [u.args for u in expand_work_units(spec())] == [{}]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"workUnits": [], "sweep": None}, "workUnits is empty"),
        ({"workUnits": [{}], "sweep": {"list": [{}]}}, "either workUnits or sweep"),
        ({"sweep": {}}, "a sweep needs a grid, a list, or both"),
        ({"workUnits": [{"name": "a"}, {"name": "a"}]}, "names must be unique"),
        ({"executable": {"command": []}}, "at least 1 item"),
        (
            {"executable": {"command": ["x"], "env": {"1BAD": "v"}}},
            "invalid environment variable name",
        ),
        ({"failurePolicy": {"rules": [{"action": "Count"}]}}, "onReasons, onExitCodes, or both"),
        ({"resources": {"memory": "4 GB"}}, "not a memory quantity"),
    ],
)
def test_spec_validation_messages(kw: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**kw)


def test_argv_rendering_like_xmanager() -> None:
    assert render_args({"lr": 0.1, "n": 3, "fast": True, "eval": False, "name": "a b"}) == [
        "--lr=0.1",
        "--n=3",
        "--fast",
        "--noeval",
        "--name=a b",
    ]
    assert task_argv(["python", "-m", "train"], {"x": "$(id)"}) == [
        "python",
        "-m",
        "train",
        "--x=$(id)",
    ]


@pytest.mark.parametrize(
    ("quantity", "mib"),
    [("512Mi", 512), ("4Gi", 4096), ("1G", 954), ("1073741824", 1024), ("1.5Gi", 1536)],
)
def test_memory_quantities(quantity: str, mib: int) -> None:
    assert parse_memory_mib(quantity) == mib


def test_resources_merge_over_cluster_defaults() -> None:
    defaults = Resources(cpus=2, memory="1Gi", partition="batch", extra={"constraint": "x86"})
    merged = Resources(cpus=8, extra={"gres": "tmp:1"}).merged_over(defaults)
    assert (merged.cpus, merged.memory, merged.partition) == (8, "1Gi", "batch")
    assert merged.extra == {"constraint": "x86", "gres": "tmp:1"}
