"""Decoding YAML and JSON files into plain data, within limits that hostile input cannot exhaust.

A file becomes a list of documents made only of ``dict`` (string keys), ``list``, ``str``,
``int``, ``float``, ``bool`` and ``None``. Before anything is built, YAML is read as a stream of
events and checked against :class:`InputLimits`: nesting depth, and the nodes that aliases add
(a "billion laughs" of 650 bytes would otherwise expand to 10⁹ nodes). The checks stop at the
first event past a limit, so rejecting costs time in proportion to what was read, not to what the
document would become. ``.json`` files are parsed as JSON (surrogate-pair escapes included).
Strings holding NUL or lone surrogates, integers beyond 64 bits and non-string mapping keys
(YAML dates, ``on:``/``yes:`` booleans) are refused with the field path.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from lxr.api.limits import DEFAULT_LIMITS, InputLimits

__all__ = ["DecodeError", "decode_file", "decode_text"]

_INT64 = 2**63
_LONG_INT_DIGITS = 32  # a YAML int scalar longer than this is refused before it is converted
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# libyaml's loader when present: the pure-Python one needs ~0.1 s for a sweep listing 1000 values
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DecodeError(ValueError):
    """A file cannot be decoded, or is past a limit; the message names the file and field."""


def _path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


def _where(file: Path, doc: int, path: list[Any], mark: Any = None) -> str:
    source = f"{file}" + (f" (document {doc})" if doc > 1 else "")
    line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{source}: {_path(path)}{line}"


class _Open:
    """A mapping or sequence whose end event has not come yet."""

    __slots__ = ("anchor", "height", "index", "is_map", "key", "size", "want_key")

    def __init__(self, is_map: bool, anchor: str | None) -> None:
        self.is_map = is_map
        self.anchor = anchor
        self.size = 1  # nodes under it, itself included, aliases expanded
        self.height = 1  # levels under it, itself included
        self.index = 0  # next sequence index, or mapping key/value counter
        self.key: Any = None
        self.want_key = True


def _check_yaml_events(text: str, file: Path, limits: InputLimits) -> None:
    """Raise :class:`DecodeError` for the first event past a limit (see the module docstring).
    Syntax errors are left to the composer, which reports them with line and column."""
    loader = _YAML_LOADER(text)
    try:
        doc = 0
        stack: list[_Open] = []
        sizes: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, height)
        added = 0

        def path() -> list[Any]:
            out: list[Any] = []
            for node in stack:
                if node.is_map:
                    if not node.want_key:
                        out.append(node.key)
                else:
                    out.append(node.index)
            return out

        def close(size: int, height: int, anchor: str | None, is_key: Any = None) -> None:
            if anchor is not None:
                sizes[anchor] = (size, height)
            if not stack:
                return
            parent = stack[-1]
            parent.size += size
            parent.height = max(parent.height, height + 1)
            if parent.is_map:
                if parent.want_key:
                    parent.key = is_key if is_key is not None else "<key>"
                parent.want_key = not parent.want_key
            else:
                parent.index += 1

        while True:
            try:
                if not loader.check_event():
                    break
                event = loader.get_event()
            except yaml.YAMLError:
                return  # the composer reports it, with line and column
            if isinstance(event, yaml.DocumentStartEvent):
                doc, added, sizes = doc + 1, 0, {}
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) + 1 > limits.max_depth:
                    raise DecodeError(
                        f"{_where(file, doc, path(), event.start_mark)}: nested deeper than "
                        f"{limits.max_depth} levels"
                    )
                stack.append(_Open(isinstance(event, yaml.MappingStartEvent), event.anchor))
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                node = stack.pop()
                close(node.size, node.height, node.anchor)
            elif isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                if tag == "tag:yaml.org,2002:int" and len(event.value) > _LONG_INT_DIGITS:
                    raise DecodeError(
                        f"{_where(file, doc, path(), event.start_mark)}: integer of "
                        f"{len(event.value)} characters is out of range (at most 64 bits); "
                        "quote it to pass a string"
                    )
                close(1, 0, event.anchor, is_key=event.value)
            elif isinstance(event, yaml.AliasEvent):
                if any(node.anchor == event.anchor for node in stack):
                    raise DecodeError(
                        f"{_where(file, doc, path(), event.start_mark)}: recursive alias "
                        f"*{event.anchor} refers to a node that contains it"
                    )
                if event.anchor not in sizes:
                    return  # undefined alias: the composer reports it
                size, height = sizes[event.anchor]
                added += size
                if added > limits.max_alias_nodes:
                    raise DecodeError(
                        f"{_where(file, doc, path(), event.start_mark)}: aliases expand to more "
                        f"than {limits.max_alias_nodes} nodes (the limit on alias expansion)"
                    )
                if len(stack) + height > limits.max_depth:
                    raise DecodeError(
                        f"{_where(file, doc, path(), event.start_mark)}: alias *{event.anchor} "
                        f"nests deeper than {limits.max_depth} levels"
                    )
                close(size, height, None, is_key=f"*{event.anchor}")
    finally:
        loader.dispose()


class _BigInt:
    """A JSON integer beyond 64 bits, kept as text so the plain-data walk reports it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _json_int(text: str) -> int | _BigInt:
    return int(text) if len(text) <= 20 else _BigInt(text)


def _problem(value: Any) -> str | None:
    if isinstance(value, str):
        if "\0" in value:
            return "contains a NUL character, which no argv entry or environment value can hold"
        if _LONE_SURROGATE.search(value):
            return "is not valid Unicode (a lone surrogate)"
    return None


def _plain(data: Any, file: Path, doc: int, limits: InputLimits) -> Any:
    """``data`` as JSON-safe plain data, or :class:`DecodeError` naming the first bad field.
    Iterative: no recursion however deep, shared (aliased) objects are copied per use."""

    def fail(path: list[Any], what: str) -> DecodeError:
        return DecodeError(f"{_where(file, doc, path)}: {what}")

    def leaf(value: Any, path: list[Any]) -> Any:
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, int):
            if not -_INT64 <= value < _INT64:
                raise fail(path, "integer is out of range (at most 64 bits); quote it")
            return value
        if isinstance(value, _BigInt):
            raise fail(
                path,
                f"integer of {len(value.text)} digits is out of range (at most 64 bits); quote it",
            )
        if isinstance(value, str):
            problem = _problem(value)
            if problem:
                raise fail(path, f"value {problem}")
            return value
        if isinstance(value, date):  # a YAML timestamp, passed on as written before
            return str(value)
        raise fail(path, f"a value of YAML type {type(value).__name__} is not supported")

    if not isinstance(data, (dict, list)):
        return leaf(data, [])
    root: Any = {} if isinstance(data, dict) else []
    todo: list[tuple[Any, Any, list[Any]]] = [(data, root, [])]
    while todo:
        src, dst, path = todo.pop()
        if len(path) >= limits.max_depth:
            raise fail(path, f"nested deeper than {limits.max_depth} levels")
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for key, value in items:
            if isinstance(src, dict):
                if not isinstance(key, str):
                    shown = key.isoformat() if isinstance(key, date) else repr(key)
                    kind = "a date" if isinstance(key, date) else f"a {type(key).__name__}"
                    raise fail(
                        path, f"mapping key {shown} is {kind}, not a string; quote it: '{shown}'"
                    )
                problem = _problem(key)
                if problem:
                    raise fail(path, f"mapping key {key!r} {problem}")
            here = [*path, key]
            if isinstance(value, (dict, list)):
                child: Any = {} if isinstance(value, dict) else []
                todo.append((value, child, here))
            else:
                child = leaf(value, here)
            if isinstance(dst, dict):
                dst[key] = child
            else:
                dst.append(child)
    return root


def _read(file: Path, limits: InputLimits) -> str:
    with file.open("rb") as fh:
        raw = fh.read(limits.max_file_bytes + 1)
    if len(raw) > limits.max_file_bytes:
        raise DecodeError(
            f"{file}: larger than {limits.max_file_bytes} bytes (the limit on one input file)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{file}: not UTF-8 text (byte {exc.start})") from None


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_too_deep(text: str, max_depth: int) -> tuple[int, int]:
    """Line and column where ``text`` first nests deeper than ``max_depth``."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                line = text.count("\n", 0, match.start()) + 1
                return line, match.start() - text.rfind("\n", 0, match.start())
        elif token in "]}":
            depth -= 1
    return 1, 1


def _decode_json(text: str, file: Path, limits: InputLimits) -> list[Any]:
    try:
        data = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"{file}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    except RecursionError:
        line, column = _json_too_deep(text, limits.max_depth)
        raise DecodeError(
            f"{file}: line {line}, column {column}: nested deeper than {limits.max_depth} levels"
        ) from None
    return [] if data is None else [_plain(data, file, 1, limits)]


def _decode_yaml(text: str, file: Path, limits: InputLimits) -> list[Any]:
    _check_yaml_events(text, file, limits)
    docs: list[Any] = []
    loader = _YAML_LOADER(text)
    try:
        while loader.check_data():
            data = loader.get_data()
            if data is not None:
                docs.append(_plain(data, file, len(docs) + 1, limits))
    except DecodeError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DecodeError(f"{file}:{where}: invalid YAML: {problem}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a constructor refusing a scalar
        raise DecodeError(f"{file}: invalid YAML value: {exc}") from None
    finally:
        loader.dispose()
    return docs


def decode_file(file: Path, limits: InputLimits = DEFAULT_LIMITS) -> list[Any]:
    """The non-empty documents of ``file`` as plain data: JSON for ``.json``, else YAML.

    Raises :class:`DecodeError` (or ``OSError`` when the file cannot be read).
    """
    text = _read(file, limits)
    if file.suffix == ".json":
        return _decode_json(text, file, limits)
    return _decode_yaml(text, file, limits)


def decode_text(text: str, source: Path, limits: InputLimits = DEFAULT_LIMITS) -> list[Any]:
    """The non-empty documents of YAML (or JSON) ``text``, e.g. read from stdin; ``source``
    names it in errors and, as for :func:`decode_file`, a ``.json`` source is read as JSON
    (the text of a file read by another process). Raises :class:`DecodeError`."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_file_bytes:
        raise DecodeError(
            f"{source}: larger than {limits.max_file_bytes} bytes (the limit on one input file)"
        )
    if source.suffix == ".json":
        return _decode_json(text, source, limits)
    return _decode_yaml(text, source, limits)
