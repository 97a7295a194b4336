"""How the CLI prints resources: plain-text tables for people, JSON/YAML lists for tools.

Everything works on the JSON form of a resource (``to_dict``), so a table, ``-o json``,
``custom-columns``, ``jsonpath`` and ``--sort-by`` see the same fields, whether the objects
came from pydantic models or straight from a paged database read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from itertools import chain, islice
from typing import Any, TextIO

from lxr.api.phases import EXPERIMENT_INITIAL, WORK_UNIT_ACTIVE, WorkUnitPhase
from lxr.cli.columns import shorten_middle

__all__ = [
    "ACTIVE_PHASES",
    "ARGS_WIDTH",
    "TABLES",
    "Table",
    "age",
    "args_text",
    "dump",
    "event_dict",
    "to_dict",
    "unit_table_rows",
    "utc",
    "write_list",
]

API_VERSION = "lxr.dev/v1alpha1"
ACTIVE_PHASES = tuple(p.value for p in WorkUnitPhase if p in WORK_UNIT_ACTIVE)
# an ARGS cell longer than this is shortened in the middle; -o wide and yaml show it all
ARGS_WIDTH = 60


def to_dict(obj: Any) -> dict[str, Any]:
    """A resource as plain JSON-able data, camelCase, without empty optional fields."""
    if isinstance(obj, dict):
        return obj
    return obj.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump(objs: Sequence[Any], fmt: str, single: bool) -> str:
    """``objs`` as JSON or YAML; a kubectl-style ``List`` unless one object was asked for."""
    import io

    buf = io.StringIO()
    if single and len(objs) == 1:
        data = to_dict(objs[0])
        if fmt == "json":
            buf.write(json.dumps(data, indent=2))
        else:
            from lxr.cli.yamltext import write_yaml

            write_yaml(data, buf)
    else:
        write_list((to_dict(o) for o in objs), fmt, buf)
    return buf.getvalue().rstrip("\n")


# -o json: items dumped together, and what orjson writes around them
_JSON_PAGE = 500
_JSON_HEAD = len(b'{\n  "items": [')
_JSON_TAIL = len(b"\n  ]\n}")


def write_list(items: Iterable[Mapping[str, Any]], fmt: str, file: TextIO) -> int:
    """Stream ``items`` as a ``List`` in JSON or YAML, one item at a time; returns the count."""
    head = {"apiVersion": API_VERSION, "kind": "List"}
    n = 0
    if fmt == "json":
        import orjson

        file.write(f'{{\n  "apiVersion": "{API_VERSION}",\n  "kind": "List",\n  "items": [')
        it = iter(items)
        while page := list(islice(it, _JSON_PAGE)):
            # a page in one call: orjson indents the items of {"items": [...]} as they stand
            # in the List, so its text between the brackets is theirs
            text = orjson.dumps({"items": page}, option=orjson.OPT_INDENT_2)
            file.write(("," if n else "") + text[_JSON_HEAD:-_JSON_TAIL].decode())
            n += len(page)
        file.write("\n  ]\n}\n" if n else "]\n}\n")
        return n
    from lxr.cli.yamltext import write_yaml, write_yaml_items

    write_yaml(head, file)
    it = iter(items)
    for first in it:
        file.write("items:\n")
        return write_yaml_items(chain([first], it), file)
    file.write("items: []\n")
    return 0


def age(when: str | datetime | float | None) -> str:
    """``5s``, ``3m``, ``2h``, ``4d``, like kubectl."""
    if when is None:
        return "-"
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    seconds = time.time() - (when.timestamp() if isinstance(when, datetime) else when)
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def utc(when: float | None) -> str:
    """RFC 3339 UTC."""
    if when is None:
        return "-"
    return datetime.fromtimestamp(when, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _py(value: Any) -> str:
    # how the args read in the table: the values as Python prints them (True, 0.1, [1, 2])
    return str(value)


def args_text(args: Mapping[str, Any]) -> str:
    """A work unit's args as ``k=v k=v``."""
    return " ".join(f"{k}={_py(v)}" for k, v in args.items())


class Table:
    """Column headers and how to compute a row from a resource's JSON form."""

    def __init__(
        self,
        headers: Sequence[str],
        row: Callable[[Mapping[str, Any]], list[str]],
        wide_headers: Sequence[str] = (),
        wide_row: Callable[[Mapping[str, Any]], list[str]] | None = None,
    ) -> None:
        self._headers, self._row = list(headers), row
        self._wide_headers, self._wide_row = list(wide_headers), wide_row

    def headers(self, wide: bool) -> list[str]:
        """The column names."""
        return self._wide_headers if wide and self._wide_row else self._headers

    def rows(self, items: Iterable[Mapping[str, Any]], wide: bool) -> Iterator[list[str]]:
        """One row per item."""
        fn = self._wide_row if wide and self._wide_row else self._row
        return (fn(item) for item in items)


def _exp_counts(d: Mapping[str, Any]) -> tuple[str, Mapping[str, int]]:
    st = d.get("status") or {}
    return st.get("phase", EXPERIMENT_INITIAL.value), st.get("workUnits") or {}


def _exp_row(d: Mapping[str, Any]) -> list[str]:
    phase, counts = _exp_counts(d)
    return [
        d["metadata"]["name"],
        phase,
        str(counts.get(WorkUnitPhase.SUCCEEDED.value, 0)),
        str(counts.get(WorkUnitPhase.FAILED.value, 0)),
        str(sum(counts.get(p, 0) for p in ACTIVE_PHASES)),
        str(counts.get("total", 0)),
        age(d["metadata"].get("creationTimestamp")),
    ]


def _exp_wide_row(d: Mapping[str, Any]) -> list[str]:
    row = _exp_row(d)
    st = d.get("status") or {}
    gen = f"{st.get('observedGeneration') or '-'}/{d['metadata'].get('generation')}"
    row[2:2] = [d["spec"]["cluster"], gen]
    cond = next((c for c in st.get("conditions") or [] if c["type"] == "Succeeded"), None)
    notes = d["metadata"].get("annotations") or {}
    row += [
        notes.get("lxr.dev/title", ""),
        notes.get("lxr.dev/tags", ""),
        cond.get("message", "") if cond else "",
    ]
    return row


def _job(st: Mapping[str, Any]) -> str:
    attempts = st.get("attempts") or []
    last = attempts[-1] if attempts else None
    if not last or not last.get("jobId"):
        return "-"
    index = last.get("index")
    return f"{last['jobId']}[{index}]" if index is not None else last["jobId"]


def _reason(st: Mapping[str, Any]) -> str:
    """The reason, or for a waiting work unit what it waits for (its message)."""
    if st.get("phase") == "Waiting" and st.get("message"):
        return str(st["message"])
    return st.get("reason") or ""


def _wu_row(d: Mapping[str, Any], wide: bool = False) -> list[str]:
    st = d["status"]
    args = args_text(d["spec"].get("args") or {})
    row = [
        d["metadata"]["name"],
        st["phase"],
        str(len(st.get("attempts") or [])),
        _job(st),
        "-" if st.get("exitCode") is None else str(st["exitCode"]),
        _reason(st),
        args if wide else shorten_middle(args, ARGS_WIDTH),
    ]
    if wide:
        row += [str(st.get("failures", 0)), str(st.get("disruptions", 0)), st.get("message") or ""]
    return row


_loads: Callable[[str], Any] | None = None


def _args_cell(stored: str | None, wide: bool) -> str:
    """The ARGS cell from the args' stored JSON text (:func:`args_text`)."""
    global _loads
    if not stored or stored == "{}":
        return ""
    if _loads is None:
        import orjson

        _loads = orjson.loads
    args = _loads(stored)
    if not args:
        return ""
    # f"{v}" is str(v): the values as Python prints them, as _py
    text = " ".join([f"{k}={v}" for k, v in args.items()])
    return text if wide or len(text) <= ARGS_WIDTH else shorten_middle(text, ARGS_WIDTH)


def unit_table_rows(
    pages: Iterable[Sequence[Sequence[Any]]], wide: bool
) -> Iterator[Sequence[str]]:
    """The rows :data:`TABLES` ``["WorkUnit"]`` makes, from pages of SQL's cells (every
    column but ARGS as text already: ``lxr.store.reads.UNIT_TABLE_CELLS``/``UNIT_WIDE_CELLS``):
    a table of 100k work units builds no objects."""
    for page in pages:
        cols = list(zip(*page, strict=True))
        args = [_args_cell(a, wide) for a in cols[6]]
        shown = [*cols[:6], args, *cols[7:10]] if wide else [*cols[:6], args]
        yield from zip(*shown, strict=True)


def _cluster_row(d: Mapping[str, Any]) -> list[str]:
    spec = d["spec"]
    host = "-"
    ssh = spec.get("ssh")
    if ssh:
        user = ssh.get("user")
        host = f"{user + '@' if user else ''}{ssh['host']}:{ssh.get('port', 22)}"
    # the controller's Reachable condition: Unknown until it first tried the cluster
    conds = (d.get("status") or {}).get("conditions") or []
    cond = next((c for c in conds if c.get("type") == "Reachable"), None)
    reach, message = "Unknown", ""
    if cond is not None:
        reach = cond.get("status", "Unknown")
        if reach == "False":
            reach = f"False ({age(cond.get('lastTransitionTime'))})"
            message = f"{cond.get('reason', '')}: {cond.get('message', '')}"
    return [
        d["metadata"]["name"],
        spec["scheduler"],
        host,
        reach,
        spec.get("stagingDir") or "(default)",
        age(d["metadata"].get("creationTimestamp")),
        message,
    ]


def event_dict(ev: Any) -> dict[str, Any]:
    """An event (``EventInfo``) in the JSON form of a kubectl event."""
    return {
        "kind": "Event",
        "type": ev.type,
        "reason": ev.reason,
        "message": ev.message,
        "involvedObject": {"kind": ev.kind, "name": ev.name},
        "lastTimestamp": utc(ev.time),
        "metadata": {"name": f"{ev.name}.{ev.id}"},
    }


def _event_row(d: Mapping[str, Any]) -> list[str]:
    obj = d["involvedObject"]
    return [
        age(d["lastTimestamp"]),
        d["type"],
        d["reason"],
        f"{obj['kind'].lower()}/{obj['name']}",
        d["message"],
    ]


_EXP = ["NAME", "PHASE", "SUCCEEDED", "FAILED", "ACTIVE", "TOTAL", "AGE"]
_WU = ["NAME", "PHASE", "ATTEMPTS", "JOB", "EXIT", "REASON", "ARGS"]

TABLES: dict[str, Table] = {
    "Experiment": Table(
        _EXP,
        _exp_row,
        [*_EXP[:2], "CLUSTER", "GEN", *_EXP[2:], "TITLE", "TAGS", "MESSAGE"],
        _exp_wide_row,
    ),
    "WorkUnit": Table(
        _WU,
        _wu_row,
        [*_WU, "FAILURES", "DISRUPTIONS", "MESSAGE"],
        lambda d: _wu_row(d, wide=True),
    ),
    "Cluster": Table(
        ["NAME", "SCHEDULER", "HOST", "REACHABLE", "STAGING", "AGE", "MESSAGE"], _cluster_row
    ),
    "Event": Table(["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], _event_row),
}
