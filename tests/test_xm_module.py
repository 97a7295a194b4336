"""``from lxr import xm``: XManager's xm API, the same objects, plus lxm3's time units."""

from __future__ import annotations

import pytest

pytest.importorskip("xmanager")

import xmanager.xm as upstream

from lxr import xm


def test_every_public_name_of_xmanager_xm_is_reexported_as_the_same_object() -> None:
    public = {n for n in dir(upstream) if not n.startswith("_")}
    assert public <= set(xm.__all__), sorted(public - set(xm.__all__))
    for name in public:
        assert getattr(xm, name) is getattr(upstream, name), name


def test_lxm3_time_units_are_seconds() -> None:
    assert (xm.Sec, xm.Min, xm.Hr) == (1, 60, 3600)
    assert 10 * xm.Min == 600
    assert {"Sec", "Min", "Hr"} <= set(xm.__all__)


def test_lxm3_scripts_reach_xm_utils_through_the_module() -> None:
    assert callable(xm.utils.resolve_path_relative_to_launcher)
    assert xm.JobRequirements is upstream.JobRequirements
