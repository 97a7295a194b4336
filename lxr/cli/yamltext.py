"""YAML for ``-o yaml``, written item by item: block style like ``yaml.safe_dump``, read back
by any YAML loader as the same data, and fast enough to stream 100k work units."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TextIO

__all__ = ["write_yaml", "write_yaml_item"]

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")


@lru_cache(maxsize=4096)
def _string(s: str) -> str:
    if _PLAIN.match(s) and _resolves_to_str(s):
        return s
    # a JSON string is a YAML double-quoted scalar; other non-printable characters are
    # escaped the YAML way (\uXXXX, \UXXXXXXXX: YAML has no surrogate pairs)
    text = json.dumps(s, ensure_ascii=False)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _resolves_to_str(s: str) -> bool:
    """False for plain words a YAML loader would read as something else (1e3, no, null)."""
    import yaml

    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, s, (True, False))
    return tag == "tag:yaml.org,2002:str"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 reads 1e-05 as a string: write 1.0e-05 as PyYAML does
        if "e" in text and "." not in text:
            text = text.replace("e", ".0e")
        return text
    return _string(str(value))


def _lines(value: Any, indent: str, out: list[str]) -> None:
    """Append the block lines of a non-empty mapping or sequence at ``indent``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _entry(f"{indent}{_string(str(key))}:", item, indent, out)
    else:
        for item in value:
            _entry(f"{indent}-", item, indent, out, in_list=True)


def _entry(prefix: str, item: Any, indent: str, out: list[str], in_list: bool = False) -> None:
    if isinstance(item, Mapping) and item:
        if in_list:
            sub: list[str] = []
            _lines(item, indent + "  ", sub)
            out.append(f"{prefix} {sub[0][len(indent) + 2 :]}")
            out.extend(sub[1:])
        else:
            out.append(prefix)
            _lines(item, indent + "  ", out)
    elif isinstance(item, list | tuple) and item:
        if in_list:
            sub = []
            _lines(item, indent + "  ", sub)
            out.append(f"{prefix} {sub[0][len(indent) + 2 :]}")
            out.extend(sub[1:])
        else:
            out.append(prefix)
            # sequences inside a mapping are not indented, as yaml.safe_dump writes them
            _lines(item, indent, out)
    elif isinstance(item, Mapping):
        out.append(f"{prefix} {{}}")
    elif isinstance(item, list | tuple):
        out.append(f"{prefix} []")
    else:
        out.append(f"{prefix} {_scalar(item)}")


def write_yaml(data: Mapping[str, Any], file: TextIO) -> None:
    """One mapping as a YAML document."""
    out: list[str] = []
    if data:
        _lines(data, "", out)
    else:
        out.append("{}")
    file.write("\n".join(out) + "\n")


def write_yaml_item(item: Any, file: TextIO) -> None:
    """One ``- item`` of a top-level ``items:`` sequence."""
    out: list[str] = []
    _entry("-", item, "", out, in_list=True)
    file.write("\n".join(out) + "\n")
