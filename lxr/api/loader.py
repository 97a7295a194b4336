"""Reading resources from YAML/JSON files, with errors that name the file, document and field."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from lxr.api.decode import DecodeError, decode_file, decode_text
from lxr.api.limits import DEFAULT_LIMITS, DEFAULT_MAX_WORK_UNITS, InputLimits
from lxr.api.resources import API_VERSION, Cluster, Experiment
from lxr.api.sweep import count_work_units

__all__ = ["KINDS", "LoadError", "Loaded", "load_objects", "load_text", "parse_object"]

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


def _describe(err: ErrorDetails) -> str:
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


# the members of a union pydantic names in an error's location (one error per member)
_UNION_MEMBERS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}


def _problems(exc: ValidationError, model: type[BaseModel]) -> list[tuple[str, str]]:
    """One ``(field path, message)`` per problem: the errors of a union's members become one,
    ``Value error, `` is dropped, and an unknown field next to a missing one is a misspelling."""
    errors = exc.errors(include_url=False)
    unions: dict[tuple[Any, ...], list[str]] = {}
    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
    out: list[tuple[str, str]] = []
    seen_unions: set[tuple[Any, ...]] = set()
    used_missing: set[tuple[Any, ...]] = set()
    for e in errors:
        loc = tuple(e["loc"])
        if loc and loc[-1] in _UNION_MEMBERS:
            unions.setdefault(loc[:-1], []).append(_UNION_MEMBERS[str(loc[-1])])
    for e in errors:
        loc = tuple(e["loc"])
        if loc and loc[-1] in _UNION_MEMBERS:
            base = loc[:-1]
            if base not in seen_unions:
                seen_unions.add(base)
                kinds = unions[base]
                expected = (
                    ", ".join(kinds[:-1]) + f" or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
                )
                got = f" (got {_shown(e['input'])})" if "input" in e else ""
                out.append((_loc(base), f"expected {expected}{got}"))
            continue
        what = _describe(e).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden" and loc:
            guess = _did_you_mean(str(loc[-1]), loc[:-1], model, missing)
            if guess is not None:
                what += f" (did you mean `{guess}`?)"
                used_missing.add((*loc[:-1], guess))
        out.append((_loc(loc), what))
    # a missing field that a misspelling next to it explains is not a problem of its own
    explained = {_loc(loc) for loc in used_missing if loc in missing}
    return [(where, what) for where, what in out if where not in explained]


def _did_you_mean(
    word: str, parent: tuple[Any, ...], model: type[BaseModel], missing: set[tuple[Any, ...]]
) -> str | None:
    import difflib

    names = _field_names(model, parent)
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.75)
    return close[0] if close else None


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names (camelCase) of the model at ``loc`` in ``model``, best effort."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next(
            (f for n, f in current.model_fields.items() if (f.alias or n) == part or n == part),
            None,
        )
        if field is None:
            return []
        current = field.annotation
        for _ in range(3):  # Optional[X], list[X], dict[str, X]: the model inside
            args = [a for a in typing.get_args(current) if a is not type(None)]
            if isinstance(current, type) and issubclass(current, BaseModel):
                break
            if not args:
                break
            current = args[-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) < 60 else shown[:57] + "..."


def parse_object(doc: Any, source: str, *, max_work_units: int = DEFAULT_MAX_WORK_UNITS) -> Loaded:
    """Validate one decoded document (plain data) as an lxr resource.

    An experiment of more than ``max_work_units`` work units is refused, its size computed
    without expanding the sweep.
    """
    if not isinstance(doc, dict):
        raise LoadError([f"{source}: expected a mapping with apiVersion, kind, metadata, spec"])
    kind = doc.get("kind")
    if doc.get("apiVersion") != API_VERSION:
        raise LoadError(
            [f"{source}: apiVersion: expected {API_VERSION!r}, got {_shown(doc.get('apiVersion'))}"]
        )
    if not isinstance(kind, str) or kind not in KINDS:
        raise LoadError([f"{source}: kind: expected one of {', '.join(KINDS)}, got {_shown(kind)}"])
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
        obj = KINDS[kind].model_validate_json(json.dumps(doc), strict=True)
    except ValidationError as exc:
        raise LoadError(
            [f"{source}: {where}: {what}" for where, what in _problems(exc, KINDS[kind])]
        ) from None
    if isinstance(obj, Experiment):
        count = count_work_units(obj.spec)
        if count > max_work_units:
            field = "spec.workUnits" if obj.spec.work_units is not None else "spec.sweep"
            sizes = ""
            if obj.spec.sweep is not None:
                sizes = " x ".join(str(len(v)) for v in obj.spec.sweep.grid.values())
                if obj.spec.sweep.entries:
                    sizes += (" x " if sizes else "") + f"{len(obj.spec.sweep.entries)} (list)"
                sizes = f" ({sizes})"
            raise LoadError(
                [
                    f"{source}: {field}: {count} work units{sizes}, more than the limit of "
                    f"{max_work_units} (raise it with --max-work-units)"
                ]
            )
    return Loaded(source, obj, tuple(ignored))


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(
            p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
        )
    else:
        yield path


def load_objects(
    path: str | Path,
    *,
    max_work_units: int = DEFAULT_MAX_WORK_UNITS,
    limits: InputLimits = DEFAULT_LIMITS,
) -> list[Loaded]:
    """Every resource in a file (YAML, several documents allowed; ``.json``: one JSON
    document) or a directory of them, decoded within ``limits``.

    Raises :class:`LoadError` listing every problem; nothing is returned unless all is valid.
    """
    root = Path(path)
    if not root.exists():
        raise LoadError([f"{path}: no such file or directory"])
    loaded: list[Loaded] = []
    problems: list[str] = []
    for file in _files(root):
        try:
            docs = decode_file(file, limits)
        except DecodeError as exc:
            problems.append(str(exc))
            continue
        except OSError as exc:
            problems.append(f"{file}: cannot read: {exc.strerror or exc}")
            continue
        _parse_docs(docs, str(file), os.path.abspath(file.parent), max_work_units, loaded, problems)
    return _checked(str(path), loaded, problems)


def load_text(
    text: str,
    source: str = "<stdin>",
    *,
    max_work_units: int = DEFAULT_MAX_WORK_UNITS,
    limits: InputLimits = DEFAULT_LIMITS,
    base_dir: str | None = None,
) -> list[Loaded]:
    """Every resource in YAML/JSON ``text`` (``lxr apply -f -``), as :func:`load_objects`;
    relative paths in it are relative to ``base_dir`` (the current directory when None).
    The text of the file ``source`` (``.json``: JSON), with its directory as ``base_dir``,
    loads exactly as :func:`load_objects` loads that file."""
    loaded: list[Loaded] = []
    problems: list[str] = []
    try:
        docs = decode_text(text, Path(source), limits)
    except DecodeError as exc:
        raise LoadError([str(exc)]) from None
    _parse_docs(docs, source, base_dir or os.getcwd(), max_work_units, loaded, problems)
    return _checked(source, loaded, problems)


def _parse_docs(
    docs: list[Any],
    file: str,
    base_dir: str,
    max_work_units: int,
    loaded: list[Loaded],
    problems: list[str],
) -> None:
    def one(doc: Any, source: str) -> None:
        try:
            item = parse_object(doc, source, max_work_units=max_work_units)
            loaded.append(dataclasses.replace(item, base_dir=base_dir))
        except LoadError as exc:
            problems.extend(exc.problems)

    for i, doc in enumerate(docs):
        source = f"{file}" + (f" (document {i + 1})" if len(docs) > 1 else "")
        # a kubectl-style List (what `lxr get -o yaml|json` writes) applies item by item
        if isinstance(doc, dict) and doc.get("kind") == "List" and "items" in doc:
            items = doc["items"] if isinstance(doc["items"], list) else [doc["items"]]
            for j, item in enumerate(items):
                one(item, f"{source} items[{j}]")
        else:
            one(doc, source)


def _checked(path: str, loaded: list[Loaded], problems: list[str]) -> list[Loaded]:
    if problems:
        raise LoadError(problems)
    if not loaded:
        raise LoadError([f"{path}: no resources found"])
    names = [(obj.obj.kind, obj.obj.metadata.name) for obj in loaded]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise LoadError([f"{path}: {k} {n!r} is defined more than once" for k, n in sorted(dupes)])
    return loaded
