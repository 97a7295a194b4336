"""JSON schemas of the resources, OpenAPI v3 style, as committed under ``crds/``.

``python -m lxr.api.crds`` rewrites ``crds/``; a test fails when the files are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lxr.api.resources import API_VERSION, Cluster, Experiment

__all__ = ["CRD_FILES", "crd_schema", "render_crds", "write_crds"]

CRD_FILES = {"Experiment": "experiment.schema.json", "Cluster": "cluster.schema.json"}
_MODELS: dict[str, type[BaseModel]] = {"Experiment": Experiment, "Cluster": Cluster}


def crd_schema(kind: str) -> dict[str, Any]:
    """The JSON schema (draft 2020-12, the dialect OpenAPI 3.1 uses) of ``kind`` as written."""
    model = _MODELS[kind]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://lxr.dev/schemas/{API_VERSION}/{kind.lower()}.json"
    schema["x-lxr-api-version"] = API_VERSION
    return schema


def render_crds() -> dict[str, str]:
    """File name -> content for ``crds/``."""
    return {
        name: json.dumps(crd_schema(kind), indent=2, sort_keys=True) + "\n"
        for kind, name in CRD_FILES.items()
    }


def write_crds(directory: Path) -> list[Path]:
    """Write the schemas into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in render_crds().items():
        path = directory / name
        path.write_text(text)
        out.append(path)
    return out


if __name__ == "__main__":  # pragma: no cover
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[2] / "crds"
    for p in write_crds(target):
        print(p)
