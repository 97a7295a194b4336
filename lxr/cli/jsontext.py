"""``-o json`` of work units written straight from their rows
(:meth:`lxr.store.reads.Reader.iter_unit_records`): the text ``orjson`` writes for their JSON
form in a ``List`` (two spaces an indent), without building that form, so 100k work units
cost a template each; values go through ``orjson`` (strings once each, as repeated ones are
looked up)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any, TextIO

import orjson

from lxr.api.dependency_reasons import dependency_condition
from lxr.store.jsonform import API_VERSION, attempt_fields, json_value, status_fields

__all__ = ["write_unit_records"]

_Record = tuple[str, str, Sequence[Any], Sequence[Sequence[Any]]]
_PAGE = 500
# the first page is small: `| head` has its lines at once
_FIRST_PAGE = 20
_INDENT = orjson.OPT_INDENT_2
# the JSON text of strings seen (phases, reasons, messages repeat), up to a bound
_texts: dict[str, str] = {}
_TEXTS = 50_000
# IND"KEY": of a status's and an attempt's keys, by indentation
_keys: dict[str, dict[str, str]] = {}


def _text(s: str) -> str:
    # (called when _texts has no entry for s)
    text = orjson.dumps(s).decode()
    if len(_texts) < _TEXTS:
        _texts[s] = text
    return text


def _nested(value: Any, ind: str) -> str:
    """Any value as orjson writes it at indentation ``ind``."""
    if not value and type(value) is dict:  # (most work units' env)
        return "{}"
    return orjson.dumps(value, option=_INDENT).decode().replace("\n", "\n" + ind)


def _members(fields: dict[str, Any], ind: str, out: list[str]) -> None:
    """The members of a status's or an attempt's fields (``status_fields``, ...)."""
    get = _texts.get
    keys = _keys.get(ind)
    if keys is None:
        keys = _keys[ind] = {}
    for key, v in fields.items():
        line = keys.get(key)
        if line is None:
            line = keys[key] = f"{ind}{orjson.dumps(key).decode()}: "
        t = type(v)
        if t is str:
            out.append(line + (get(v) or _text(v)))
        elif t is int:
            out.append(f"{line}{v}")
        else:
            out.append(line + _nested(v, ind))


_statuses: dict[tuple[Any, ...], tuple[str, str]] = {}


def _status(row: Sequence[Any]) -> tuple[str, str]:
    """The members of a work unit's status before its attempts, and its conditions."""
    members: list[str] = []
    _members(status_fields(row), "        ", members)
    found = dependency_condition(row[5], row[6], row[7])
    conditions = '        "conditions": ' + (_nested([found], "        ") if found else "[]")
    written = (",\n".join(members), conditions)
    if len(_statuses) < _TEXTS:
        _statuses[tuple(row[5:])] = written
    return written


def _unit(record: _Record) -> str:
    exp_name, exp_uid, row, attempts = record
    get = _texts.get
    idx, name = row[1], row[2]
    index = str(idx)
    labels = (
        f'          "experiment": {get(exp_name) or _text(exp_name)},\n          "index": "{index}"'
    )
    if name != index:
        labels += f',\n          "name": {get(name) or _text(name)}'
    # most work units of a listing share their status (phase, reason, exit code...): its
    # members and its conditions are written once for each
    head, conditions = _statuses.get(tuple(row[5:])) or _status(row)
    status = [head] if head else []
    if attempts:
        items = []
        for a in attempts:
            members: list[str] = []
            _members(attempt_fields(a), "            ", members)
            items.append("          {\n" + ",\n".join(members) + "\n          }")
        status.append('        "attempts": [\n' + ",\n".join(items) + "\n        ]")
    else:
        status.append('        "attempts": []')
    status.append(conditions)
    return (
        f'    {{\n      "apiVersion": "{API_VERSION}",\n      "kind": "WorkUnit",\n'
        # (each work unit's own: not looked up)
        f'      "metadata": {{\n        "name": {orjson.dumps(f"{exp_name}-{index}").decode()},\n'
        f'        "uid": {orjson.dumps(f"{exp_uid}/{index}").decode()},\n'
        f'        "labels": {{\n{labels}\n        }}\n      }},\n'
        f'      "spec": {{\n        "index": {idx},\n'
        f'        "args": {_nested(json_value(row[3]), "        ")},\n'
        f'        "env": {_nested(json_value(row[4]), "        ")}\n      }},\n'
        f'      "status": {{\n' + ",\n".join(status) + "\n      }\n    }"
    )


def write_unit_records(records: Iterable[_Record], file: TextIO) -> int:
    """The items of a JSON ``List`` (after its ``"items": [``) for the work units of
    ``records`` ((experiment name, experiment uid, work-unit row, attempt rows)), each on a
    line of its own as orjson writes their JSON form, a page in one write; returns how many."""
    n = 0
    it = iter(records)
    while page := list(islice(it, _PAGE if n else _FIRST_PAGE)):
        file.write(("," if n else "") + "\n" + ",\n".join([_unit(r) for r in page]))
        n += len(page)
    return n
