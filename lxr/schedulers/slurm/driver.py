"""Slurm: one ``sbatch --array`` per submission, one ``squeue`` per cycle, ``sacct`` only for
what left the queue, exit-code files when there is no accounting.

Job arrays use the work units' own indexes as array indexes when they fit under
``MaxArraySize`` (``--array=3,7,12`` is legal), so ``31_7`` is work unit 7. Jobs are named
``lxr-<tag>`` (the tag is recorded before ``sbatch`` runs), which is how a submission whose job
id was never recorded (the controller died right after ``sbatch``) is found and adopted.

When ``sacct`` fails (slurmdbd down), tasks that left the queue are read from their exit-code
files and the snapshot says it is degraded; only a lookup by tag (which nothing else can
answer: the job may exist) still fails the cycle.
"""

from __future__ import annotations

import gc
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from sys import intern
from typing import Any, NamedTuple

from lxr.api.resources import ClusterSpec, component_variable
from lxr.schedulers.base import (
    ArrayJob,
    ObserveQuery,
    SchedulerError,
    SubmitRejected,
    TaskObservation,
)
from lxr.schedulers.batch import (
    JOB_NAME_PREFIX,
    BatchDriver,
    Observed,
    job_id_from,
    missing_tasks,
)
from lxr.schedulers.jobscript import gang_layout, job_files, render_template
from lxr.schedulers.slurm.parse import (
    INTENT_LOOKBACK,
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    SlurmRow,
    compress_indexes,
    het_row,
    observation,
    parse_config,
    parse_sacct,
    parse_squeue_line,
    parse_task_line,
    squeue_lines,
)
from lxr.schedulers.slurm.render import sbatch_options
from lxr.schedulers.transport import CommandResult, Transport

__all__ = ["SlurmDriver"]

#: sbatch errors that may pass on their own: the cluster is retried, the job is not failed
_TRANSIENT = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Connection refused|"
    r"temporarily unable|Resource temporarily unavailable|Zero Bytes were transmitted|"
    r"Slurm backup controller in standby|MaxSubmitJob|Communication connection failure|"
    r"Transport endpoint|slurm_load_jobs error|Insane message length",
    re.IGNORECASE,
)


#: one row of a squeue line: its tag (None: not lxr's job), job id, (job id, array index),
#: what lxr makes of it, and the row itself when it is a component of a heterogeneous job
_Parsed = tuple[str | None, str, tuple[str, int], TaskObservation | None, SlurmRow | None]


class _Piece(NamedTuple):
    """What a piece of squeue's output (whole lines) says: lxr's tasks in it, in the order
    printed (keys and observations), their tags' job ids, the rows of heterogeneous jobs'
    components (job id, row), and the array indexes printed per job id."""

    keys: tuple[tuple[str, int], ...]
    tasks: tuple[TaskObservation, ...]
    tags: dict[str, str]
    het: tuple[tuple[str, SlurmRow], ...]
    reported: tuple[tuple[str, tuple[int, ...]], ...]


#: squeue's output is read in pieces of whole lines, each starting at a line that holds
#: _MARK (about one line in 500 of a big queue: task indexes and job ids that end in 000),
#: at least _MIN_PIECE characters after the start of the one before. So where a piece
#: starts depends on its own first line, not on the lines before it: a line printed
#: differently, longer or shorter, changes its own piece, and the pieces after it are the
#: same text as last cycle. A piece printed exactly as last cycle means what it meant then,
#: found by its hash: neither the text nor its lines are kept (at 100k tasks that was ~18 MB
#: of text and ~25 MB of lines' readings kept from one cycle to the next).
_MARK = "000|"
_MIN_PIECE = 4096

#: a task line's reading, shared by the lines that differ only in task index and JobID: the
#: tag (None: not lxr's task), then the fields of its observation but the array index
_Template = tuple[Any, ...]
_NOT_LXRS: _Template = (None,)
#: more templates than this in one cycle: most lines differ in more than the index
_MAX_TEMPLATES = 8192
_job_of, _index_of = itemgetter(0), itemgetter(1)


def _pieces(text: str) -> Iterator[str]:
    """``text`` in pieces of whole lines, cut before the lines that hold :data:`_MARK`."""
    find, rfind = text.find, text.rfind
    start, end = 0, len(text)
    while start < end:
        cut, at = end, start + _MIN_PIECE
        while at < end:
            hit = find(_MARK, at)
            if hit < 0:
                break
            line = rfind("\n", start, hit) + 1  # the start of the line that holds it
            if line > start:
                cut = line
                break
            at = hit + len(_MARK)  # on the piece's first line: look further
        yield text[start:cut]
        start = cut


def _template(job: str, task: str, rest: str, utc_offset: float) -> _Template:
    """What a task line (:func:`squeue_lines`) says but for its task index."""
    row = parse_task_line(job, task, rest, utc_offset)
    if row is None or not row.name.startswith(JOB_NAME_PREFIX):
        return _NOT_LXRS
    obs = observation(row)
    return (intern(row.name[len(JOB_NAME_PREFIX) :]), obs.job_id, *obs[2:])


def _read_piece(
    text: str, utc_offset: float, templates: dict[tuple[str, str], _Template]
) -> _Piece:
    """A piece of squeue's output as :meth:`SlurmDriver.observe_tasks` uses it. A task line
    that differs from one read before (``templates``, this cycle's) only in its task index
    and JobID gets that line's reading with its own index, without parsing it again."""
    keys: list[tuple[str, int]] = []
    found: list[TaskObservation] = []
    tags: dict[str, str] = {}
    het: list[tuple[str, SlurmRow]] = []
    new, cls = tuple.__new__, TaskObservation
    for job, task, rest, line in squeue_lines(text):
        if job:
            template = templates.get((job, rest))
            if template is None:
                if len(templates) >= _MAX_TEMPLATES:
                    templates.clear()
                template = templates[job, rest] = _template(job, task, rest, utc_offset)
            if template[0] is None:  # not lxr's job
                continue
            # unpacked and packed again by name: one tuple made, where ``(*tail)`` makes two
            tag, job_id, ph, st, why, code, msg, t0, t1, rs, rx, rk, tf = template
            index = int(task)
            keys.append((job_id, index))
            found.append(new(cls, (job_id, index, ph, st, why, code, msg, t0, t1, rs, rx, rk, tf)))
            tags[tag] = job_id
        elif line:
            for tag, job_id, key, obs, row in _parse_line(line, utc_offset):
                if tag is None:  # not lxr's job
                    continue
                tags[tag] = job_id
                if row is not None:  # a component of a heterogeneous job
                    het.append((job_id, row))
                elif obs is not None:
                    keys.append(key)
                    found.append(obs)
    jobs = set(map(_job_of, keys))
    reported: tuple[tuple[str, tuple[int, ...]], ...]
    if len(jobs) == 1:  # a piece of one array, as most are
        reported = ((jobs.pop(), tuple(map(_index_of, keys))),)
    else:
        per_job: dict[str, list[int]] = {job_id: [] for job_id in jobs}
        for job_id, index in keys:
            per_job[job_id].append(index)
        reported = tuple((job_id, tuple(indexes)) for job_id, indexes in per_job.items())
    return _Piece(tuple(keys), tuple(found), tags, tuple(het), reported)


def _merge(
    order: Sequence[_Piece],
    read: Sequence[_Piece],
    gone: Sequence[_Piece],
    last: dict[tuple[str, int], TaskObservation] | None,
) -> tuple[dict[tuple[str, int], TaskObservation], bool]:
    """The tasks of the pieces in ``order`` (a task printed twice is what its later line
    says, as when lines were read one by one), and whether none was printed twice. When
    few pieces changed, ``last`` (last cycle's, when none was printed twice then) is patched
    in place instead: without the tasks of the pieces ``gone``, with those ``read`` anew."""
    total = sum(len(piece.keys) for piece in order)
    if last is not None and (len(read) + len(gone)) * 4 < len(order):
        for piece in gone:
            for key in piece.keys:
                del last[key]
        for piece in read:
            last.update(zip(piece.keys, piece.tasks, strict=True))
        if len(last) == total:
            return last, True
    tasks: dict[tuple[str, int], TaskObservation] = {}
    for piece in order:
        tasks.update(zip(piece.keys, piece.tasks, strict=True))
    return tasks, len(tasks) == total


def _parse_line(line: str, utc_offset: float) -> tuple[_Parsed, ...]:
    """A squeue line's rows as :meth:`SlurmDriver.observe_tasks` uses them."""
    out: list[_Parsed] = []
    for row in parse_squeue_line(line, utc_offset):
        if not row.name.startswith(JOB_NAME_PREFIX):
            out.append((None, row.job_id, (row.job_id, 0), None, None))
            continue
        tag = intern(row.name[len(JOB_NAME_PREFIX) :])  # the same on every task of an array
        if row.het_offset is not None:
            out.append((tag, row.job_id, (row.job_id, 0), None, row))
        elif row.array_index is None:  # a plain job: not one lxr submits
            out.append((None, row.job_id, (row.job_id, 0), None, None))
        else:
            key = (row.job_id, row.array_index)
            out.append((tag, row.job_id, key, observation(row), None))
    return tuple(out)


def _missing(
    jobs: Mapping[str, frozenset[int]],
    tasks: Mapping[tuple[str, int], TaskObservation],
    reported: Mapping[str, set[int]],
) -> dict[str, set[int]]:
    """:func:`missing_tasks`, by set differences with the indexes squeue printed per job
    (``reported``; what ``tasks`` got otherwise is checked for the few left)."""
    out: dict[str, set[int]] = {}
    for job_id, indexes in jobs.items():
        left = indexes - reported.get(job_id, set())
        gone = {i for i in left if (job_id, i) not in tasks}
        if gone:
            out[job_id] = gone
    return out


class _AccountingDown(SchedulerError):
    """sacct failed (slurmdbd unreachable): observation goes on without it."""


class SlurmDriver(BatchDriver):
    """Runs tasks as Slurm job arrays, on the login node or over SSH."""

    scheduler = "slurm"
    byid_name = "byid"
    #: scancel complaints about jobs that are already gone: nothing left to cancel
    gone = re.compile(r"already completing or completed|Invalid job id|does not exist", re.I)

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        spec: ClusterSpec | None = None,
    ) -> None:
        super().__init__(cluster, transport, staging_dir, spec)
        self.config: dict[str, str] | None = None
        self.accounting = True
        self._max_array = 1001  # Slurm's default MaxArraySize, until the config is read
        #: heterogeneous jobs seen: cancelled by their job id (they are not arrays)
        self._het_jobs: set[str] = set()
        #: what each piece of the last squeue's output said (by its hash and length), and the
        #: UTC offset it was read at
        self._pieces: dict[tuple[int, int], _Piece] = {}
        self._pieces_offset = 0.0
        #: the tasks they hold, when no task was printed twice (patched when few changed)
        self._tasks: dict[tuple[str, int], TaskObservation] | None = None

    # ------------------------------------------------------------------ setup

    def config_command(self) -> list[str]:
        return ["scontrol", "show", "config"]

    def apply_config(self, res: CommandResult) -> None:
        """``MaxArraySize`` and whether there is accounting at all."""
        if not res.ok:
            raise SchedulerError(f"cannot read the Slurm configuration: {res.describe()}")
        config = parse_config(res.stdout)
        max_array = config.get("MaxArraySize", "")
        if max_array.isdigit() and int(max_array) > 0:
            self._max_array = int(max_array)
        self.accounting = config.get("AccountingStorageType", "") != "accounting_storage/none"
        self.config = config

    @property
    def max_array_size(self) -> int:
        """Tasks per array: Slurm's ``MaxArraySize`` (indexes run 0 .. MaxArraySize-1)."""
        return self._max_array

    def array_indexes(self, work_unit_indexes: Sequence[int]) -> list[int]:
        """The work units' own indexes when every one is below ``MaxArraySize`` (so ``31_7``
        is work unit 7), else dense 0..N-1."""
        if all(0 <= i < self._max_array for i in work_unit_indexes) and len(
            set(work_unit_indexes)
        ) == len(work_unit_indexes):
            return list(work_unit_indexes)
        return list(range(len(work_unit_indexes)))

    # ------------------------------------------------------------------ submit

    def render(self, job: ArrayJob) -> tuple[dict[str, bytes], list[str]]:
        """The files to upload and the ``sbatch`` argv for ``job``."""
        job_dir = self.job_dir(job.tag)
        if job.components and len(job.tasks) != 1:
            raise SubmitRejected(
                "a heterogeneous job holds one work unit (Slurm has no arrays of them)"
            )
        het = []
        base = 0
        for c in job.components:
            layout = gang_layout(c.resources, always=True)
            assert layout is not None
            het.append(
                {
                    "name": c.name,
                    "variable": component_variable(c.name),
                    "gang": layout,
                    "base": base,
                }
            )
            base += layout.ranks
        script = render_template(
            "slurm.sbatch.j2",
            options=sbatch_options(job, job_dir),
            tag=job.tag,
            experiment=job.experiment,
            ntasks=len(job.tasks),
            job_dir=shlex.quote(job_dir),
            byid_dir=shlex.quote(self.byid_dir()),
            gang=gang_layout(job.resources),
            het=het,
            index=job.tasks[0].array_index,
        )
        files = job_files(
            job,
            job_dir,
            {
                f"{job_dir}/job.sbatch": script.encode(),
                # Slurm does not create the directory of --output: a missing one fails the job
                f"{job_dir}/logs/.keep": b"",
            },
        )
        if job.components:
            return files, ["sbatch", "--parsable", f"{job_dir}/job.sbatch"]
        array = compress_indexes(t.array_index for t in job.tasks)
        if job.throttle:
            array += f"%{job.throttle}"
        argv = ["sbatch", "--parsable", f"--array={array}", f"{job_dir}/job.sbatch"]
        return files, argv

    def parse_submit(self, res: CommandResult) -> str:
        """The job id ``sbatch --parsable`` printed (``31`` or ``31;cluster``), or the error."""
        return job_id_from(
            res, command="sbatch", separator=";", transient=_TRANSIENT, rejected=_REJECTED
        )

    # ------------------------------------------------------------------ observe

    async def observe_tasks(self, query: ObserveQuery) -> Observed:
        # no -r: a pending array stays one line (``31_[0-999]``, expanded here) instead of one
        # per task; tasks that started (or were requeued) are separate lines either way
        res = await self.transport.run(["squeue", "--me", "-h", "-t", "all", "-O", SQUEUE_FORMAT])
        if not res.ok:
            raise SchedulerError(res.describe())
        out = Observed()
        tags = out.tags
        het: dict[str, list[SlurmRow]] = {}
        reported: dict[str, set[int]] = {}  # job id -> the array indexes printed
        stdout = res.stdout
        del res
        same_clock = self._pieces_offset == self.utc_offset
        last = self._pieces if same_clock else {}
        merged = self._tasks if same_clock else None
        self._pieces, self._tasks, self._pieces_offset = {}, None, self.utc_offset
        kept = len(last)
        pieces: dict[tuple[int, int], _Piece] = {}
        order: list[_Piece] = []
        read: list[_Piece] = []  # the pieces read anew
        templates: dict[tuple[str, str], _Template] = {}
        # reading 100k changed lines makes 200k objects that hold no cycles: while they are
        # made the cyclic collector is held off, or its full passes over the growing heap
        # (several per cycle) cost as much as the reading itself
        collecting = gc.isenabled()
        gc.disable()
        try:
            for text in _pieces(stdout):
                digest = (hash(text), len(text))
                piece = pieces.get(digest)
                if piece is None:
                    piece = last.pop(digest, None)
                    if piece is None:
                        piece = _read_piece(text, self.utc_offset, templates)
                        read.append(piece)
                        # mostly new: last cycle's tasks will not be patched, and few of its
                        # pieces will be printed again; let them go now (a cycle where every
                        # task changed holds one reading, not two)
                        if len(read) * 4 > kept:
                            merged = None
                        if len(read) * 2 > kept:
                            last = {}
                    pieces[digest] = piece
                order.append(piece)
            del stdout, templates
            # what is left of last cycle's pieces was not printed again
            tasks, unique = _merge(order, read, list(last.values()), merged)
        finally:
            if collecting:
                gc.enable()
        few_changed = len(read) * 4 <= kept
        del last, read, merged
        self._pieces = pieces
        if unique and few_changed:
            # few changed: kept to be patched next cycle (the snapshot's tasks are a copy)
            self._tasks = tasks
            tasks = dict(tasks)
        out.tasks = tasks
        for piece in order:
            tags.update(piece.tags)
            for job_id, row in piece.het:
                het.setdefault(job_id, []).append(row)
            for job_id, indexes in piece.reported:
                printed = reported.get(job_id)
                if printed is None:
                    reported[job_id] = set(indexes)
                else:
                    printed.update(indexes)
        self._het_tasks(het, query, tasks)

        missing = _missing(query.jobs, tasks, reported)
        lost_tags = sorted(t for t in query.intents if t not in tags)
        if self.accounting and (missing or lost_tags):
            try:
                found = await self._sacct(sorted(missing), lost_tags)
            except _AccountingDown as exc:
                out.degraded = (
                    f"accounting unavailable ({exc}); tasks that left the queue are read "
                    "from their exit-code files"
                )
                found = []
            for rows in found:
                het = {}
                for row in rows:
                    if row.het_offset is not None:
                        if row.name.startswith(JOB_NAME_PREFIX):
                            tags.setdefault(row.name[len(JOB_NAME_PREFIX) :], row.job_id)
                        if not any(k[0] == row.job_id for k in tasks):
                            het.setdefault(row.job_id, []).append(row)
                        continue
                    if row.array_index is None:
                        continue
                    key = (row.job_id, row.array_index)
                    if key not in tasks:
                        tasks[key] = observation(row)
                    if row.name.startswith(JOB_NAME_PREFIX):
                        tags.setdefault(row.name[len(JOB_NAME_PREFIX) :], row.job_id)
                self._het_tasks(het, query, tasks)
            missing = missing_tasks(query.jobs, tasks)
        if missing:
            tasks.update(await self.read_exit_files(missing))
        return out

    def _het_tasks(
        self,
        het: Mapping[str, list[SlurmRow]],
        query: ObserveQuery,
        tasks: dict[tuple[str, int], TaskObservation],
    ) -> None:
        """Heterogeneous jobs (one row per component) as the one task each holds: the task
        lxr waits on under that job id."""
        for job_id, rows in het.items():
            self._het_jobs.add(job_id)
            indexes = query.jobs.get(job_id, ())
            if len(indexes) != 1:
                continue  # adopted this cycle: its index is known once its job id is recorded
            (index,) = indexes
            tasks[(job_id, index)] = observation(het_row(rows))._replace(array_index=index)

    async def _sacct(self, job_ids: list[str], tags: list[str]) -> list[list[SlurmRow]]:
        """Accounting rows for tasks gone from the queue (``-j``), then for unconfirmed tags
        (``--name``). Raises :class:`_AccountingDown` when the first fails and no tag is asked
        about; a failed tag lookup fails the cycle: without it, an intent could be submitted
        again although its job exists."""
        base = ["sacct", "-X", "-D", "-P", "-n", "-o", ",".join(SACCT_FIELDS)]
        queries = []
        if job_ids:
            queries.append([*base, "-j", ",".join(job_ids)])
        if tags:
            names = ",".join(JOB_NAME_PREFIX + t for t in tags)
            queries.append([*base, "-S", INTENT_LOOKBACK, f"--name={names}"])
        out: list[list[SlurmRow]] = []
        for argv in queries:
            res = await self.transport.run(argv)
            if "accounting storage is disabled" in (res.stdout + res.stderr):
                self.accounting = False
                return out
            if not res.ok:
                if tags:
                    raise SchedulerError(res.describe())
                raise _AccountingDown(res.describe())
            out.append(parse_sacct(res.stdout, self.utc_offset))
        return out

    # ------------------------------------------------------------------ cancel

    def cancel_argv(self, whole: Sequence[str], per_job: Mapping[str, set[int]]) -> list[str]:
        ids = list(whole)
        for job, indexes in sorted(per_job.items()):
            if job in self._het_jobs:  # one task, every component: the job itself
                ids.append(job)
                continue
            ids.append(
                f"{job}_{next(iter(indexes))}"
                if len(indexes) == 1
                else f"{job}_[{compress_indexes(indexes)}]"
            )
        return ["scancel", *ids]


_REJECTED = re.compile(r"error:")
