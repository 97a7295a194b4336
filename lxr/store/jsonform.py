"""Stored rows as the JSON form of the API objects, built without pydantic or the ORM.

A work unit comes out key for key as ``WorkUnit.model_dump(mode="json", by_alias=True,
exclude_none=True)`` would write it: at 100k work units that is the difference between
seconds and minutes. Experiments and clusters come out in their stored form (the spec as
normalized at apply); :mod:`lxr.store.reads` passes them through pydantic when a command
prints whole objects.

Each field list is written once, in the model's field order: adding a column to what ``get``
shows is one line here (and one in the model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from lxr.api.dependency_reasons import dependency_condition

__all__ = [
    "API_VERSION",
    "ATTEMPT_COLUMNS",
    "CLUSTER_COLUMNS",
    "EXPERIMENT_COLUMNS",
    "TABLE_ATTEMPT_KEYS",
    "UNIT_COLUMNS",
    "attempt_fields",
    "attempt_json",
    "cluster_json",
    "experiment_json",
    "json_value",
    "rfc3339",
    "status_fields",
    "unit_json",
]

API_VERSION = "lxr.dev/v1alpha1"

_seconds_cache: dict[int, str] = {}
# the text of times seen: the tasks of an array share their submit time, and start and end
# in bursts of the same second (a listing of 100k attempts formats 300k times)
_times: dict[float, str] = {}


def rfc3339(value: float) -> str:
    """UNIX seconds as pydantic writes an aware UTC datetime (``...T10:32:40.677802Z``)."""
    text = _times.get(value)
    if text is None:
        if len(_times) >= 100_000:
            _times.clear()
        text = _times[value] = _rfc3339(value)
    return text


def _rfc3339(value: float) -> str:
    whole = int(value // 1)
    head = _seconds_cache.get(whole)
    if head is None:
        if len(_seconds_cache) > 100_000:
            _seconds_cache.clear()
        head = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _seconds_cache[whole] = head
    micros = round((value - whole) * 1_000_000)
    if micros >= 1_000_000:  # rounding reached the next second: let datetime do it
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    return f"{head}.{micros:06d}Z" if micros else f"{head}Z"


_loads: Callable[[str], Any] | None = None


def json_value(value: Any, empty: Any = None) -> Any:
    """A JSON column's value: SQLite hands them over as text, PostgreSQL decoded."""
    global _loads
    if value is None:
        return {} if empty is None else empty
    if not isinstance(value, str):
        return value
    if value == "{}":
        return {}
    if _loads is None:  # orjson parses 100k work units' args several times faster
        import orjson

        _loads = orjson.loads
    return _loads(value)


# (column, JSON key, conversion): None values are left out, as exclude_none does
_Fields = Sequence[tuple[str, str, Callable[[Any], Any] | None]]
_Keys = tuple[tuple[str, Callable[[Any], Any] | None], ...]

#: an attempt, in ``Attempt``'s field order
_ATTEMPT: _Fields = (
    ("number", "attempt", None),
    ("job_id", "jobId", None),
    ("array_index", "index", None),
    ("phase", "phase", None),
    ("state", "state", None),
    ("exit_code", "exitCode", None),
    ("reason", "reason", None),
    ("message", "message", None),
    ("restarts", "restarts", None),
    ("submit_time", "submitTime", rfc3339),
    ("start_time", "startTime", rfc3339),
    ("end_time", "endTime", rfc3339),
    ("rank_exit_codes", "rankExitCodes", json_value),
    ("first_failed_rank", "firstFailedRank", None),
    ("resources", "resources", json_value),
)
#: a work unit's status, in ``WorkUnitStatus``'s field order (``attempts`` comes last)
_UNIT_STATUS: _Fields = (
    ("phase", "phase", None),
    ("reason", "reason", None),
    ("message", "message", None),
    ("exit_code", "exitCode", None),
    ("failures", "failures", None),
    ("disruptions", "disruptions", None),
    ("next_attempt_after", "nextAttemptAfter", rfc3339),
)

#: what to select for :func:`attempt_json` (after the work unit's id)
ATTEMPT_COLUMNS = ("work_unit_id", *(c for c, _, _ in _ATTEMPT))
#: what to select for :func:`unit_json`
UNIT_COLUMNS = ("id", "idx", "name", "args", "env", *(c for c, _, _ in _UNIT_STATUS))
#: what to select for :func:`experiment_json`
EXPERIMENT_COLUMNS = (
    "uid",
    "name",
    "labels",
    "annotations",
    "spec",
    "generation",
    "resource_version",
    "created_at",
    "deletion_timestamp",
    "finalizers",
    "observed_generation",
    "phase",
    "conditions",
    "counts",
    "failed_indexes",
    "artifacts",
    "start_time",
    "completion_time",
)
#: what to select for :func:`cluster_json`
CLUSTER_COLUMNS = (
    "name",
    "uid",
    "labels",
    "annotations",
    "spec",
    "generation",
    "resource_version",
    "created_at",
)


def _keys(fields: _Fields) -> _Keys:
    return tuple((key, conv) for _, key, conv in fields)


_ATTEMPT_KEYS = _keys(_ATTEMPT)
_UNIT_STATUS_KEYS = _keys(_UNIT_STATUS)


def _fields(keys: _Keys, values: Sequence[Any], out: dict[str, Any]) -> dict[str, Any]:
    # the loop of every row of a 100k listing: kept small
    for (key, conv), value in zip(keys, values, strict=True):
        if value is None:
            continue
        if conv is not None:
            value = conv(value)
            if value is None:  # a JSON column holding null
                continue
        out[key] = value
    return out


def status_fields(row: Sequence[Any]) -> dict[str, Any]:
    """A work-unit row's (:data:`UNIT_COLUMNS`) status fields with a value, in the JSON form
    (without its attempts and conditions): for writers of the JSON form straight from rows."""
    return _fields(_UNIT_STATUS_KEYS, row[5:], {})


def attempt_fields(row: Sequence[Any]) -> dict[str, Any]:
    """An attempt row's (:data:`ATTEMPT_COLUMNS`) fields with a value, in the JSON form."""
    return _fields(_ATTEMPT_KEYS, row[1:], {})


#: what a table of work units shows of their attempts (``lxr.cli.output``: ATTEMPTS, JOB): a
#: listing printed as a table builds only these (no times to format, no JSON to parse)
TABLE_ATTEMPT_KEYS = frozenset({"attempt", "jobId", "index", "phase"})
_TABLE_ATTEMPT = tuple(
    (i, key, conv) for i, (key, conv) in enumerate(_ATTEMPT_KEYS) if key in TABLE_ATTEMPT_KEYS
)


def attempt_json(row: Sequence[Any], *, table: bool = False) -> dict[str, Any]:
    """An attempt row (:data:`ATTEMPT_COLUMNS`) as the JSON form of an ``Attempt``; with
    ``table``, only its :data:`TABLE_ATTEMPT_KEYS`."""
    if not table:
        return attempt_fields(row)
    out: dict[str, Any] = {}
    for i, key, conv in _TABLE_ATTEMPT:
        value = row[i + 1]
        if value is not None:
            out[key] = value if conv is None else conv(value)
    return out


def unit_json(
    exp_name: str, exp_uid: str, row: Sequence[Any], attempts: list[dict[str, Any]]
) -> dict[str, Any]:
    """A work-unit row (:data:`UNIT_COLUMNS`) with its attempts as a ``WorkUnit``'s JSON form."""
    idx, name, args, env = row[1], row[2], row[3], row[4]
    index = str(idx)
    labels = {"experiment": exp_name, "index": index}
    if name != index:
        labels["name"] = name
    status = status_fields(row)
    status["attempts"] = attempts
    found = dependency_condition(status["phase"], status.get("reason"), status.get("message"))
    status["conditions"] = [found] if found else []
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkUnit",
        "metadata": {"name": f"{exp_name}-{index}", "uid": f"{exp_uid}/{index}", "labels": labels},
        "spec": {"index": idx, "args": json_value(args), "env": json_value(env)},
        "status": status,
    }


def _meta(
    when: Callable[[float], Any],
    name: str,
    uid: str,
    labels: Any,
    annotations: Any,
    generation: int,
    resource_version: int,
    created_at: float,
) -> dict[str, Any]:
    return {
        "name": name,
        "labels": json_value(labels),
        "annotations": json_value(annotations),
        "uid": uid,
        "generation": generation,
        "resourceVersion": str(resource_version),
        "creationTimestamp": when(created_at),
    }


def experiment_json(row: Sequence[Any], when: Callable[[float], Any] = rfc3339) -> dict[str, Any]:
    """An experiment row (:data:`EXPERIMENT_COLUMNS`) as an ``Experiment``'s JSON form; times
    through ``when`` (RFC 3339 text, or datetimes for pydantic)."""
    (uid, name, labels, annotations, spec, generation, resource_version, created_at, deleting,
     finalizers, observed, phase, conditions, counts, failed, artifacts, started,
     completed) = row  # fmt: skip
    meta = _meta(when, name, uid, labels, annotations, generation, resource_version, created_at)
    if deleting is not None:
        meta["deletionTimestamp"] = when(deleting)
    meta["finalizers"] = json_value(finalizers, [])
    status: dict[str, Any] = {}
    if observed is not None:
        status["observedGeneration"] = observed
    status["phase"] = phase
    status["conditions"] = json_value(conditions, [])
    status["workUnits"] = json_value(counts)
    status["failedIndexes"] = json_value(failed, [])
    status["artifacts"] = json_value(artifacts, [])
    if started is not None:
        status["startTime"] = when(started)
    if completed is not None:
        status["completionTime"] = when(completed)
    return {
        "apiVersion": API_VERSION,
        "kind": "Experiment",
        "metadata": meta,
        "spec": json_value(spec),
        "status": status,
    }


def cluster_json(
    row: Sequence[Any] | None,
    conditions: Any,
    when: Callable[[float], Any] = rfc3339,
) -> dict[str, Any]:
    """A cluster row (:data:`CLUSTER_COLUMNS`; None for the built-in ``local``) with its
    stored conditions as a ``Cluster``'s JSON form."""
    if row is None:
        meta: dict[str, Any] = {"name": "local", "labels": {}, "annotations": {}}
        spec: Any = {"scheduler": "local"}
    else:
        name, uid, labels, annotations, spec, generation, resource_version, created_at = row
        meta = _meta(when, name, uid, labels, annotations, generation, resource_version, created_at)
        spec = json_value(spec)
    meta["finalizers"] = []
    return {
        "apiVersion": API_VERSION,
        "kind": "Cluster",
        "metadata": meta,
        "spec": spec,
        "status": {"conditions": json_value(conditions, [])},
    }
