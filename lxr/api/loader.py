"""Reading resources from YAML/JSON files, with errors that name the file, document and field."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lxr.api.resources import API_VERSION, Cluster, Experiment

__all__ = ["KINDS", "LoadError", "Loaded", "load_objects", "parse_object"]

KINDS: dict[str, type[Cluster] | type[Experiment]] = {"Cluster": Cluster, "Experiment": Experiment}
_SERVER_FIELDS = (
    "uid",
    "generation",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",
)


class LoadError(ValueError):
    """A file does not hold valid lxr resources. ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Loaded:
    """A resource and where it came from."""

    source: str
    obj: Cluster | Experiment
    ignored: tuple[str, ...] = ()  # server-written fields that were dropped
    #: the directory relative paths are resolved against (lxr.api.paths): the file's own,
    #: None for a document read from stdin (the current directory then)
    base_dir: str | None = None


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


def _describe(err: dict[str, Any]) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    if "input" in err and err["type"] not in ("model_type", "dict_type"):
        shown = repr(err["input"])
        shown = shown if len(shown) < 60 else shown[:57] + "..."
        return f"{msg} (got {shown})"
    return msg


def parse_object(doc: Any, source: str) -> Loaded:
    """Validate one decoded document as an lxr resource."""
    if not isinstance(doc, dict):
        raise LoadError([f"{source}: expected a mapping with apiVersion, kind, metadata, spec"])
    kind = doc.get("kind")
    if doc.get("apiVersion") != API_VERSION:
        raise LoadError(
            [f"{source}: apiVersion: expected {API_VERSION!r}, got {doc.get('apiVersion')!r}"]
        )
    if kind not in KINDS:
        raise LoadError([f"{source}: kind: expected one of {', '.join(KINDS)}, got {kind!r}"])
    doc = dict(doc)
    ignored: list[str] = []
    if "status" in doc:
        doc.pop("status")
        ignored.append("status")
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        meta = dict(meta)
        for key in _SERVER_FIELDS:
            if key in meta:
                meta.pop(key)
                ignored.append(f"metadata.{key}")
        doc["metadata"] = meta
    try:
        # strict JSON mode: "3" is not an int and "yes" not a bool, but enums take their names
        obj = KINDS[kind].model_validate_json(json.dumps(doc, default=str), strict=True)
    except ValidationError as exc:
        raise LoadError(
            [f"{source}: {_loc(e['loc'])}: {_describe(e)}" for e in exc.errors(include_url=False)]
        ) from None
    return Loaded(source, obj, tuple(ignored))


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(
            p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
        )
    else:
        yield path


def load_objects(path: str | Path) -> list[Loaded]:
    """Every resource in a file (YAML, several documents allowed) or a directory of them.

    Raises :class:`LoadError` listing every problem; nothing is returned unless all is valid.
    """
    root = Path(path)
    if not root.exists():
        raise LoadError([f"{path}: no such file or directory"])
    loaded: list[Loaded] = []
    problems: list[str] = []
    for file in _files(root):
        try:
            # libyaml's loader when present: the pure-Python one needs ~0.1 s for a sweep
            # listing 1000 values
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            docs = [d for d in yaml.load_all(file.read_text(), Loader=loader) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            problems.append(f"{file}:{where}: invalid YAML: {problem}")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: cannot read: {exc}")
            continue
        for i, doc in enumerate(docs):
            source = f"{file}" + (f" (document {i + 1})" if len(docs) > 1 else "")
            try:
                item = parse_object(doc, source)
                loaded.append(dataclasses.replace(item, base_dir=os.path.abspath(file.parent)))
            except LoadError as exc:
                problems.extend(exc.problems)
    if problems:
        raise LoadError(problems)
    if not loaded:
        raise LoadError([f"{path}: no resources found"])
    names = [(obj.obj.kind, obj.obj.metadata.name) for obj in loaded]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise LoadError([f"{path}: {k} {n!r} is defined more than once" for k, n in sorted(dupes)])
    return loaded
