"""Project hygiene that users rely on: crds/ fresh, public names explicit."""

from __future__ import annotations

import importlib
import pkgutil

import lxr
from lxr.api.crds import render_crds
from tests.conftest import REPO


def test_crds_are_regenerated() -> None:
    for name, text in render_crds().items():
        path = REPO / "crds" / name
        assert path.exists() and path.read_text() == text, (
            f"crds/{name} is stale: run `uv run python -m lxr.api.crds`"
        )


def test_public_modules_declare_all() -> None:
    skipped = {"lxr.cli.__main__", "lxr.store.migrations.env"}
    checked = 0
    for mod in pkgutil.walk_packages(lxr.__path__, "lxr."):
        if mod.name in skipped or ".migrations" in mod.name or mod.ispkg:
            continue
        module = importlib.import_module(mod.name)
        names = getattr(module, "__all__", None)
        assert names is not None, f"{mod.name} has no __all__"
        # the order is ruff's RUF022 (isort-style), checked by `ruff check`
        for name in names:
            assert hasattr(module, name), f"{mod.name}.__all__ names missing {name}"
        checked += 1
    assert checked >= 15
