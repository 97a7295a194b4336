"""The store on SQLite and on a real PostgreSQL (from deploy/dev-cluster)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from lxr.api.phases import (
    AttemptPhase,
    SubmissionEvent,
    WorkUnitPhase,
    submission_transition,
)
from lxr.api.resources import Experiment
from lxr.store import Conflict, Invalid, NotFound, Store
from lxr.store.tables import Base, ExperimentRow
from lxr.testing import refresh_status
from tests.conftest import REPO

#: what the plan's Submit states for a new intent's work units and attempts
READY = {"phase": WorkUnitPhase.PENDING, "attempt_phase": AttemptPhase.PENDING}


def make_experiment(name: str = "e", n: int = 3, **spec: object) -> Experiment:
    return Experiment.model_validate(
        {
            "metadata": {"name": name, "labels": {"team": "a"}},
            "spec": {
                "executable": {"command": ["true"]},
                "sweep": {"grid": {"x": list(range(n))}},
                **spec,
            },
        }
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path, state_home: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'lxr.db'}")
    else:  # a schema of this test's own (see the postgres_url fixture)
        store = Store(request.getfixturevalue("postgres_url"))
    yield store
    store.close()


def test_schema_matches_models_after_migration(any_store: Store) -> None:
    with any_store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "tables.py changed without an Alembic migration"
    any_store.migrate()  # idempotent


def test_apply_create_unchanged_configured_and_generation(any_store: Store) -> None:
    assert any_store.apply(make_experiment()).action == "created"
    assert any_store.apply(make_experiment()).action == "unchanged"
    # writing a default explicitly is the same normalized spec: no new generation
    same = any_store.apply(make_experiment(backoffLimitPerIndex=3))
    assert (same.action, same.generation) == ("unchanged", 1)
    changed = any_store.apply(make_experiment(backoffLimitPerIndex=5))
    assert (changed.action, changed.generation) == ("configured", 2)
    exp = any_store.get_experiment("e")
    assert exp.metadata.generation == 2 and exp.spec.backoff_limit_per_index == 5
    assert [w.spec.args for w in any_store.list_work_units("e")] == [{"x": 0}, {"x": 1}, {"x": 2}]
    # a sweep edit (issue 15.3) is a new generation; what each unit runs is still immutable
    with pytest.raises(Invalid, match="spec.resources: field is immutable"):
        any_store.apply(make_experiment(backoffLimitPerIndex=5, resources={"cpus": 2}))
    grown = any_store.apply(make_experiment(n=4, backoffLimitPerIndex=5))
    assert (grown.action, grown.generation) == ("configured", 3)
    assert grown.detail == "work units 1 added (3)"


def test_optimistic_concurrency(any_store: Store) -> None:
    any_store.apply(make_experiment())
    with any_store.session() as s:
        row = s.query(ExperimentRow).one()
        uid, rv = row.uid, row.resource_version
    any_store.apply(make_experiment(parallelism=2))  # someone else writes: version moves on
    with pytest.raises(Conflict), any_store.session() as s:
        any_store.compare_and_set(s, uid, rv, labels={"stale": "write"})
    assert any_store.get_experiment("e").metadata.labels == {"team": "a"}


def test_unknown_cluster_is_refused(any_store: Store) -> None:
    with pytest.raises(Invalid, match="no cluster named 'gpu'"):
        any_store.apply(make_experiment(cluster="gpu"))
    assert any_store.list_experiments() == []


def test_load_desired_reads_only_active_work_units(any_store: Store) -> None:
    any_store.apply(make_experiment(n=50))
    with any_store.session() as s:
        s.execute(text("UPDATE work_units SET phase='Succeeded' WHERE idx <> 7"))
    (record,) = any_store.load_desired("local")
    assert [w.index for w in record.work_units] == [7]


def test_intent_then_submitted_then_status(any_store: Store) -> None:
    any_store.apply(make_experiment(n=2))
    (record,) = any_store.load_desired("local")
    entries = [(w.id, 1, w.index + 1, None) for w in record.work_units]
    sid = any_store.record_intent(record.uid, "local", "e-tag", entries, **READY)
    (record,) = any_store.load_desired("local")
    assert {w.active.submission_state for w in record.work_units if w.active} == {"Intent"}
    info = any_store.submission(sid)
    assert [(t[0], t[1], t[2]) for t in info.tasks] == [(1, 0, 1), (2, 1, 1)]
    any_store.mark_submitted(sid, "123", submission_transition("Intent", SubmissionEvent.ACCEPTED))
    (record,) = any_store.load_desired("local")
    assert {(w.active.job_id, w.active.phase) for w in record.work_units if w.active} == {
        ("123", "Queued")
    }
    phase, finished = refresh_status(any_store, record.uid, time.time())
    assert (phase, finished) == ("Running", False)
    conds = {c.type: c.status.value for c in any_store.get_experiment("e").status.conditions}
    assert conds["Submitted"] == "True" and conds["Succeeded"] == "Unknown"


def test_delete_marks_then_refresh_removes_when_finished(any_store: Store) -> None:
    any_store.apply(make_experiment(n=2))
    assert any_store.delete_experiment("e") is True
    assert any_store.delete_experiment("e") is False
    with pytest.raises(Invalid, match="being deleted"):
        any_store.apply(make_experiment(n=2))
    with any_store.session() as s:
        s.execute(text("UPDATE work_units SET phase='Stopped'"))
    uid = any_store.get_experiment("e").metadata.uid
    assert refresh_status(any_store, uid, time.time()) == ("Stopped", True)
    with pytest.raises(NotFound):
        any_store.get_experiment("e")
    assert [e.reason for e in any_store.list_events()][-1] == "Deleted"


def test_lease(any_store: Store) -> None:
    assert any_store.try_acquire_lease("a", ttl=0.3, address="/tmp/a.sock")
    assert not any_store.try_acquire_lease("b", ttl=0.3)
    assert any_store.lease() == ("a", "/tmp/a.sock")
    time.sleep(0.35)
    assert any_store.lease() is None
    assert any_store.try_acquire_lease("b", ttl=10)
    any_store.release_lease("a")  # not the holder: no effect
    assert any_store.lease() is not None
    any_store.release_lease("b")
    assert any_store.lease() is None


def test_selectors(any_store: Store) -> None:
    any_store.apply(make_experiment("one"))
    other = make_experiment("two")
    other.metadata.labels = {"team": "b"}
    any_store.apply(other)
    assert [e.metadata.name for e in any_store.list_experiments({"team": "b"})] == ["two"]
    units = any_store.list_work_units(selector={"experiment": "one"})
    assert {u.metadata["labels"]["experiment"] for u in units} == {"one"} and len(units) == 3


def test_migration_0002_keeps_rows_and_stops_one_work_unit(any_store: Store) -> None:
    from alembic import command
    from alembic.config import Config

    any_store.apply(make_experiment(n=3))
    cfg = Config()
    cfg.set_main_option("script_location", str(REPO / "lxr" / "store" / "migrations"))
    with any_store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    any_store.migrate()  # 0001 -> head on a database that has work units
    assert [w.spec.args for w in any_store.list_work_units("e")] == [{"x": 0}, {"x": 1}, {"x": 2}]
    [record] = any_store.load_desired("local")
    assert [w.stop_requested for w in record.work_units] == [False, False, False]
    assert any_store.stop_work_units("e", [1]) == [1]
    assert any_store.stop_work_units("e", [1]) == []  # already asked
    [record] = any_store.load_desired("local")
    assert [w.stop_requested for w in record.work_units] == [False, True, False]
    with pytest.raises(NotFound, match="no work unit 7"):
        any_store.stop_work_units("e", [7])
    assert any(e.reason == "StopRequested" for e in any_store.list_events("e"))


def test_staged_bytes_add_up_per_cluster(any_store: Store) -> None:
    any_store.add_staged_bytes("c1", 100)
    any_store.add_staged_bytes("c1", 23)
    any_store.add_staged_bytes("c2", 0)  # nothing uploaded: no row
    any_store.add_staged_bytes("c2", 5)
    assert any_store.staged_bytes() == {"c1": 123, "c2": 5}


def test_intent_gives_each_work_unit_its_new_attempt_id(any_store: Store) -> None:
    any_store.apply(make_experiment(n=3))
    (record,) = any_store.load_desired("local")
    entries = [(w.id, 1, w.index + 1, None) for w in record.work_units]
    attempts: dict[int, int] = {}
    sid = any_store.record_intent(record.uid, "local", "e-tag", entries, **READY, attempts=attempts)
    row = submission_transition("Intent", SubmissionEvent.ACCEPTED)
    when = any_store.mark_submitted(sid, "9", row)
    (record,) = any_store.load_desired("local")
    assert len(attempts) == 3
    assert attempts == {w.id: w.active.id for w in record.work_units if w.active}
    assert {(w.active.submit_time, w.active.last_seen) for w in record.work_units if w.active} == {
        (when, when)
    }


def test_retried_intent_leaves_out_attempts_that_ended(any_store: Store) -> None:
    any_store.apply(make_experiment(n=3))
    (record,) = any_store.load_desired("local")
    sid = any_store.record_intent(
        record.uid,
        "local",
        "e-tag",
        [(w.id, 1, w.index + 1, None) for w in record.work_units],
        **READY,
    )
    with any_store.session() as s:  # unit 1's attempt ended (stopped) before the retry
        s.execute(text("UPDATE attempts SET final = :t WHERE array_index = 2"), {"t": True})
    assert [t[1] for t in any_store.submission(sid).tasks] == [0, 2]


def test_head_revision_is_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from lxr.store.engine import HEAD_REVISION, MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_opening_a_migrated_store_imports_no_alembic(any_store: Store) -> None:
    import subprocess
    import sys

    from lxr.store.engine import HEAD_REVISION

    assert any_store.schema_revision() == HEAD_REVISION
    probe = (
        "import sys; from lxr.store import Store; s = Store(sys.argv[1]); "
        "print(s.schema_revision(), 'alembic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, any_store.url],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout.split()  # fmt: skip
    assert out == [HEAD_REVISION, "False"]


def test_an_empty_database_is_migrated_on_open(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'fresh.db'}", migrate=False)
    try:
        assert store.schema_revision() is None
        store.migrate()
        from lxr.store.engine import HEAD_REVISION

        assert store.schema_revision() == HEAD_REVISION
    finally:
        store.close()


def test_an_applied_local_cluster_is_named_once_among_the_known(any_store: Store) -> None:
    from lxr.api.resources import Cluster

    any_store.apply(
        Cluster.model_validate({"metadata": {"name": "local"}, "spec": {"scheduler": "local"}})
    )
    with pytest.raises(NotFound) as info:
        any_store.get_cluster("nope")
    assert "(known: local)" in str(info.value)


def _unit_rows(store: Store, name: str, columns: str) -> list[tuple[object, ...]]:
    """``columns`` of the work units of experiment ``name`` joined with their attempts (``w``,
    ``a``), in index order."""
    with store.session() as s:
        return [
            tuple(r)
            for r in s.execute(
                text(
                    f"SELECT {columns} FROM work_units w JOIN attempts a ON a.work_unit_id = w.id "
                    "JOIN experiments e ON e.uid = w.experiment_uid "
                    "WHERE e.name = :name ORDER BY w.idx"
                ),
                {"name": name},
            )
        ]


def _written(store: Store, name: str) -> list[tuple[object, ...]]:
    """Every column of the work units of ``name`` and of their attempts that a status write
    sets, in index order (no ids)."""
    return _unit_rows(
        store,
        name,
        "w.idx, w.phase, w.reason, w.message, w.exit_code, w.failures, "
        "w.disruptions, w.next_attempt_after, w.retry_reason, w.updated_at, "
        "w.active_attempt_id IS NULL, w.resource_scale, a.phase, a.job_id, "
        "a.state, a.reason, a.message, a.exit_code, a.restarts, a.start_time, "
        "a.end_time, a.last_seen, a.cancel_requested_at, a.final, "
        "a.rank_exit_codes, a.first_failed_rank",
    )


def _submitted_pair(store: Store, n: int) -> dict[str, Any]:
    """Experiments ``many`` and ``few`` of ``n`` work units each, every unit submitted (job
    77): their records by name."""
    for name in ("many", "few"):
        store.apply(make_experiment(name, n=n))
    records = {r.name: r for r in store.load_desired("local")}
    for name, record in records.items():
        entries = [(w.id, 1, w.index, None) for w in record.work_units]
        sid = store.record_intent(record.uid, "local", f"{name}-tag", entries, **READY)
        store.mark_submitted(sid, "77", submission_transition("Intent", SubmissionEvent.ACCEPTED))
    return {r.name: r for r in store.load_desired("local")}


def _write_in_steps(
    store: Store, record: Any, units: Sequence[Any], attempts: Sequence[Any], step: int
) -> None:
    """The patches of ``record``'s units written ``step`` units at a time."""
    from lxr.reconciler.actions import UpdateStatus

    for start in range(0, len(units), step):
        store.apply_update(
            UpdateStatus(
                record.uid,
                tuple(units[start : start + step]),
                tuple(attempts[start : start + step]),
            ),
            "local",
        )


def _written_text(store: Store, name: str) -> list[tuple[object, ...]]:
    """What :func:`_written` reads, JSON as its stored text and floats as text (JSON's
    ``true`` and ``1`` are equal once parsed, as are a float and its neighbour in print)."""
    return _unit_rows(
        store,
        name,
        "w.idx, w.phase, w.message, w.exit_code, w.failures, "
        "CAST(w.next_attempt_after AS TEXT), CAST(w.resource_scale AS TEXT), "
        "a.job_id, a.state, a.message, a.exit_code, a.restarts, "
        "CAST(a.start_time AS TEXT), a.end_time, a.final, "
        "CAST(a.rank_exit_codes AS TEXT), a.first_failed_rank",
    )


#: text a status write must store as given (quoting, escapes and separators of SQL, COPY and
#: array literals; NULL spelled out)
_AWKWARD = (
    "a\\b",
    "{x,y}",
    '"',
    "NULL",
    "",
    " padded ",
    "tab\there",
    "line\nbreak\r",
    '\\"{,}\\',
    "ünïcode ✓",
    "'single'",
    'a","b',
)


def test_a_status_write_of_many_rows_stores_awkward_values_as_given(any_store: Store) -> None:
    """Hundreds of units written in one statement per table store what a few at a time
    store: text with quotes, backslashes, braces, commas and NULL; booleans, negative and
    missing numbers, floats to their last bit (and infinite), JSON ``true`` apart from ``1``,
    also when all but one unit write the same JSON."""
    from lxr.reconciler.actions import AttemptPatch, WorkUnitPatch

    n = 300
    now = time.time()
    records = _submitted_pair(any_store, n)

    def write(same_scale: bool) -> None:
        for name, record in records.items():
            attempts, units = [], []
            for w in record.work_units:
                i = w.index
                assert w.active is not None
                odd_scale = {"flag": 1} if i == 7 else {"flag": True}
                attempts.append(
                    AttemptPatch(
                        id=w.active.id,
                        phase="Running",
                        job_id=_AWKWARD[i % len(_AWKWARD)] if i % 2 else "77",
                        state=_AWKWARD[(i + 3) % len(_AWKWARD)],
                        message=None if i % 5 == 0 else _AWKWARD[i % len(_AWKWARD)],
                        exit_code=None if i % 4 == 0 else -i,
                        restarts=i,
                        start_time=float("inf") if i == 9 else now + i / 7,
                        end_time=1e-300 * i,
                        final=i % 3 == 0,
                        rank_exit_codes=(0, None, -i) if i % 6 == 0 else None,
                        first_failed_rank=i % 2 or None,
                    )
                )
                units.append(
                    WorkUnitPatch(
                        id=w.id,
                        index=i,
                        phase="Running",
                        message=_AWKWARD[(i + 1) % len(_AWKWARD)],
                        exit_code=None if i % 3 else i,
                        failures=i % 2,
                        next_attempt_after=now + i / 3 if i % 2 else None,
                        resource_scale=odd_scale
                        if same_scale
                        else ({"flag": True} if i % 3 == 0 else {"flag": 1} if i % 3 else None),
                    )
                )
            # a few at a time: below the size written as one statement
            _write_in_steps(any_store, record, units, attempts, n if name == "many" else 50)
        many, few = _written_text(any_store, "many"), _written_text(any_store, "few")
        assert len(many) == n
        assert many == few
        assert many[9][12] in ("Infinity", "inf", "Inf")
        scales = [r[6] for r in many]
        if same_scale:
            assert scales[7] is not None and "1" in scales[7] and "true" in scales[6]
            assert all(s is not None and "true" in s for k, s in enumerate(scales) if k != 7)

    write(same_scale=False)
    write(same_scale=True)


def test_a_status_write_of_many_rows_writes_what_row_by_row_writes(any_store: Store) -> None:
    """A status write of hundreds of units (one statement per table, the varying columns
    from a temporary table or arrays, the columns every row sets alike bound once) stores what the same patches store written
    a few at a time (one statement per row): varying and uniform columns, JSON values and
    JSON null, job ids kept or changed, awkward text."""
    from lxr.reconciler.actions import AttemptPatch, UpdateStatus, WorkUnitPatch

    n = 300
    now = time.time()
    records = _submitted_pair(any_store, n)

    def patches(record: object) -> tuple[list[AttemptPatch], list[WorkUnitPatch]]:
        attempts, units = [], []
        for w in record.work_units:  # type: ignore[attr-defined]
            i = w.index
            odd = i % 2 == 1
            assert w.active is not None
            attempts.append(
                AttemptPatch(
                    id=w.active.id,
                    phase="Failed" if i % 3 == 0 else "Succeeded",
                    job_id="78" if i == 5 else "77",  # one job id changes, the rest stay
                    state="COMPLETED",
                    reason="Completed",
                    message=('it\'s "quoted"\n\ttabbed ünïcode' if odd else None),
                    exit_code=i % 3,
                    restarts=1,
                    start_time=now + i,
                    end_time=now + 100.5,
                    last_seen=now,
                    final=True,
                    rank_exit_codes=(0, None, i) if i % 4 == 0 else None,
                    first_failed_rank=2 if i % 4 == 0 else None,
                )
            )
            units.append(
                WorkUnitPatch(
                    id=w.id,
                    index=i,
                    phase="Failed" if i % 3 == 0 else "Succeeded",
                    reason="Error" if i % 3 == 0 else None,
                    message="exit 1" if i % 3 == 0 else None,
                    exit_code=1 if i % 3 == 0 else None,
                    failures=i % 2,
                    next_attempt_after=now + 5 if odd else None,
                    retry_reason="Error" if odd else None,
                    clear_active=i % 5 != 0,
                    resource_scale={"mem": 2, "cap": {"mem": "8G"}} if i % 7 == 0 else None,
                )
            )
        return attempts, units

    attempts, units = patches(records["many"])
    any_store.apply_update(
        UpdateStatus(records["many"].uid, tuple(units), tuple(attempts)), "local"
    )
    attempts, units = patches(records["few"])
    _write_in_steps(any_store, records["few"], units, attempts, 50)  # below one statement's

    def compare() -> list[tuple[object, ...]]:
        many, few = _written(any_store, "many"), _written(any_store, "few")
        assert len(many) == n
        # updated_at is the time of each write: the same within one, close across them
        assert {r[9] for r in many} == {many[0][9]}
        assert [r[:9] + r[10:] for r in many] == [r[:9] + r[10:] for r in few]
        return many

    many = compare()
    assert many[5][13] == "78" and many[6][13] == "77"
    assert sum(r[24] is None for r in many) == n - n // 4
    # a write where only the ids differ (every unit alike: one statement, the ids a parameter)
    for name in ("many", "few"):
        record = records[name]
        uniform = [
            WorkUnitPatch(
                id=w.id,
                index=w.index,
                phase="Stopped",
                reason="Stopped",
                message="stopped: 'all' \\ x",
            )
            for w in record.work_units
        ]
        tasks = [
            AttemptPatch(id=w.active.id, phase="Stopped", job_id="77", rank_exit_codes=(1, None))
            for w in record.work_units
            if w.active is not None
        ]
        _write_in_steps(any_store, record, uniform, tasks, n if name == "many" else 50)
    many = compare()
    assert {(r[1], r[3], r[12], r[13]) for r in many} == {
        ("Stopped", "stopped: 'all' \\ x", "Stopped", "77")
    }
