"""One codec per entity: how a stored row becomes a controller record or an API object, and
how a patch becomes the values of an UPDATE.

Field lists are derived once, at import, from the record dataclasses and the API models (a
rename map where the column is named differently), so a field added to a record or a model is
carried through without being copied by hand into each conversion.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import InstrumentedAttribute

from lxr.api.records import AttemptRecord, ExperimentRecord, StatusRecord, WorkUnitRecord
from lxr.api.resources import (
    API_VERSION,
    ArtifactStatus,
    Attempt,
    Cluster,
    ClusterSpec,
    Condition,
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    ObjectMeta,
    Resources,
    WorkUnit,
    WorkUnitSpec,
    WorkUnitStatus,
)
from lxr.store.tables import (
    AttemptRow,
    Base,
    ClusterRow,
    EventRow,
    ExperimentRow,
    SubmissionRow,
    WorkUnitRow,
)

__all__ = [
    "ATTEMPT_RECORD",
    "WORK_UNIT_RECORD",
    "RecordCodec",
    "attempt_patch_columns",
    "cluster_from_row",
    "event_row",
    "experiment_from_row",
    "experiment_record",
    "status_record",
    "ts",
    "work_unit_patch_columns",
    "work_unit_view",
]


def ts(value: float | None) -> datetime | None:
    """UNIX seconds as an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


# ---------------------------------------------------------------------- records (controller)


class RecordCodec:
    """The columns to select for a frozen record, in its field order, and the record built
    positionally from those values (keyword construction costs more at 100k rows).

    ``sources`` names a column for fields whose column is named differently; ``nested`` is a
    field filled by the caller (another record), left out of the columns. ``shared`` fields
    hold the same few strings in every row (phases, states, a submission's tag): one object
    each per load, not one per row (100k rows hold ~30 MB of copies otherwise).
    """

    def __init__(
        self,
        record: type,
        table: type,
        *,
        label: str = "",
        sources: Mapping[str, InstrumentedAttribute[Any]] | None = None,
        nested: str | None = None,
        shared: Sequence[str] = (),
    ) -> None:
        self.record = record
        names = [f.name for f in dataclasses.fields(record)]
        self.nested_at = names.index(nested) if nested else None
        names = [n for n in names if n != nested]
        self.shared = tuple(i for i, n in enumerate(names) if n in shared)
        sources = dict(sources or {})
        self.columns = tuple(
            (sources.get(n) or getattr(table, n)).label(f"{label}{n}") for n in names
        )

    def build(
        self, values: Sequence[Any], nested: Any = None, strings: dict[str, str] | None = None
    ) -> Any:
        """The record from ``values`` (in :attr:`columns` order), with ``nested`` in place;
        its shared strings taken from ``strings`` (those not there yet are added)."""
        if strings is not None and self.shared:
            values = list(values)
            for i in self.shared:
                v = values[i]
                if v is not None:
                    values[i] = strings.setdefault(v, v)
        at = self.nested_at
        if at is None:
            return self.record(*values)
        return self.record(*values[:at], nested, *values[at:])


ATTEMPT_RECORD = RecordCodec(
    AttemptRecord,
    AttemptRow,
    label="a_",
    sources={
        "submission_tag": SubmissionRow.tag,
        "submission_state": SubmissionRow.state,
        "submission_error": SubmissionRow.error,
    },
    shared=("submission_tag", "submission_state", "job_id", "phase", "state"),
)
WORK_UNIT_RECORD = RecordCodec(
    WorkUnitRecord,
    WorkUnitRow,
    sources={"index": WorkUnitRow.idx},
    nested="active",
    shared=("phase", "retry_reason"),
)


def experiment_record(
    row: ExperimentRow,
    failed_count: int,
    work_units: tuple[WorkUnitRecord, ...],
    status: StatusRecord | None = None,
) -> ExperimentRecord:
    """An experiment as one controller cycle sees it."""
    return ExperimentRecord(
        uid=row.uid,
        name=row.name,
        cluster=row.cluster,
        generation=row.generation,
        spec=_resolved_spec(row),
        resources_resolved=row.cluster_defaults is not None,
        deleting=row.deletion_timestamp is not None,
        failed_reason=row.failed_reason,
        failed_count=failed_count,
        work_units=work_units,
        status=status,
        staged=_staged_digests(row.artifacts),
    )


def _resolved_spec(row: ExperimentRow) -> ExperimentSpec:
    """The spec, its resources over the cluster's defaults recorded at apply (when they were)."""
    spec = ExperimentSpec.model_validate(row.spec)
    if row.cluster_defaults is None:
        return spec
    defaults = Resources.model_validate(row.cluster_defaults)
    return spec.model_copy(update={"resources": spec.resources.merged_over(defaults)})


def _staged_digests(artifacts: list[Any] | None) -> frozenset[str]:
    return frozenset(a["digest"] for a in artifacts or [] if a.get("phase") == "Staged")


def status_record(
    row: ExperimentRow, counts: Mapping[str, int], never: int, failed: Sequence[int]
) -> StatusRecord:
    """The status inputs of an experiment (``counts``: work units per phase) with its status as
    last written."""
    return StatusRecord(
        counts=dict(counts),
        never_submitted=never,
        failed_indexes=tuple(failed),
        failed_message=row.failed_message,
        conditions=tuple(Condition.model_validate(c) for c in row.conditions),
        written={
            "phase": row.phase,
            "counts": row.counts,
            "conditions": row.conditions,
            "failed_indexes": row.failed_indexes,
            "observed_generation": row.observed_generation,
            "start_time": row.start_time,
            "completion_time": row.completion_time,
        },
    )


# ---------------------------------------------------------------------- patches (controller)

_patch_fields: dict[tuple[type, type[Base]], tuple[str, ...]] = {}


def _patch_columns(kind: type, table: type[Base]) -> tuple[str, ...]:
    """The fields of patch type ``kind`` that are columns of ``table`` (``id`` first)."""
    key = (kind, table)
    found = _patch_fields.get(key)
    if found is None:
        columns = table.__table__.columns
        found = tuple(f.name for f in dataclasses.fields(kind) if f.name in columns)
        assert found[0] == "id", found
        _patch_fields[key] = found
    return found


class _PatchColumns(Mapping[str, list[Any]]):
    """Each named field of the patches as one list (a column of the UPDATE), made when asked
    for: a writer that keeps only the columns that vary holds no 100k-entry list of a value
    every patch shares (most of an attempt's fields in a pass where every task started)."""

    __slots__ = ("_names", "_patches")

    def __init__(self, patches: Sequence[Any], names: Sequence[str]) -> None:
        self._patches = patches
        self._names = tuple(names)

    def __getitem__(self, name: str) -> list[Any]:
        if name not in self._names:
            raise KeyError(name)
        return list(map(attrgetter(name), self._patches))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def attempt_patch_columns(patches: Sequence[Any]) -> Mapping[str, list[Any]]:
    """Attempt patches (``UpdateStatus.attempts``) as the columns of their UPDATE (``id``
    first), each a list of the patches' values in order (made when asked for)."""
    if not patches:
        return {}
    return _PatchColumns(patches, _patch_columns(type(patches[0]), AttemptRow))


_OUTCOME = ("reason", "message", "exit_code")


def work_unit_patch_columns(
    patches: Sequence[Any], now: float
) -> list[tuple[Mapping[str, list[Any]], dict[str, Any]]]:
    """Work-unit patches as UPDATEs, grouped by the columns they write: the outcome (reason,
    message, exit code) only when the patch sets one, the active attempt cleared when asked,
    ``updated_at`` always. Each group is its columns (``id`` first, a list of values each, made
    when asked for) and the columns it sets to one value for every row."""
    if not patches:
        return []
    names = _patch_columns(type(patches[0]), WorkUnitRow)
    short = tuple(n for n in names if n not in _OUTCOME)
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for patch in patches:
        groups.setdefault((patch.reason is not None, patch.clear_active), []).append(patch)
    out: list[tuple[Mapping[str, list[Any]], dict[str, Any]]] = []
    for (outcome, clear), group in groups.items():
        fixed: dict[str, Any] = {"updated_at": now}
        if clear:
            fixed["active_attempt_id"] = None
        out.append((_PatchColumns(group, names if outcome else short), fixed))
    return out


# ---------------------------------------------------------------------- API objects (views)


def _is_time(annotation: Any) -> bool:
    return annotation is datetime or datetime in typing.get_args(annotation)


class _ViewCodec:
    """Keyword arguments of an API model from a row: same-named columns, renamed ones, UNIX
    seconds turned into datetimes; fields in ``skip`` are the caller's."""

    def __init__(
        self,
        model: type[BaseModel],
        rename: Mapping[str, str],
        *,
        skip: Sequence[str] = (),
        convert: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        convert = dict(convert or {})
        self.fields = tuple(
            (
                name,
                rename.get(name, name),
                convert.get(name) or (ts if _is_time(info.annotation) else None),
            )
            for name, info in model.model_fields.items()
            if name not in skip
        )

    def kwargs(self, row: Any) -> dict[str, Any]:
        out = {}
        for name, column, conv in self.fields:
            value = getattr(row, column)
            out[name] = value if conv is None else conv(value)
        return out


_ATTEMPT_VIEW = _ViewCodec(Attempt, {"attempt": "number", "index": "array_index"})
_WORK_UNIT_STATUS_VIEW = _ViewCodec(WorkUnitStatus, {}, skip=("attempts", "conditions"))
_EXPERIMENT_STATUS_VIEW = _ViewCodec(
    ExperimentStatus,
    {"work_units": "counts"},
    convert={
        "conditions": lambda cs: [Condition.model_validate(c) for c in cs or []],
        "work_units": lambda counts: counts or {},
        "failed_indexes": lambda idx: idx or [],
        "artifacts": lambda arts: [ArtifactStatus.model_validate(a) for a in arts or []],
    },
)


def _meta(row: ClusterRow | ExperimentRow, **extra: Any) -> ObjectMeta:
    """The metadata of a stored object, server-set fields included."""
    return ObjectMeta.model_validate(
        {
            "name": row.name,
            "uid": row.uid,
            "generation": row.generation,
            "resourceVersion": str(row.resource_version),
            "creationTimestamp": ts(row.created_at),
            "labels": row.labels,
            "annotations": row.annotations,
            **extra,
        },
        strict=False,
    )


def cluster_from_row(row: ClusterRow) -> Cluster:
    """A stored cluster as the API object."""
    return Cluster(metadata=_meta(row), spec=ClusterSpec.model_validate(row.spec))


def experiment_from_row(row: ExperimentRow) -> Experiment:
    """A stored experiment as the API object, status included."""
    return Experiment(
        metadata=_meta(
            row,
            deletionTimestamp=ts(row.deletion_timestamp),
            finalizers=list(row.finalizers or []),
        ),
        spec=ExperimentSpec.model_validate(row.spec),
        status=ExperimentStatus(**_EXPERIMENT_STATUS_VIEW.kwargs(row)),
    )


def work_unit_view(exp: Experiment, row: WorkUnitRow, attempts: Sequence[AttemptRow]) -> WorkUnit:
    """A stored work unit with its attempts as the (read-only) API object."""
    return WorkUnit(
        api_version=API_VERSION,
        metadata={
            "name": f"{exp.metadata.name}-{row.idx}",
            "uid": f"{exp.metadata.uid}/{row.idx}",
            "labels": {
                "experiment": exp.metadata.name,
                "index": str(row.idx),
                **({"name": row.name} if row.name != str(row.idx) else {}),
            },
        },
        spec=WorkUnitSpec(index=row.idx, args=row.args or {}, env=row.env or {}),
        status=WorkUnitStatus(
            **_WORK_UNIT_STATUS_VIEW.kwargs(row),
            attempts=[Attempt(**_ATTEMPT_VIEW.kwargs(a)) for a in attempts],
        ),
    )


# ---------------------------------------------------------------------- events


def event_row(
    now: float,
    type_: str,
    reason: str,
    message: str,
    kind: str,
    name: str,
    experiment_uid: str | None = None,
    cluster: str | None = None,
) -> EventRow:
    """An event to store."""
    return EventRow(
        time=now,
        type=type_,
        reason=reason,
        message=message,
        kind=kind,
        name=name,
        experiment_uid=experiment_uid,
        cluster=cluster,
    )
