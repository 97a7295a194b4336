"""YAML for ``-o yaml``, written item by item: block style like ``yaml.safe_dump``, read back
by any YAML loader as the same data, and fast enough to stream 100k work units."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["write_yaml", "write_yaml_item"]

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


def _map(d: Mapping[Any, Any], ind: str, out: list[str]) -> None:
    for k, v in d.items():
        key = _key(k)
        t = type(v)
        if t in _SCALARS:
            out.append(f"{ind}{key} {_string(v) if t is str else _scalar(v)}")
        elif t is dict or isinstance(v, Mapping):
            if v:
                out.append(ind + key)
                _map(v, ind + "  ", out)
            else:
                out.append(f"{ind}{key} {{}}")
        elif t is list or t is tuple:
            if v:
                out.append(ind + key)
                # sequences inside a mapping are not indented, as yaml.safe_dump writes them
                _seq(v, ind, out)
            else:
                out.append(f"{ind}{key} []")
        else:
            out.append(f"{ind}{key} {_scalar(v)}")


def _seq(items: Any, ind: str, out: list[str]) -> None:
    inner = ind + "  "
    cut = len(inner)
    for v in items:
        t = type(v)
        if t in _SCALARS:
            out.append(f"{ind}- {_string(v) if t is str else _scalar(v)}")
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


def write_yaml_item(item: Any, file: TextIO) -> None:
    """One ``- item`` of a top-level ``items:`` sequence."""
    out: list[str] = []
    _seq([item], "", out)
    file.write("\n".join(out) + "\n")
