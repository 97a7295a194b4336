"""YAML for ``-o yaml``, written item by item: block style like ``yaml.safe_dump``, read back
by any YAML loader as the same data, and fast enough to stream 100k work units."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, TextIO

from lxr.api.dependency_reasons import dependency_condition
from lxr.store.jsonform import attempt_fields, json_value, status_fields

__all__ = ["write_unit_records", "write_yaml", "write_yaml_items"]

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")
# plain words YAML 1.1 reads as booleans or null (y/n too, as some loaders do)
_WORDS = {"y", "yes", "n", "no", "true", "false", "on", "off", "null"}
_resolver: Any = None
_keys: dict[str, str] = {}


def _resolves_to_str(s: str) -> bool:
    """False for plain words a YAML loader would read as something else (1e3, 010, 2026-01-01)."""
    global _resolver
    if _resolver is None:
        import yaml

        _resolver = yaml.resolver.Resolver()
    import yaml

    return _resolver.resolve(yaml.ScalarNode, s, (True, False)) == "tag:yaml.org,2002:str"


def _string(s: str) -> str:
    if _PLAIN.match(s):
        if s[0].isalpha() or s[0] == "_":
            if s.lower() not in _WORDS:
                return s
        elif _resolves_to_str(s):
            return s
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'  # what json.dumps would write, for less
    # a JSON string is a YAML double-quoted scalar; other non-printable characters are
    # escaped the YAML way (\uXXXX, \UXXXXXXXX: YAML has no surrogate pairs)
    text = json.dumps(s, ensure_ascii=False)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _key(k: Any) -> str:
    text = _keys.get(k)
    if text is None:
        text = _string(str(k)) + ":"
        if len(_keys) < 10_000:
            _keys[k] = text
    return text


# "INDENT KEY: " of each key of a mapping, by indentation and keys: a listing writes mappings
# of the same few shapes 100k times
_plans: dict[tuple[str, tuple[Any, ...]], list[str]] = {}
# the YAML text of string values seen (phases, reasons, messages repeat), up to a bound
_texts: dict[str, str] = {}
_TEXTS = 50_000


def _text(s: str) -> str:
    # (called when _texts has no entry for s)
    text = _string(s)
    if len(_texts) < _TEXTS:
        _texts[s] = text
    return text


def _scalar(value: Any) -> str:
    t = type(value)
    if t is str:
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if t is int:
        return str(value)
    if t is float:
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 reads 1e-05 as a string: write 1.0e-05 as PyYAML does
        if "e" in text and "." not in text:
            text = text.replace("e", ".0e")
        return text
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _scalar(float(value))
    return _string(str(value))


_SCALARS = (str, int, float, bool, type(None))


def _plan(ind: str, keys: tuple[Any, ...]) -> list[str]:
    plan = _plans.get((ind, keys))
    if plan is None:
        plan = [f"{ind}{_key(k)} " for k in keys]
        if len(_plans) < 10_000:
            _plans[ind, keys] = plan
    return plan


def _map(d: Mapping[Any, Any], ind: str, out: list[str]) -> None:
    # the loop of every line of a 100k listing: the common types first, texts cached
    for key, v in zip(_plan(ind, tuple(d)), d.values(), strict=True):
        t = type(v)
        if t is str:
            out.append(key + (_texts.get(v) or _text(v)))
        elif t is int:
            out.append(f"{key}{v}")
        elif t is dict or isinstance(v, Mapping):
            if v:
                out.append(key[:-1])
                _map(v, ind + "  ", out)
            else:
                out.append(key + "{}")
        elif t is list or t is tuple:
            if v:
                out.append(key[:-1])
                # sequences inside a mapping are not indented, as yaml.safe_dump writes them
                _seq(v, ind, out)
            else:
                out.append(key + "[]")
        else:
            out.append(key + _scalar(v))


def _seq(items: Any, ind: str, out: list[str]) -> None:
    inner = ind + "  "
    cut = len(inner)
    for v in items:
        t = type(v)
        if t is str:
            out.append(f"{ind}- {_texts.get(v) or _text(v)}")
        elif t in _SCALARS:
            out.append(f"{ind}- {_scalar(v)}")
        elif t is dict or isinstance(v, Mapping):
            if v:
                start = len(out)
                _map(v, inner, out)
                out[start] = f"{ind}- {out[start][cut:]}"
            else:
                out.append(f"{ind}- {{}}")
        elif t is list or t is tuple:
            if v:
                start = len(out)
                _seq(v, inner, out)
                out[start] = f"{ind}- {out[start][cut:]}"
            else:
                out.append(f"{ind}- []")
        else:
            out.append(f"{ind}- {_scalar(v)}")


def write_yaml(data: Mapping[str, Any], file: TextIO) -> None:
    """One mapping as a YAML document."""
    out: list[str] = []
    if data:
        _map(data, "", out)
    else:
        out.append("{}")
    file.write("\n".join(out) + "\n")


def write_yaml_items(items: Iterable[Any], file: TextIO) -> int:
    """The ``- item`` of each of ``items`` in a top-level ``items:`` sequence, a page of them
    in one write; returns how many."""
    n = 0
    it = iter(items)
    while page := list(islice(it, _PAGE if n else _FIRST_PAGE)):
        out: list[str] = []
        for item in page:
            start = len(out)
            try:
                _unit(item, out)
            except (_NotAUnit, TypeError):
                del out[start:]
                _seq([item], "", out)
        file.write("\n".join(out) + "\n")
        n += len(page)
    return n


_PAGE = 500
# the first page is small: `| head` has its lines at once
_FIRST_PAGE = 20


# -- work units: a listing writes 100k of them, all of one shape (the JSON form of the model,
# lxr.store.jsonform's), so their fixed parts are written from templates and each run of
# scalar fields in one formatting; what is not of that shape goes to the general writer above


class _NotAUnit(Exception):
    """Not of the shape :func:`_unit` writes."""


_UNIT = ("apiVersion", "kind", "metadata", "spec", "status")
_META = ("name", "uid", "labels")
_SPEC = ("index", "args", "env")
# the fields of a status and of an attempt that hold lists or mappings (the others scalars)
_STATUS_NESTED = frozenset({"attempts", "conditions"})
_ATTEMPT_NESTED = frozenset({"rankExitCodes", "resources"})
# (indentation, keys) -> segments: (a template of scalar lines, their slice of the values) or
# (a nested field's "KEY:" line, its index)
_Segment = tuple[bool, str, Any]
_segments_cache: dict[tuple[str, tuple[Any, ...]], list[_Segment]] = {}


def _value(v: Any) -> str:
    """A scalar's YAML text (a string's through the cache)."""
    t = type(v)
    if t is str:
        return _text(v)
    if t is int:
        return str(v)
    if t in _SCALARS:
        return _scalar(v)
    raise _NotAUnit


def _segments(ind: str, keys: tuple[Any, ...], nested: frozenset[str]) -> list[_Segment]:
    found = _segments_cache.get((ind, keys))
    if found is not None:
        return found
    segments: list[_Segment] = []
    run: list[str] = []
    for i, k in enumerate(keys):
        if type(k) is not str:
            raise _NotAUnit
        line = f"{ind}{_key(k)}"
        if k in nested:
            if run:
                segments.append((True, "\n".join(run), slice(i - len(run), i)))
                run = []
            segments.append((False, line, i))
        else:
            run.append(line.replace("%", "%%") + " %s")
    if run:
        segments.append((True, "\n".join(run), slice(len(keys) - len(run), len(keys))))
    if len(_segments_cache) < 10_000:
        _segments_cache[ind, keys] = segments
    return segments


def _fields(d: Any, ind: str, nested: frozenset[str], out: list[str]) -> None:
    """A status or an attempt: runs of scalar fields each in one formatting."""
    if type(d) is not dict:
        raise _NotAUnit
    values = tuple(d.values())
    get = _texts.get
    for scalars, text, where in _segments(ind, tuple(d), nested):
        if scalars:
            out.append(text % tuple([get(v) or _value(v) for v in values[where]]))
            continue
        v = values[where]
        t = type(v)
        if t is list:
            if not v:
                out.append(text + " []")
            elif ind == "    " and text == "    attempts:":
                out.append(text)
                for attempt in v:
                    start = len(out)
                    _fields(attempt, "      ", _ATTEMPT_NESTED, out)
                    out[start] = "    - " + out[start][6:]
            else:
                out.append(text)
                _seq(v, ind, out)
        elif t is dict:
            if v:
                out.append(text)
                _map(v, ind + "  ", out)
            else:
                out.append(text + " {}")
        else:
            raise _NotAUnit


def _plain(s: Any) -> str:
    if type(s) is not str:
        raise _NotAUnit
    return _string(s)


def _mapping(head: str, d: Any, ind: str, out: list[str]) -> None:
    if type(d) is not dict:
        raise _NotAUnit
    if d:
        out.append(head)
        _map(d, ind, out)
    else:
        out.append(head + " {}")


def _unit(d: Any, out: list[str]) -> None:
    """A work unit's JSON form as a ``- `` item; raises :class:`_NotAUnit` (or TypeError)
    when it is not of that shape, having appended to ``out`` what it wrote so far."""
    if type(d) is not dict or tuple(d) != _UNIT:
        raise _NotAUnit
    meta, spec = d["metadata"], d["spec"]
    if type(meta) is not dict or tuple(meta) != _META or type(spec) is not dict:
        raise _NotAUnit
    if tuple(spec) != _SPEC or type(spec["index"]) is not int:
        raise _NotAUnit
    get = _texts.get
    api, kind, name, uid = d["apiVersion"], d["kind"], meta["name"], meta["uid"]
    out.append(
        f"- apiVersion: {get(api) or _value(api)}\n  kind: {get(kind) or _value(kind)}\n"
        # each work unit's own: not looked up
        f"  metadata:\n    name: {_plain(name)}\n    uid: {_plain(uid)}"
    )
    _mapping("    labels:", meta["labels"], "      ", out)
    out.append(f"  spec:\n    index: {spec['index']}")
    _mapping("    args:", spec["args"], "      ", out)
    _mapping("    env:", spec["env"], "      ", out)
    status = d["status"]
    if type(status) is not dict or not status:
        raise _NotAUnit
    out.append("  status:")
    _fields(status, "    ", _STATUS_NESTED, out)


# -- work units straight from their rows (lxr.store.reads.Reader.iter_unit_records): the same
# text as the JSON form written above, without building it

_Record = tuple[str, str, Sequence[Any], Sequence[Sequence[Any]]]
_UNIT_HEAD = "- apiVersion: lxr.dev/v1alpha1\n  kind: WorkUnit\n  metadata:\n    name: "
# per experiment (name, uid): how its work units' names and uids are written
_plain_ids: dict[tuple[str, str], tuple[bool, bool]] = {}


def _ids_plain(exp_name: str, exp_uid: str) -> tuple[bool, bool]:
    # NAME-INDEX and UID/INDEX are plain words whenever NAME- and UID/ start like one: a
    # digit string cannot follow to make them a number, a date or a boolean ('/' and '-0'
    # are in none of YAML's other forms when the word starts with a letter or has a '/')
    found = _plain_ids.get((exp_name, exp_uid))
    if found is None:
        name = bool(_PLAIN.match(exp_name + "-0")) and (
            exp_name[:1].isalpha() or exp_name[:1] == "_"
        )
        found = (name, bool(_PLAIN.match(exp_uid + "/0")))
        _plain_ids[exp_name, exp_uid] = found
    return found


def write_unit_records(records: Iterable[_Record], file: TextIO) -> int:
    """The ``- item`` of each work unit of ``records`` ((experiment name, experiment uid,
    work-unit row, attempt rows), as ``lxr.store.reads.Reader.iter_unit_records`` gives
    them) in a top-level ``items:`` sequence, as :func:`write_yaml_items` writes their JSON
    form, a page of them in one write; returns how many."""
    n = 0
    it = iter(records)
    while page := list(islice(it, _PAGE if n else _FIRST_PAGE)):
        out: list[str] = []
        for record in page:
            _unit_record(record, out)
        file.write("\n".join(out) + "\n")
        n += len(page)
    return n


def _unit_record(record: _Record, out: list[str]) -> None:
    exp_name, exp_uid, row, attempts = record
    idx, name = row[1], row[2]
    index = str(idx)
    plain_name, plain_uid = _ids_plain(exp_name, exp_uid)
    unit_name, uid = f"{exp_name}-{index}", f"{exp_uid}/{index}"
    # (a string of digits is always quoted: YAML would read a number)
    out.append(
        f"{_UNIT_HEAD}{unit_name if plain_name else _string(unit_name)}\n"
        f"    uid: {uid if plain_uid else _string(uid)}\n"
        f"    labels:\n      experiment: {_texts.get(exp_name) or _text(exp_name)}\n"
        f'      index: "{index}"'
    )
    if name != index:
        out.append(f"      name: {_texts.get(name) or _text(name)}")
    out.append(f"  spec:\n    index: {idx}")
    _map({"args": json_value(row[3]), "env": json_value(row[4])}, "    ", out)
    # most work units of a listing share their status (phase, reason, exit code...): its
    # lines and its conditions are written once for each
    head, conditions = _statuses.get(tuple(row[5:])) or _status(row)
    out.append(head)
    if attempts:
        out.append("    attempts:")
        for a in attempts:
            start = len(out)
            _map(attempt_fields(a), "      ", out)
            out[start] = "    - " + out[start][6:]
    else:
        out.append("    attempts: []")
    out.append(conditions)


_statuses: dict[tuple[Any, ...], tuple[str, str]] = {}


def _status(row: Sequence[Any]) -> tuple[str, str]:
    """The lines of a work unit's status before its attempts, and of its conditions."""
    lines = ["  status:"]
    _map(status_fields(row), "    ", lines)
    found = dependency_condition(row[5], row[6], row[7])
    conditions = ["    conditions:"] if found else ["    conditions: []"]
    if found:
        _seq([found], "    ", conditions)
    written = ("\n".join(lines), "\n".join(conditions))
    if len(_statuses) < _TEXTS:
        _statuses[tuple(row[5:])] = written
    return written
