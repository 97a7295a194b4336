"""kubectl's JSONPath templates (``-o jsonpath=``, ``custom-columns``, ``--sort-by``), the
part people use: ``{.a.b}``, ``[n]``, ``[*]``, ``[start:end]``, ``..key``, ``[?(@.k=="v")]``,
``{range .items[*]}…{end}``, literal text and ``{"\\n"}``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["JsonPathError", "evaluate", "format_value", "parse_path", "parse_template", "render"]

_TOKEN = re.compile(
    r"""\.\.(?P<deep>[A-Za-z0-9_-]+)
      | \.(?P<field>[A-Za-z0-9_-]+)
      | \[(?P<index>-?\d+)\]
      | \[(?P<slice>-?\d*:-?\d*)\]
      | \[\*\]|\.\*
      | \[\?\(@\.(?P<fkey>[A-Za-z0-9_.-]+)\s*(?P<fop>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|-?\d+)\)\]
      | \['(?P<qfield>[^']+)'\]
    """,
    re.X,
)


class JsonPathError(ValueError):
    """A template that cannot be parsed."""


def parse_path(expr: str) -> list[tuple[str, Any]]:
    expr = expr.strip()
    if expr in ("", ".", "$", "@"):
        return []
    if expr[0] in "$@":
        expr = expr[1:]
    if not expr.startswith((".", "[")):
        expr = "." + expr
    pos, steps = 0, []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise JsonPathError(f"unexpected {expr[pos:]!r} in {expr!r}")
        pos = m.end()
        if m["deep"]:
            steps.append(("deep", m["deep"]))
        elif m["field"] or m["qfield"]:
            steps.append(("field", m["field"] or m["qfield"]))
        elif m["index"] is not None:
            steps.append(("index", int(m["index"])))
        elif m["slice"] is not None:
            a, _, b = m["slice"].partition(":")
            steps.append(("slice", (int(a) if a else None, int(b) if b else None)))
        elif m["fkey"]:
            raw = m["fval"]
            val: Any = raw[1:-1] if raw[0] in "'\"" else int(raw)
            steps.append(("filter", (m["fkey"], m["fop"], val)))
        else:
            steps.append(("all", None))
    return steps


def _walk(data: Any, step: tuple[str, Any]) -> Iterator[Any]:
    kind, arg = step
    if kind == "field":
        if isinstance(data, dict) and arg in data:
            yield data[arg]
    elif kind == "index":
        if isinstance(data, list) and -len(data) <= arg < len(data):
            yield data[arg]
    elif kind == "slice":
        if isinstance(data, list):
            yield from data[arg[0] : arg[1]]
    elif kind == "all":
        if isinstance(data, list):
            yield from data
        elif isinstance(data, dict):
            yield from data.values()
    elif kind == "filter":
        key, op, val = arg
        for item in data if isinstance(data, list) else []:
            got = evaluate(item, "." + key)
            hit = bool(got) and got[0] == val
            if hit == (op == "=="):
                yield item
    elif kind == "deep":
        stack = [data]
        while stack:
            cur = stack.pop(0)
            if isinstance(cur, dict):
                if arg in cur:
                    yield cur[arg]
                stack.extend(cur.values())
            elif isinstance(cur, list):
                stack.extend(cur)


def evaluate(data: Any, expr: str) -> list[Any]:
    """Every value ``expr`` selects in ``data``."""
    current = [data]
    for step in parse_path(expr):
        current = [v for item in current for v in _walk(item, step)]
    return current


def format_value(value: Any) -> str:
    """A value as kubectl prints it: strings bare, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<none>"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


_PART = re.compile(r"\{((?:[^{}\"']|\"[^\"]*\"|'[^']*')*)\}")


def parse_template(template: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _PART.finditer(template):
        if m.start() > pos:
            parts.append(("text", template[pos : m.start()]))
        inner = m.group(1).strip()
        if inner.startswith("range "):
            parts.append(("range", inner[6:]))
        elif inner == "end":
            parts.append(("end", ""))
        elif inner[:1] in "\"'" and inner[-1:] == inner[:1]:
            parts.append(("text", json.loads('"' + inner[1:-1] + '"', strict=False)))
        else:
            parse_path(inner)  # errors now, not per object
            parts.append(("expr", inner))
        pos = m.end()
    if pos < len(template):
        parts.append(("text", template[pos:]))
    if "{" in "".join(t for k, t in parts if k == "text" and t.count("{") != t.count("}")):
        raise JsonPathError(f"unclosed '{{' in {template!r}")
    return parts


def _render(parts: list[tuple[str, str]], data: Any, out: list[str]) -> int:
    i = 0
    while i < len(parts):
        kind, arg = parts[i]
        if kind == "text":
            out.append(arg)
        elif kind == "expr":
            out.append(" ".join(format_value(v) for v in evaluate(data, arg)))
        elif kind == "range":
            depth, j = 1, i + 1
            while j < len(parts) and depth:
                depth += {"range": 1, "end": -1}.get(parts[j][0], 0)
                j += 1
            if depth:
                raise JsonPathError("{range} without {end}")
            body = parts[i + 1 : j - 1]
            for item in evaluate(data, arg):
                _render(body, item, out)
            i = j - 1
        elif kind == "end":
            raise JsonPathError("{end} without {range}")
        i += 1
    return i


def render(template: str, data: Any) -> str:
    """``template`` applied to ``data``, as ``kubectl get -o jsonpath=`` does."""
    parts = parse_template(template)
    if not any(k != "text" for k, _ in parts):
        raise JsonPathError(f"{template!r}: expected at least one {{.field}}")
    out: list[str] = []
    _render(parts, data, out)
    return "".join(out)
