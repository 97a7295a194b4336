"""Label selectors as kubectl parses them: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
``k notin (a,b)``, ``k`` (exists) and ``!k`` (does not exist), joined by commas.

Anything else is an error naming the offending part, never a silent misreading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Requirement", "Selector", "SelectorError", "parse_selector"]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(_KEY + r"\Z")
_VALUE_RE = re.compile(_VALUE + r"\Z")
_SET_RE = re.compile(r"\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*\Z")


class SelectorError(ValueError):
    """A selector that cannot be parsed."""


@dataclass(frozen=True)
class Requirement:
    """One requirement: ``key op values``; op is ``=``, ``!=``, ``in``, ``notin``,
    ``exists`` or ``!``."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (kubectl's rules: ``!=`` and ``notin``
        also match objects without the key)."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values


@dataclass(frozen=True)
class Selector:
    """Requirements that must all hold."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every requirement."""
        return all(r.matches(labels) for r in self.requirements)

    def split(self, keys: Iterable[str]) -> tuple[Selector, Selector]:
        """``(the requirements on keys, the others)``."""
        wanted = set(keys)
        mine = tuple(r for r in self.requirements if r.key in wanted)
        rest = tuple(r for r in self.requirements if r.key not in wanted)
        return Selector(mine), Selector(rest)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _split_top(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"{text!r}: unbalanced ')'")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise SelectorError(f"{text!r}: unbalanced '('")
    parts.append(cur)
    return parts


def _key(key: str, part: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"{part!r}: invalid label key {key!r}")
    return key


def _value(value: str, part: str) -> str:
    if not _VALUE_RE.match(value) or len(value) > 63:
        raise SelectorError(f"{part!r}: invalid label value {value!r}")
    return value


def _requirement(part: str) -> Requirement:
    text = part.strip()
    if not text:
        raise SelectorError("empty requirement (two commas, or a trailing comma)")
    m = _SET_RE.match(text)
    if m:
        key, op, inner = m.groups()
        values = tuple(_value(v.strip(), part) for v in inner.split(","))
        return Requirement(_key(key, part), op, values)
    for op in ("!=", "==", "="):
        if op in text:
            key, _, value = text.partition(op)
            if any(c in value for c in "=!"):
                raise SelectorError(f"{part!r}: expected one operator (=, ==, !=)")
            return Requirement(
                _key(key.strip(), part), "!=" if op == "!=" else "=", (_value(value.strip(), part),)
            )
    if text.startswith("!"):
        return Requirement(_key(text[1:].strip(), part), "!")
    if " " in text or "(" in text:
        raise SelectorError(
            f"{part!r}: expected key=value, key!=value, 'key in (a,b)', "
            "'key notin (a,b)', key or !key"
        )
    return Requirement(_key(text, part), "exists")


def parse_selector(texts: Iterable[str] | None) -> Selector:
    """Every ``-l`` given, joined (they must all hold)."""
    reqs: list[Requirement] = []
    for text in texts or []:
        reqs.extend(_requirement(p) for p in _split_top(text))
    return Selector(tuple(reqs))
