"""The controller's cache of one cluster's desired state, informer-style.

Records stay in memory between cycles. A cycle reads the experiments' change counters (one
small query, :meth:`~lxr.store.desired.DesiredState.experiment_versions`) and reloads only an
experiment whose counter moved (someone applied, deleted or stopped something). What the
cycle itself wrote is applied to the cached records in memory: an ``UpdateStatus``, the new
attempts of a submission (their ids as ``record_intent`` returned them, the job id and time
``mark_submitted`` wrote), a cancel's time, a status write. The status inputs (work units
per phase, those never submitted, the smallest failed indexes) are moved by the same writes
as the store counts them (:func:`~lxr.reconciler.status.moved_inputs`), not counted again
over every unit. Anything else it wrote (a retried intent, a refused submission) makes it
read the experiment back.

Planning is narrowed the same way: of an experiment, only the work units whose observation
changed since the last plan (the snapshot diffed against the last one), that have nothing
in flight, no observation, no job id yet or a stop asked for are planned; an experiment just
(re)loaded is planned whole, one where nothing changed not at all. While every unit of an
experiment has an observed job in flight, the diff is one comparison of two lists in C, the
changed positions are found in C too, and only their units are planned and patched. An
experiment with a unit that has nothing in flight and is not backing off (it waits for a
dependency, or a submission did not happen) is read again every cycle, as before the cache.
The planner is pure and idempotent, so leaving out a unit whose record and observation are
what they were when it was last planned changes nothing.

Still level-triggered: a full resync every :data:`RESYNC_SECONDS` and at every new term
(:meth:`Informer.reset`), and after any failed cycle. The cache is only a cache: the store
stays the truth, so a ``kill -9`` anywhere loses nothing but the cache.

Last seen. A task's "last seen" time is kept here, not rewritten in the store each cycle: it
matters only once the scheduler stops reporting a task (``Lost`` after
:data:`~lxr.reconciler.classify.LOST_AFTER_SECONDS`), so the cache notes the time of the last
snapshot that had it, and after a restart counts from the start of the term at the earliest.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, count
from operator import attrgetter, ne

from lxr.api.phases import WORK_UNIT_TERMINAL, TaskPhase, WorkUnitPhase
from lxr.api.records import AttemptRecord, ExperimentRecord, WorkUnitRecord
from lxr.reconciler.actions import (
    Action,
    AttemptPatch,
    Cancel,
    Finalize,
    SetStatus,
    Submit,
    SubmittedArray,
    UpdateStatus,
    WorkUnitPatch,
)
from lxr.reconciler.status import moved_inputs, written_status
from lxr.schedulers.base import ObserveQuery, Snapshot, TaskObservation

__all__ = ["RESYNC_SECONDS", "Informer", "Refresh", "observe_query"]

#: every this many seconds the whole desired state is read again, whatever the counters say
RESYNC_SECONDS = 120.0

_TERMINAL = frozenset(p.value for p in WORK_UNIT_TERMINAL)
_FAILED = WorkUnitPhase.FAILED.value
_BACKOFF = WorkUnitPhase.BACKOFF.value
_MISSING = object()
#: loads of this many work units move the objects alive then out of the collector's scans
_FREEZE_AFTER = 10_000


def observe_query(desired: Sequence[ExperimentRecord]) -> ObserveQuery:
    """What the snapshot must cover: jobs in flight (with their indexes), unconfirmed tags, and
    the rank count of jobs whose tasks have several ranks."""
    jobs: dict[str, set[int]] = {}
    intents: set[str] = set()
    gangs: dict[str, int] = {}
    for exp in desired:
        ranks = _gang_ranks(exp)
        for wu in exp.work_units:
            att = wu.active
            if att is None:
                continue
            if att.job_id is None:
                intents.add(att.submission_tag)
            else:
                jobs.setdefault(att.job_id, set()).add(att.array_index)
                if ranks is not None:
                    gangs[att.job_id] = ranks
    return ObserveQuery({k: frozenset(v) for k, v in jobs.items()}, frozenset(intents), gangs)


def _gang_ranks(exp: ExperimentRecord) -> int | None:
    """The ranks of each task of ``exp`` when they are started as a gang, else None (every
    component of a heterogeneous job is started as ranks, even a single one)."""
    ranks = exp.spec.ranks
    return ranks if ranks > 1 or exp.spec.components is not None else None


@dataclass
class Refresh:
    """What a refresh must read: experiments to load whole, and those whose status inputs
    alone are stale (work units current in memory)."""

    versions: dict[str, int]
    full: set[str] = field(default_factory=set)
    headers: set[str] = field(default_factory=set)


@dataclass
class _Tally:
    """What the cycle's writes to an experiment's work units did to its status inputs."""

    moves: dict[tuple[str, str], int] = field(default_factory=dict)  # (old, new) phase -> n
    first: int = 0  # units given their first attempt
    failed: list[int] = field(default_factory=list)  # indexes of units that failed
    removed: list[tuple[str, bool]] = field(default_factory=list)  # deleted: phase, never sent

    def __bool__(self) -> bool:
        return bool(self.moves or self.first or self.failed or self.removed)

    def clear(self) -> None:
        """Counted nothing."""
        self.moves.clear()
        self.failed.clear()
        self.removed.clear()
        self.first = 0

    def move(self, wu: WorkUnitRecord, phase: str) -> None:
        """``wu`` moves to ``phase``."""
        key = (wu.phase, phase)
        self.moves[key] = self.moves.get(key, 0) + 1
        if phase == _FAILED:
            self.failed.append(wu.index)


@dataclass
class _Entry:
    record: ExperimentRecord
    version: int  # the change counter the cached record is right at
    #: the observation each work unit (by id) had when it was last planned; None while
    #: ``prev`` holds them (every unit observed, in order: no 100k-entry dict kept)
    seen: dict[int, TaskObservation | None] | None = field(default_factory=dict)
    whole: bool = True  # plan every work unit next time (just loaded)
    status_read: bool = False  # its status inputs were read again: plan its status
    #: when every unit has a job in flight that was observed at its last plan: the tasks'
    #: keys (job ids and array indexes, two lists: not 100k tuples kept) and those
    #: observations, so an unchanged experiment costs one list comparison
    keys: list[str] | None = None
    indexes: list[int] = field(default_factory=list)
    prev: list[TaskObservation | None] = field(default_factory=list)
    #: positions (in ``record.work_units``) of the units this cycle's plan covers, while the
    #: plan's status update is not taken in yet (None: count every unit)
    positions: list[int] | None = None
    #: the observation this cycle's narrowing looked up for each unit it kept, in order
    looked: list[TaskObservation | None] = field(default_factory=list)
    #: positions whose keys and observations ``settle`` brings up to date (``keys`` kept)
    dirty: list[int] = field(default_factory=list)


class Informer:
    """The cache of one cluster's active experiments (see the module's docstring)."""

    def __init__(self, resync_seconds: float = RESYNC_SECONDS) -> None:
        self.resync_seconds = resync_seconds
        self._entries: dict[str, _Entry] = {}
        self._stale: set[str] = set()  # reload whole at the next refresh
        self._headers: set[str] = set()  # reload the status inputs at the next refresh
        self._synced = 0.0  # monotonic time of the last full resync
        self._term_started = time.time()
        self._snapshot_time: float | None = None  # of the last snapshot planned against
        self._gone_since: dict[int, float] = {}  # attempt id -> when last seen, once unreported
        self._resyncing = False
        #: per experiment, memos of its cached work units (the tuple they were computed for)
        self._shapes: dict[str, tuple[tuple[WorkUnitRecord, ...], ObserveQuery]] = {}
        self._submittable: dict[str, tuple[tuple[WorkUnitRecord, ...], bool]] = {}
        #: what the last refresh read (for the cycle's log line and the benchmarks)
        self.loaded = 0
        self._cycle_size = 0  # work units in the cache as this cycle began

    @property
    def size(self) -> int:
        """Work units in the cache."""
        return sum(len(e.record.work_units) for e in self._entries.values())

    def reset(self) -> None:
        """Forget everything: the next refresh reads the whole desired state (a new term, a
        failed cycle)."""
        self._entries.clear()
        self._stale.clear()
        self._headers.clear()
        self._gone_since.clear()
        self._snapshot_time = None
        self._synced = 0.0
        self._term_started = time.time()

    # ------------------------------------------------------------------ reading

    def shape(self, exp: ExperimentRecord) -> ObserveQuery:
        """What observing ``exp`` needs (its jobs in flight with their indexes, its tags not
        confirmed yet), computed once per version of the cached work units."""
        memo = self._shapes.get(exp.uid)
        if memo is not None and memo[0] is exp.work_units:
            return memo[1]
        query = observe_query([exp])
        self._shapes[exp.uid] = (exp.work_units, query)
        return query

    def submittable(self, exp: ExperimentRecord) -> bool:
        """Whether ``exp`` has a work unit with nothing in flight and no stop asked for (one
        a plan may submit), found once per version of the cached record."""
        memo = self._submittable.get(exp.uid)
        if memo is not None and memo[0] is exp.work_units:
            return memo[1]
        units = exp.work_units
        # every unit in flight (the truth of each, in C) is the common case at scale
        found = not all(map(_ACTIVE, units)) and any(
            wu.active is None and not wu.stop_requested for wu in units
        )
        self._submittable[exp.uid] = (exp.work_units, found)
        return found

    def query(self, exps: Sequence[ExperimentRecord]) -> ObserveQuery:
        """What one snapshot of these experiments must cover (see :func:`observe_query`)."""
        shapes = [self.shape(e) for e in exps]
        if len(shapes) == 1:
            return shapes[0]
        jobs: dict[str, frozenset[int]] = {}
        gangs: dict[str, int] = {}
        for q in shapes:
            for job, indexes in q.jobs.items():
                jobs[job] = jobs[job] | indexes if job in jobs else indexes
            gangs.update(q.gangs)
        return ObserveQuery(jobs, frozenset().union(*(q.intents for q in shapes)), gangs)

    def plan_refresh(self, versions: Mapping[str, int]) -> Refresh:
        """Given the current change counters, what to read."""
        now = time.monotonic()
        if now - self._synced >= self.resync_seconds:
            self._entries.clear()
            self._synced = now
            self._resyncing = True
        todo = Refresh(dict(versions))
        for uid, version in versions.items():
            entry = self._entries.get(uid)
            if entry is None or entry.version != version or uid in self._stale:
                todo.full.add(uid)
            elif uid in self._headers:
                todo.headers.add(uid)
        # what is read again (or gone) is let go now, before its new version is built
        for memo in (self._entries, self._shapes, self._submittable):
            for uid in [u for u in memo if u not in todo.versions or u in todo.full]:
                del memo[uid]
        if self._resyncing and _frozen:
            # what was frozen since the last resync goes back to the collector, which frees
            # the few reference cycles that became garbage meanwhile, the cache let go
            _thaw()
        return todo

    def refreshed(
        self,
        todo: Refresh,
        loaded: Iterable[ExperimentRecord],
        headers: Iterable[ExperimentRecord],
    ) -> list[ExperimentRecord]:
        """Take in what was read for ``todo``; the cluster's records, oldest first."""
        for uid in list(self._entries):
            if uid not in todo.versions or uid in todo.full:
                del self._entries[uid]
        self.loaded = 0
        for rec in loaded:
            self._entries[rec.uid] = _Entry(rec, todo.versions[rec.uid])
            self.loaded += len(rec.work_units)
        if self.loaded >= _FREEZE_AFTER:
            # the cache's records are long-lived and hold no cycles: keep them out of the
            # cyclic collector's full passes (each would walk all 100k of them; freeing
            # them later is by reference counting, which freezing does not affect)
            _freeze()
        for head in headers:
            entry = self._entries.get(head.uid)
            if entry is not None:
                entry.record = dataclasses.replace(head, work_units=entry.record.work_units)
                entry.status_read = True
        self._stale.clear()
        self._headers.clear()
        self._cycle_size = self.size
        if self._resyncing:  # forget attempts that are no longer in flight
            self._resyncing = False
            live = {
                wu.active.id
                for e in self._entries.values()
                for wu in e.record.work_units
                if wu.active is not None
            }
            self._gone_since = {k: v for k, v in self._gone_since.items() if k in live}
        return [e.record for e in self._entries.values()]

    # ------------------------------------------------------------------ planning

    def to_plan(self, exp: ExperimentRecord, snap: Snapshot) -> ExperimentRecord | None:
        """``exp`` narrowed to the work units worth planning against ``snap``; None when
        nothing changed for it since its last plan."""
        entry = self._entries.get(exp.uid)
        if entry is None:
            return exp
        entry.positions, entry.looked = None, []
        whole = entry.whole or exp.deleting or bool(exp.failed_reason)
        units, tasks = exp.work_units, snap.tasks
        where: Iterable[int] = range(len(units))
        if entry.keys is not None and (whole or units is not entry.record.work_units):
            _drop_check(entry)  # planned whole: the check is built anew after
        keys = entry.keys
        fast = keys is not None
        if keys is not None:
            now_seen = list(map(tasks.get, zip(keys, entry.indexes, strict=True)))
            if now_seen == entry.prev:
                if not entry.status_read:
                    return None  # every task as it was when last planned
                where = ()
            else:  # only the tasks that differ, found in C (not a loop over 100k units)
                where = list(compress(count(), map(ne, now_seen, entry.prev)))
        prev, tags, looked = entry.prev, snap.tags, entry.looked
        seen = {} if fast else _seen(entry)
        picked: list[WorkUnitRecord] = []
        positions: list[int] = []
        for pos in where:
            wu = units[pos]
            att = wu.active
            if att is None or wu.stop_requested:
                picked.append(wu)
                positions.append(pos)
                looked.append(None if att is None else _obs(att, tasks, tags))
                continue
            job_id = att.job_id or tags.get(att.submission_tag)
            obs = None if job_id is None else tasks.get((job_id, att.array_index))
            before = prev[pos] if fast else seen.get(wu.id, _MISSING)
            if obs is None:
                picked.append(self._with_last_seen(wu, att, before))
            elif whole or att.job_id is None or before != obs or _on_clock(obs):
                picked.append(wu)
            else:
                continue
            positions.append(pos)
            looked.append(obs)
        if not picked and not whole and not entry.status_read:
            return None
        if units is entry.record.work_units:
            entry.positions = positions
        return dataclasses.replace(exp, work_units=tuple(picked))

    def _with_last_seen(
        self, wu: WorkUnitRecord, att: AttemptRecord, before: object
    ) -> WorkUnitRecord:
        """The unit with its attempt's last-seen time as this controller knows it: the last
        snapshot that had the task, else the stored time but never before this term began."""
        since = self._gone_since.get(att.id)
        if since is None:
            if isinstance(before, TaskObservation) and self._snapshot_time is not None:
                since = self._snapshot_time
            else:
                since = max(att.last_seen or 0.0, self._term_started)
            self._gone_since[att.id] = since
        if att.last_seen is not None and att.last_seen >= since:
            return wu
        return dataclasses.replace(wu, active=dataclasses.replace(att, last_seen=since))

    def planned(self, exp: ExperimentRecord, snap: Snapshot | None) -> None:
        """``exp`` (as narrowed) was planned against ``snap``: remember what it saw."""
        entry = self._entries.get(exp.uid)
        if entry is None:
            return
        entry.whole = entry.status_read = False
        looked, entry.looked = entry.looked, []
        if snap is None:  # planned before observing: nothing was seen
            _drop_check(entry)
            return
        gone = self._gone_since
        positions = entry.positions
        if entry.keys is not None and positions is not None:
            # what it saw goes straight into the unchanged check, brought up to date there
            prev = entry.prev
            entry.dirty.extend(positions)
            for pos, wu, obs in zip(positions, exp.work_units, looked, strict=True):
                att = wu.active
                if att is not None:
                    prev[pos] = obs
                    if obs is not None and gone:
                        gone.pop(att.id, None)
            return
        _drop_check(entry)
        seen = _seen(entry)
        for wu, obs in zip(exp.work_units, looked, strict=True):
            att = wu.active
            if att is not None:
                seen[wu.id] = obs
                if obs is not None and gone:
                    gone.pop(att.id, None)

    def settle(self) -> None:
        """After the cycle's actions: note, for each experiment planned this cycle whose
        units all have an observed job in flight, the keys and observations that make the
        next cycle's unchanged check one list comparison (brought up to date where this
        cycle's plan changed something, built anew only when units came or went)."""
        for uid, entry in self._entries.items():
            entry.positions = None
            dirty, entry.dirty = entry.dirty, []
            if entry.keys is not None:  # every unit in flight, as last cycle
                if not dirty or _refreshed_keys(entry, dirty):
                    continue
                _drop_check(entry)
            units = entry.record.work_units
            # column by column with C's map and attrgetter: ~3x a loop over 100k units (and
            # all() for "no None": a record's == is a Python call, its truth is not)
            actives = list(map(_ACTIVE, units))
            if not all(actives) and any(wu.active is None and wu.phase != _BACKOFF for wu in units):
                # a unit waiting for something the record does not hold (a dependency, a
                # submission that did not happen): read it again, as every cycle did
                self._stale.add(uid)
                continue
            if entry.whole or not all(actives) or any(map(_STOP_REQUESTED, units)):
                continue
            keys = list(map(_JOB_ID, actives))
            prev = list(map(_seen(entry).get, map(_ID, units)))
            if None in keys or not all(prev):
                continue
            ranks = list(map(_FIRST_FAILED_RANK, prev))
            if ranks.count(None) != len(ranks) and any(
                o is not None and _on_clock(o) for o in prev
            ):
                continue
            entry.keys, entry.indexes, entry.prev = keys, list(map(_ARRAY_INDEX, actives)), prev
            entry.seen = None  # held by prev now
        if self._cycle_size >= _FREEZE_AFTER or self.size >= _FREEZE_AFTER:
            # what the cycle made and the cache keeps (100k new records where every unit
            # changed, the snapshot's observations) leaves the collector's scans too: the
            # first collection after a big cycle walked all of it (~0.3 s at 100k units), and
            # the next ones again as it aged; garbage cycles made meanwhile wait for the resync
            _freeze()

    def observed(self, snap: Snapshot) -> None:
        """The cycle planned against ``snap`` (its time is the last-seen time of every task
        in it, for tasks that leave it later)."""
        self._snapshot_time = snap.time

    # ------------------------------------------------------------------ writing through

    def acted(self, action: Action, now: float, result: object = None) -> None:
        """``action`` was carried out: bring the cache in line (``result``: what the store
        returned, the new change counter for a ``SetStatus``)."""
        uid = action.experiment_uid
        entry = self._entries.get(uid)
        if entry is None:
            return
        positions, entry.positions = entry.positions, None  # for this plan's status update
        if isinstance(action, UpdateStatus):
            if action.work_units or action.attempts or action.adoptions:
                old = entry.record.work_units
                tally = _Tally()
                units, removed = _patched(old, positions, action, now, tally)
                record = dataclasses.replace(entry.record, work_units=units)
                self._count(uid, entry, record, tally)
                if removed and entry.keys is not None:
                    _drop_keys(entry, removed, units)
                if positions is not None:
                    self._carry_shape(uid, old, units, positions, removed)
                    self._carry_submittable(uid, old, units, positions, removed)
            if action.fail_experiment:
                self._stale.add(uid)
            return
        if not isinstance(action, SetStatus):
            _drop_check(entry)  # units change: the unchanged check is built anew
        if isinstance(action, SetStatus):
            st = entry.record.status
            if isinstance(result, int) and result == entry.version + 1 and st is not None:
                entry.version = result  # our own write: the cached units stay right
                entry.record = dataclasses.replace(entry.record, status=written_status(st, action))
            else:
                self._stale.add(uid)
        elif isinstance(action, Finalize):
            self._entries.pop(uid, None)
        elif isinstance(action, Submit) and isinstance(result, list) and not entry.record.upstream:
            # the new attempts as the store wrote them (their ids from the intent): the units
            # are patched, not read back, and the status inputs moved by them
            old = entry.record.work_units
            tally = _Tally()
            submitted = _submitted(old, action, result, tally)
            if submitted is None:
                self._stale.add(uid)
            else:
                self._count(
                    uid, entry, dataclasses.replace(entry.record, work_units=submitted), tally
                )
                memo = self._shapes.get(uid)
                if memo is not None and memo[0] is old:  # the new jobs join the query
                    query = _with_jobs(memo[1], result, _gang_ranks(entry.record))
                    self._shapes[uid] = (submitted, query)
        elif isinstance(action, Cancel) and isinstance(result, float):
            cancelled = set(action.attempt_ids)
            entry.record = dataclasses.replace(
                entry.record,
                work_units=tuple(
                    _with_active(wu, _cancel_requested(wu.active, result))
                    if wu.active is not None and wu.active.id in cancelled
                    else wu
                    for wu in entry.record.work_units
                ),
            )
        else:  # anything else (a retried intent, a refused submission): read back
            self._stale.add(uid)

    def _count(self, uid: str, entry: _Entry, record: ExperimentRecord, tally: _Tally) -> None:
        """``record`` (``entry``'s, with its units patched as ``tally`` counted) goes into
        the cache with its status inputs moved the same way: what a fresh read of the store
        would count, not read again (~60 ms of GROUP BY and counts at 100k units on SQLite)."""
        st = record.status
        if st is None:  # read without them: they are read at the next refresh
            self._headers.add(uid)
        elif tally:
            st = moved_inputs(st, tally.moves, tally.first, tally.failed, tally.removed)
            record = dataclasses.replace(record, status=st, failed_count=st.counts.get(_FAILED, 0))
        entry.record = record

    def _carry_submittable(
        self,
        uid: str,
        old: tuple[WorkUnitRecord, ...],
        new: tuple[WorkUnitRecord, ...],
        positions: Sequence[int],
        removed: Sequence[int],
    ) -> None:
        """Whether ``old`` units had one a plan may submit holds for ``new`` ones (those at
        ``positions`` patched, those at ``removed`` dropped) when it was no and no patched
        unit is left with nothing in flight: kept, not found again over every unit."""
        memo = self._submittable.get(uid)
        if memo is None or memo[0] is not old or memo[1] or len(positions) * 4 > len(old):
            return
        gone = set(removed)
        for pos in positions:
            if pos not in gone:
                wu = new[pos - bisect_left(removed, pos)]
                if wu.active is None and not wu.stop_requested:
                    return
        self._submittable[uid] = (new, False)

    def _carry_shape(
        self,
        uid: str,
        old: tuple[WorkUnitRecord, ...],
        new: tuple[WorkUnitRecord, ...],
        positions: Sequence[int],
        removed: Sequence[int],
    ) -> None:
        """The observe query of ``old`` units holds for ``new`` ones (the units at
        ``positions`` patched, those at ``removed`` dropped) with the tasks of the units
        that ended taken out: kept, not computed again over every unit."""
        memo = self._shapes.get(uid)
        if memo is None or memo[0] is not old:
            return
        query = memo[1]
        if not removed and len(positions) * 8 > len(old):
            # many patched, none ended: the same tasks in flight? (column by column, in C)
            was, now = list(map(_ACTIVE, old)), list(map(_ACTIVE, new))
            if (
                all(was)
                and all(now)
                and list(map(_JOB_ID, was)) == list(map(_JOB_ID, now))
                and None not in map(_JOB_ID, now)
                and list(map(_ARRAY_INDEX, was)) == list(map(_ARRAY_INDEX, now))
            ):
                self._shapes[uid] = (new, query)
            return
        if len(positions) * 8 > len(old):
            return
        gone = set(removed)
        ended: dict[str, set[int]] = {}
        for pos in positions:
            before = old[pos].active
            after = None if pos in gone else new[pos - bisect_left(removed, pos)].active
            if before is None or before.job_id is None:
                if before is not after and (after is None or after.job_id is not None):
                    return  # an intent confirmed or ended: computed again
                continue
            if after is None:
                ended.setdefault(before.job_id, set()).add(before.array_index)
            elif (after.job_id, after.array_index) != (before.job_id, before.array_index):
                return
        if ended:
            jobs = dict(query.jobs)
            for job_id, indexes in ended.items():
                left = jobs[job_id] - indexes
                if left:
                    jobs[job_id] = left
                else:
                    del jobs[job_id]
            gangs = {j: n for j, n in query.gangs.items() if j in jobs}
            query = ObserveQuery(jobs, query.intents, gangs)
        self._shapes[uid] = (new, query)

    def failed(self) -> None:
        """A cycle failed midway: what it wrote is unknown here, so read everything again."""
        self.reset()


_ACTIVE = attrgetter("active")
_ARRAY_INDEX = attrgetter("array_index")
_FIRST_FAILED_RANK = attrgetter("first_failed_rank")
_ID = attrgetter("id")
_JOB_ID = attrgetter("job_id")
_STOP_REQUESTED = attrgetter("stop_requested")


#: whether this process froze objects (see :func:`_freeze`) since the collector last saw them
_frozen = False


def _freeze() -> None:
    """Move every object alive now out of the cyclic collector's scans (``gc.freeze``: O(1))."""
    global _frozen
    gc.freeze()
    _frozen = True


def _thaw() -> None:
    """Give the frozen objects back to the collector and collect: the reference cycles that
    became garbage while frozen are freed (once per resync, with the cache let go)."""
    global _frozen
    gc.unfreeze()
    gc.collect()
    _frozen = False


def _on_clock(obs: TaskObservation) -> bool:
    """A running task one of whose ranks failed: its next row (``GangBroken``, after
    GANG_GRACE_SECONDS) waits on the clock, not on a new observation, so it is planned every
    cycle until it ends."""
    return obs.phase is TaskPhase.RUNNING and obs.first_failed_rank is not None


def _submitted(
    units: tuple[WorkUnitRecord, ...],
    action: Submit,
    arrays: Sequence[SubmittedArray],
    tally: _Tally,
) -> tuple[WorkUnitRecord, ...] | None:
    """``units`` as the store has them after ``action`` was recorded and submitted as
    ``arrays``, as :meth:`~lxr.store.writes.ControllerWrites.record_intent` and
    ``mark_submitted`` wrote them (what that did to the status inputs counted in ``tally``);
    None when the arrays do not cover every entry (the cache reads them back)."""
    new: dict[int, AttemptRecord] = {}
    phase = action.phase.value
    for arr in arrays:
        sub_id, tag, job_id = arr.id, arr.tag, arr.job_id
        state, att_phase, when = arr.state, arr.attempt_phase, arr.submitted_at
        for wu_id, att_id, number, array_index in arr.tasks:
            new[wu_id] = AttemptRecord(
                att_id, number, sub_id, tag, state, None, job_id, array_index, att_phase,
                None, 0, when, None, when, None,
            )  # fmt: skip
    if len(new) != len(action.entries) or any(e.work_unit_id not in new for e in action.entries):
        return None
    out: list[WorkUnitRecord] = []
    for wu in units:
        att = new.get(wu.id)
        if att is not None:
            if wu.phase != phase:
                tally.move(wu, phase)
            tally.first += wu.attempt_count == 0
            wu = WorkUnitRecord(
                wu.id, wu.index, wu.name, phase, wu.failures, wu.disruptions,
                wu.next_attempt_after, att.number, wu.retry_reason, att, wu.stop_requested,
                wu.removed, wu.resource_scale, wu.message,
            )  # fmt: skip
        out.append(wu)
    return tuple(out)


def _with_jobs(
    query: ObserveQuery, arrays: Sequence[SubmittedArray], ranks: int | None
) -> ObserveQuery:
    """``query`` with the jobs of newly submitted ``arrays`` in it (``ranks``: of a gang)."""
    jobs = dict(query.jobs)
    gangs = dict(query.gangs)
    for arr in arrays:
        jobs[arr.job_id] = jobs.get(arr.job_id, frozenset()) | {t[3] for t in arr.tasks}
        if ranks is not None:
            gangs[arr.job_id] = ranks
    return ObserveQuery(jobs, query.intents, gangs)


def _with_active(wu: WorkUnitRecord, att: AttemptRecord | None) -> WorkUnitRecord:
    """``wu`` with ``att`` its attempt in flight (built positionally: see :func:`_patched`)."""
    return WorkUnitRecord(
        wu.id, wu.index, wu.name, wu.phase, wu.failures, wu.disruptions, wu.next_attempt_after,
        wu.attempt_count, wu.retry_reason, att, wu.stop_requested, wu.removed,
        wu.resource_scale, wu.message,
    )  # fmt: skip


def _cancel_requested(att: AttemptRecord, when: float) -> AttemptRecord:
    return dataclasses.replace(att, cancel_requested_at=when)


def _patched(
    units: tuple[WorkUnitRecord, ...],
    positions: Sequence[int] | None,
    upd: UpdateStatus,
    now: float,
    tally: _Tally | None = None,
) -> tuple[tuple[WorkUnitRecord, ...], list[int]]:
    """``units`` as the store has them after ``upd`` (terminal ones dropped), as
    :meth:`~lxr.store.writes.ControllerWrites.apply_update` writes them, and the positions
    dropped; what that did to the status inputs is counted in ``tally``. Only the units at
    ``positions`` (those the plan covered; None: all) are looked at. The plan made its
    patches in the order of its units, so they are matched in that order (no 100k-entry
    dicts of them, ~10 MB at the peak of a pass); when they are not in that order, they are
    put in it first."""
    where = range(len(units)) if positions is None else positions
    tally = _Tally() if tally is None else tally
    done = _patch_units(units, where, upd.work_units, upd.attempts, upd, now, tally)
    if done is not None:
        return done
    tally.clear()
    # by unit: the last patch of each unit and attempt, as the store applies them
    unit_at = {units[pos].id: pos for pos in where}
    attempt_at = {a.id: pos for pos in where if (a := units[pos].active) is not None}
    wps = sorted({p.id: p for p in upd.work_units}.values(), key=lambda p: unit_at[p.id])
    aps = sorted({a.id: a for a in upd.attempts}.values(), key=lambda a: attempt_at[a.id])
    done = _patch_units(units, where, wps, aps, upd, now, tally)
    assert done is not None, "a patch for a unit the plan did not cover"
    return done


def _patch_units(
    units: tuple[WorkUnitRecord, ...],
    where: Iterable[int],
    wps: Sequence[WorkUnitPatch],
    aps: Sequence[AttemptPatch],
    upd: UpdateStatus,
    now: float,
    tally: _Tally,
) -> tuple[tuple[WorkUnitRecord, ...], list[int]] | None:
    """:func:`_patched` with the unit patches ``wps`` and attempt patches ``aps`` in the
    order of the units at ``where``; None when some patch was not taken (not in that
    order). Records are built positionally (``dataclasses.replace`` costs ~3-5x more, at
    100k work units a pass)."""
    adopted = dict(upd.adoptions)
    adopted_state = upd.adopted_state.value
    out: list[WorkUnitRecord | None] = list(units)
    removed: list[int] = []
    ended: list[tuple[WorkUnitRecord, str]] = []
    moves = tally.moves
    i = j = 0
    n_wps, n_aps = len(wps), len(aps)
    for pos in where:
        wu = units[pos]
        p = None
        if i < n_wps and wps[i].id == wu.id:
            p, i = wps[i], i + 1
        att = wu.active
        ap = None
        if att is not None and j < n_aps and aps[j].id == att.id:
            ap, j = aps[j], j + 1
        if p is not None:
            phase = p.phase
            if phase != wu.phase:  # counted inline: no call per unit
                key = (wu.phase, phase)
                moves[key] = moves.get(key, 0) + 1
            if phase in _TERMINAL:
                ended.append((wu, phase))
                removed.append(pos)
                out[pos] = None
                continue
        if att is None:
            pass
        elif ap is not None and not adopted:  # the common case, without the branches below
            att = AttemptRecord(
                att.id, att.number, att.submission_id, att.submission_tag,
                att.submission_state, att.submission_error, ap.job_id, att.array_index,
                ap.phase, ap.state, ap.restarts, att.submit_time, ap.start_time,
                ap.last_seen, ap.cancel_requested_at,
            )  # fmt: skip
        elif ap is not None or att.submission_id in adopted:
            job_id = adopted.get(att.submission_id)
            state, submit_time = att.submission_state, att.submit_time
            if job_id is not None:
                state = adopted_state
                if att.job_id is None:
                    submit_time = now
            att = AttemptRecord(
                att.id,
                att.number,
                att.submission_id,
                att.submission_tag,
                state,
                att.submission_error,
                ap.job_id if ap else (att.job_id or job_id),
                att.array_index,
                ap.phase if ap else att.phase,
                ap.state if ap else att.state,
                ap.restarts if ap else att.restarts,
                submit_time,
                ap.start_time if ap else att.start_time,
                ap.last_seen if ap else att.last_seen,
                ap.cancel_requested_at if ap else att.cancel_requested_at,
            )
        if p is None:
            if att is not wu.active:
                out[pos] = _with_active(wu, att)
            continue
        # the outcome (reason, message) is written only when the patch sets one
        out[pos] = WorkUnitRecord(
            wu.id, wu.index, wu.name, p.phase, p.failures, p.disruptions,
            p.next_attempt_after, wu.attempt_count, p.retry_reason,
            None if p.clear_active else att, wu.stop_requested, wu.removed,
            p.resource_scale, wu.message if p.reason is None else p.message,
        )  # fmt: skip
    if i != n_wps or j != n_aps:
        return None
    deleted = frozenset(upd.remove)
    for wu, phase in ended:
        if wu.id in deleted:  # a sweep edit removed it: gone from the store, not moved
            if phase != wu.phase:
                moves[wu.phase, phase] -= 1
            tally.removed.append((wu.phase, wu.attempt_count == 0))
        elif phase == _FAILED:
            tally.failed.append(wu.index)
    removed.sort()
    if len(removed) * 8 < len(out):
        for pos in reversed(removed):
            del out[pos]
        return tuple(out), removed  # type: ignore[arg-type]
    return tuple(filter(None, out)), removed


def _seen(entry: _Entry) -> dict[int, TaskObservation | None]:
    """What each unit of ``entry`` had when last planned, by unit id (made from the
    unchanged check's observations while that holds them: ``seen`` is None exactly while
    ``keys`` is not)."""
    if entry.seen is None:
        units = entry.record.work_units
        entry.seen = dict(zip(map(_ID, units), entry.prev, strict=True))
    return entry.seen


def _drop_check(entry: _Entry) -> None:
    """The unchanged check no longer holds: what it held goes back by unit id."""
    if entry.keys is not None:
        _seen(entry)
        entry.keys, entry.prev = None, []
    entry.dirty = []


def _obs(
    att: AttemptRecord, tasks: Mapping[tuple[str, int], TaskObservation], tags: Mapping[str, str]
) -> TaskObservation | None:
    """The snapshot's observation of ``att``'s task (its job found by tag if need be)."""
    job_id = att.job_id or tags.get(att.submission_tag)
    return None if job_id is None else tasks.get((job_id, att.array_index))


def _refreshed_keys(entry: _Entry, dirty: Sequence[int]) -> bool:
    """Bring ``entry``'s unchanged check up to date at the ``dirty`` positions; False when a
    unit there no longer has an observed job in flight (the check is built anew)."""
    assert entry.keys is not None
    units, keys, prev = entry.record.work_units, entry.keys, entry.prev
    for pos in dirty:
        wu = units[pos]
        att = wu.active
        if att is None or att.job_id is None or wu.stop_requested:
            return False
        obs = prev[pos]
        if obs is None or _on_clock(obs):
            return False
        keys[pos], entry.indexes[pos] = att.job_id, att.array_index
    return True


def _drop_keys(entry: _Entry, removed: Sequence[int], units: Sequence[WorkUnitRecord]) -> None:
    """The units at ``removed`` (sorted positions) left ``entry`` (``units`` are those left):
    so do their keys and observations, and the dirty positions after them move down."""
    assert entry.keys is not None
    if len(removed) * 8 >= len(entry.keys):  # many left: built anew
        keep = bytearray(b"\x01") * len(entry.prev)  # 1 byte a unit, not a set of 100k ints
        for pos in removed:
            keep[pos] = 0
        kept = list(compress(entry.prev, keep))
        entry.keys, entry.dirty, entry.prev = None, [], []
        entry.seen = dict(zip(map(_ID, units), kept, strict=True))
        return
    for pos in reversed(removed):
        del entry.keys[pos], entry.indexes[pos], entry.prev[pos]
    gone = set(removed)
    entry.dirty = [p - bisect_left(removed, p) for p in entry.dirty if p not in gone]


# the positional constructions above follow the records' field order
assert [f.name for f in dataclasses.fields(WorkUnitRecord)] == [
    "id",
    "index",
    "name",
    "phase",
    "failures",
    "disruptions",
    "next_attempt_after",
    "attempt_count",
    "retry_reason",
    "active",
    "stop_requested",
    "removed",
    "resource_scale",
    "message",
]
assert [f.name for f in dataclasses.fields(AttemptRecord)] == [
    "id",
    "number",
    "submission_id",
    "submission_tag",
    "submission_state",
    "submission_error",
    "job_id",
    "array_index",
    "phase",
    "state",
    "restarts",
    "submit_time",
    "start_time",
    "last_seen",
    "cancel_requested_at",
]
