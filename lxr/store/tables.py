"""The store's tables. Timestamps are UNIX seconds (float) so every backend agrees on them.

Work units and attempts are rows, indexed by the columns the controller filters on, so that
an experiment of 100k work units stays cheap to reconcile and to list.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lxr.api.phases import EXPERIMENT_INITIAL, WORK_UNIT_INITIAL, AttemptPhase

__all__ = [
    "ArtifactChunkRow",
    "ArtifactRow",
    "AttemptRow",
    "Base",
    "ClusterRow",
    "ClusterStatusRow",
    "EventRow",
    "ExperimentRow",
    "LeaseRow",
    "StagedArtifactRow",
    "StagingTotalRow",
    "SubmissionRow",
    "WorkUnitRow",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints stably."""

    # every mapped class here is one plain Table (DeclarativeBase types it as any FromClause)
    __table__: ClassVar[Table]

    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ClusterRow(Base):
    """An applied Cluster (the default ``local`` cluster needs no row)."""

    __tablename__ = "clusters"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    resource_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[float] = mapped_column(Float)


class ClusterStatusRow(Base):
    """What the controller last saw of a cluster: its conditions (``Reachable``). Apart from
    :class:`ClusterRow` so that ``local``, which has no row, has one too, and a status write
    never moves the cluster's resourceVersion."""

    __tablename__ = "cluster_status"
    cluster: Mapped[str] = mapped_column(String(63), primary_key=True)
    conditions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[float] = mapped_column(Float)


class ExperimentRow(Base):
    """An applied Experiment: its spec, and the status the controller wrote."""

    __tablename__ = "experiments"
    uid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    cluster: Mapped[str] = mapped_column(String(63), index=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    resource_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[float] = mapped_column(Float)
    deletion_timestamp: Mapped[float | None] = mapped_column(Float, nullable=True)
    finalizers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # status (controller-written)
    observed_generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    phase: Mapped[str] = mapped_column(String(16), default=EXPERIMENT_INITIAL.value, index=True)
    conditions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    failed_indexes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    start_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    completion_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    # set when a FailJob rule or maxFailedIndexes ends the experiment early
    failed_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failed_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the index the next work unit added by a sweep edit gets (indexes are never reused);
    # None: one past the largest stored
    next_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # status.artifacts: what the controller staged for it, per artifact (None: nothing yet)
    artifacts: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    # the cluster's resource defaults when the experiment was created (desired state is
    # self-contained: a later change of the cluster's defaults does not change what it asks);
    # None: applied before they were recorded, the cluster's current defaults apply
    cluster_defaults: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class WorkUnitRow(Base):
    """One work unit."""

    __tablename__ = "work_units"
    __table_args__ = (
        # an experiment's units, in index order; no index holds a column a status write
        # sets (phase above all: 0011), so PostgreSQL updates rows in their page (HOT)
        UniqueConstraint("experiment_uid", "idx", name="uq_work_units_experiment_idx"),
        # room in each page for a row's next version (PostgreSQL's HOT update: 0010)
        {"postgresql_with": {"fillfactor": 50}},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_uid: Mapped[str] = mapped_column(ForeignKey("experiments.uid", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    env: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cluster: Mapped[str] = mapped_column(String(63))
    phase: Mapped[str] = mapped_column(String(16), default=WORK_UNIT_INITIAL.value)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    disruptions: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_after: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # the attempt in flight (submitted, not yet finished), if any
    active_attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the reason the next attempt is a retry (Preempted, Error, ...): set when one ends
    retry_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # a user asked this one work unit to stop (xm ``wu.stop()``): cancel it, never resubmit
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[float] = mapped_column(Float)
    # its content (lxr.api.sweep.unit_identities): what a sweep edit matches units by
    identity: Mapped[str | None] = mapped_column(String(80), nullable=True)
    # no longer in the spec: stopped, then deleted (or kept, removedWorkUnitPolicy Retain)
    removed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # factors (and caps) on the resources of its next attempts, from failurePolicy scale rules
    resource_scale: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class SubmissionRow(Base):
    """One job (an array) lxr submits. Written as an intent *before* the scheduler is called,
    so a controller restarted after a crash finds the job by its tag instead of submitting again.
    """

    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tag: Mapped[str] = mapped_column(String(64), unique=True)
    cluster: Mapped[str] = mapped_column(String(63), index=True)
    experiment_uid: Mapped[str] = mapped_column(
        ForeignKey("experiments.uid", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), index=True)  # Intent | Submitted | Failed
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    submitted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    tries: Mapped[int] = mapped_column(Integer, default=0)


class AttemptRow(Base):
    """One attempt of a work unit: a task of a submitted array."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("work_unit_id", "number", name="uq_attempts_work_unit_number"),
        Index("ix_attempts_job_task", "job_id", "array_index"),
        {"postgresql_with": {"fillfactor": 50}},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    work_unit_id: Mapped[int] = mapped_column(
        ForeignKey("work_units.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    array_index: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    phase: Mapped[str] = mapped_column(String(16), default=AttemptPhase.PENDING.value)
    state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    retry_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    submit_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    start_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancel_requested_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    #: a work unit of several ranks: the exit code of each (None: the rank wrote none)
    rank_exit_codes: Mapped[list[int | None] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    #: the rank that ended non-zero first
    first_failed_rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the resources this attempt asked the scheduler for (the cluster's defaults merged in,
    # scaled by a failurePolicy rule); None for attempts recorded before 0007
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class EventRow(Base):
    """A Kubernetes-like event: something that happened to an object, with a reason."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[float] = mapped_column(Float, index=True)
    type: Mapped[str] = mapped_column(String(16))  # Normal | Warning
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    experiment_uid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    cluster: Mapped[str | None] = mapped_column(String(63), nullable=True)


class StagingTotalRow(Base):
    """Bytes uploaded to each cluster by content-addressed staging, over all launches.

    Staging runs in the launch process, not the controller: launches add to this row and the
    controller exports it as ``lxr_staging_bytes_total``.
    """

    __tablename__ = "staging_totals"
    cluster: Mapped[str] = mapped_column(String(63), primary_key=True)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[float] = mapped_column(Float)


class LeaseRow(Base):
    """Leader election: one controller at a time holds the lease and renews it."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(Text, nullable=True)
    acquired_at: Mapped[float] = mapped_column(Float)
    renewed_at: Mapped[float] = mapped_column(Float)
    ttl_seconds: Mapped[float] = mapped_column(Float)
    #: the fencing token: one more at every new term, checked by each write of the term
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: when the holder last finished a cluster's cycle, and what it did (one line)
    last_cycle_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_cycle: Mapped[str | None] = mapped_column(Text, nullable=True)


class ArtifactRow(Base):
    """A content-addressed blob that an apply or a launch recorded: built code, a file set, an
    image. Its bytes are ``chunks`` rows of :class:`ArtifactChunkRow` on a database that holds
    them (PostgreSQL), else a file named by the digest in a directory beside the database."""

    __tablename__ = "artifacts"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    chunks: Mapped[int] = mapped_column(Integer)  # 0: the bytes are in the local directory
    created_at: Mapped[float] = mapped_column(Float)


class ArtifactChunkRow(Base):
    """One piece of an artifact's bytes, in order of ``seq``."""

    __tablename__ = "artifact_chunks"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class StagedArtifactRow(Base):
    """A blob the controller found or put in a cluster's staging directory (``name`` as staged
    under ``blobs/``), and when an experiment last needed it: what ``lxr gc`` ages from."""

    __tablename__ = "staged_artifacts"
    cluster: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    staged_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float] = mapped_column(Float)
