"""Sun / Son of Grid Engine: one ``qsub -t`` per submission, one ``qstat -xml`` per cycle,
``qacct`` only for what left the queue, exit-code files when there is no accounting.

Grid Engine arrays are ranges (``-t first-last:step``), so every submission gets dense array
indexes 1..N (the driver default) and resubmitting sparse work units is still one
``qsub -t 1-N``. Jobs are named ``lxr-<tag>`` (the tag is recorded before ``qsub`` runs): a
submission whose job id was never recorded is found by that name, in qstat or in qacct.

By default lxr owns retries and submits with ``-r n``. A task rescheduled anyway (``qmod -f
-rj``, a lost execution host) is rerun by Grid Engine with ``RESTARTED=1``: the job script then
exits at once with :data:`~lxr.schedulers.sge.parse.RERUN_DECLINED_EXIT`, accounting holds a
``failed 25`` record followed by that exit, and the task is reported ``Failed`` with reason
``Rescheduled`` (a disruption: lxr resubmits it without spending the failure budget). With
``requeue: Scheduler`` jobs are submitted ``-r y`` and a rescheduled task is reported
``Queued``/``Running`` with a restart.

A task in ``Eqw`` is reported ``Failed`` with the error text from ``qstat -j`` and listed in the
snapshot's ``held`` tasks: the plan deletes it (observing never does).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from lxr.api.resources import ClusterSpec
from lxr.schedulers.base import (
    ArrayJob,
    ObserveQuery,
    SchedulerError,
    SubmitRejected,
    TaskObservation,
    TaskPhase,
)
from lxr.schedulers.batch import (
    JOB_NAME_PREFIX,
    BatchDriver,
    Observed,
    exit_observation,
    missing_tasks,
)
from lxr.schedulers.jobscript import gang_layout, job_files, render_template
from lxr.schedulers.sge.parse import (
    QACCT_FIELDS,
    RERUN_DECLINED_EXIT,
    QacctRecord,
    QstatTask,
    accounting_observation,
    parse_qacct,
    parse_qstat_errors,
    parse_qstat_xml,
    qstat_observation,
    state_phase,
)
from lxr.schedulers.sge.plugin import SGEOptions
from lxr.schedulers.sge.render import (
    GONE,
    job_key,
    parse_qsub,
    qdel_targets,
    qsub_options,
    task_range,
)
from lxr.schedulers.transport import CommandResult, Transport

__all__ = ["SGEDriver"]

#: Grid Engine's own default of ``max_aj_tasks``; 0 in the config means unlimited
_DEFAULT_MAX_AJ_TASKS = 75_000
_UNLIMITED_ARRAY = 1_000_000

#: one command for every task that left the queue and every unconfirmed submission. stdin has
#: ``job ID INDEX`` and ``name NAME`` lines. A task's exit-code file (written by the launcher
#: when the program ended on its own) answers without accounting; qacct, which reads the whole
#: accounting file and takes one job per call, runs only for jobs with a task lacking one
#: (killed, rescheduled, never started) and for names. qacct errors other than "not found"
#: (an unreadable accounting file) are reported as ``acct-error`` lines. Runs on the cluster.
_LOOKUP_SCRIPT = r"""
byid=$1; fields=$2
declare -A acct=()
names=()
while read -r kind key idx; do
  case $kind in
    job) code= n=0
      [ -f "$byid/$key/exit/$idx" ] && read -r code < "$byid/$key/exit/$idx"
      if [ -f "$byid/$key/restarts/$idx" ]; then
        mapfile -t runs < "$byid/$key/restarts/$idx"; n=${#runs[@]}
      fi
      if [ -n "$code" ]; then echo "exit $key $idx $code $n"; else acct[$key]=1; fi ;;
    name) names+=("$key") ;;
  esac
done
exec 3>&1
for j in "${!acct[@]}" "${names[@]}"; do
  err=$( { qacct -j "$j" | grep -E "$fields" >&3; } 2>&1 )
  case $err in ""|*"not found"*) ;; *) echo "acct-error $j ${err//$'\n'/ }" ;; esac
done
exit 0
"""


class SGEDriver(BatchDriver):
    """Runs tasks as Grid Engine array jobs, on the login node or over SSH."""

    scheduler = "sge"
    # not shared with other schedulers' ids: a Slurm cluster may use the same staging dir
    # and the same numbers
    byid_name = "sge-byid"
    probe_user = True
    gone = GONE

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        staging_dir: str,
        spec: ClusterSpec | None = None,
    ) -> None:
        super().__init__(cluster, transport, staging_dir, spec)
        self._max_array = _DEFAULT_MAX_AJ_TASKS
        #: qacct's error in the last lookup (None: it answered)
        self.accounting_problem: str | None = None

    @property
    def options(self) -> SGEOptions:
        """The cluster's ``spec.sge``."""
        options = self.spec.options
        assert isinstance(options, SGEOptions)
        return options

    # ------------------------------------------------------------------ setup

    def config_command(self) -> list[str]:
        return ["qconf", "-sconf", "global"]

    def apply_config(self, res: CommandResult) -> None:
        """``max_aj_tasks``: the largest array."""
        if not res.ok:
            raise SchedulerError(f"cannot read the Grid Engine configuration: {res.describe()}")
        for line in res.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key == "max_aj_tasks" and value.strip().isdigit():
                limit = int(value.strip())
                self._max_array = limit if limit > 0 else _UNLIMITED_ARRAY

    @property
    def max_array_size(self) -> int:
        """Tasks per array: the cluster's ``max_aj_tasks``."""
        return self._max_array

    # ------------------------------------------------------------------ submit

    def render(self, job: ArrayJob) -> tuple[dict[str, bytes], list[str]]:
        """The files to upload and the ``qsub`` argv for ``job``."""
        if job.components:  # refused when applied; a job stored before is refused here
            raise SubmitRejected("Grid Engine has no heterogeneous jobs: components cannot run")
        job_dir = self.job_dir(job.tag)
        script = render_template(
            "sge.sh.j2",
            tag=job.tag,
            experiment=job.experiment,
            ntasks=len(job.tasks),
            job_dir=shlex.quote(job_dir),
            byid_dir=shlex.quote(self.byid_dir()),
            lxr_owns_retries=not job.scheduler_requeue,
            rerun_declined_exit=RERUN_DECLINED_EXIT,
            gang=gang_layout(job.resources),
        )
        files = job_files(
            job,
            job_dir,
            {
                f"{job_dir}/job.sge": script.encode(),
                # a missing -o directory would put the job in Eqw
                f"{job_dir}/logs/.keep": b"",
            },
        )
        argv = ["qsub", "-terse", *qsub_options(job, job_dir, self.options)]
        argv += ["-t", task_range([t.array_index for t in job.tasks])]
        if job.throttle:
            argv += ["-tc", str(job.throttle)]
        argv.append(f"{job_dir}/job.sge")
        return files, argv

    def parse_submit(self, res: CommandResult) -> str:
        return parse_qsub(res)

    # ------------------------------------------------------------------ observe

    async def observe_tasks(self, query: ObserveQuery) -> Observed:
        res = await self.transport.run(["qstat", "-u", self.user or "", "-xml"])
        if not res.ok:
            raise SchedulerError(res.describe())
        queued = [
            t
            for t in parse_qstat_xml(res.stdout, self.utc_offset)
            if t.name.startswith(JOB_NAME_PREFIX)
        ]
        out = Observed(tags={t.name[len(JOB_NAME_PREFIX) :]: t.job_id for t in queued})
        held = [t for t in queued if state_phase(t.state)[0] is TaskPhase.FAILED]
        errors = await self._errors(held)
        out.tasks = {
            (t.job_id, t.array_index): qstat_observation(t, errors.get((t.job_id, t.array_index)))
            for t in queued
        }
        out.held = {(t.job_id, t.array_index) for t in held}

        missing = missing_tasks(query.jobs, out.tasks)
        lost_tags = sorted(t for t in query.intents if t not in out.tags)
        if missing or lost_tags:
            found, found_tags = await self._lookup(missing, lost_tags)
            problem = self.accounting_problem
            if problem and lost_tags:
                # without accounting an intent could be submitted again although its job ran
                raise SchedulerError(f"qacct failed: {problem}")
            if problem:
                out.degraded = (
                    f"accounting unavailable (qacct: {problem}); tasks that left the queue are "
                    "read from their exit-code files"
                )
            for key, obs in found.items():
                out.tasks.setdefault(key, obs)
            for tag, job_id in found_tags.items():
                out.tags.setdefault(tag, job_id)
        return out

    async def _errors(self, failed: list[QstatTask]) -> dict[tuple[str, int], str]:
        """The error text of tasks in ``Eqw`` (one ``qstat -j`` for all of them)."""
        if not failed:
            return {}
        jobs = sorted({t.job_id for t in failed}, key=job_key)
        res = await self.transport.run(["qstat", "-j", ",".join(jobs)])
        errors = parse_qstat_errors(res.stdout) if res.ok else {}
        for t in failed:
            if (t.job_id, t.array_index) not in errors:
                # a non-array job's reason is numbered 1; otherwise take the job's first one
                same_job = [m for (j, _), m in errors.items() if j == t.job_id]
                if same_job:
                    errors[(t.job_id, t.array_index)] = same_job[0]
        return errors

    async def _lookup(
        self, missing: Mapping[str, set[int]], tags: Sequence[str]
    ) -> tuple[dict[tuple[str, int], TaskObservation], dict[str, str]]:
        """Accounting (and exit files) for tasks gone from the queue, and jobs carrying
        unconfirmed tags: one command, whatever the number of jobs and tasks. qacct's error,
        when it failed for another reason than an unknown job, is kept in
        :attr:`accounting_problem`."""
        fields = "^(==|(" + "|".join(QACCT_FIELDS) + ") )"
        lines = [
            f"job {job} {idx}\n"
            for job in sorted(missing, key=job_key)
            for idx in sorted(missing[job])
        ]
        lines += [f"name {JOB_NAME_PREFIX}{t}\n" for t in tags]
        res = await self.transport.run(
            ["bash", "-c", _LOOKUP_SCRIPT, "lxr-lookup", self.byid_dir(), fields],
            input="".join(lines).encode(),
            timeout=300.0,
        )
        if not res.ok:
            raise SchedulerError(res.describe())
        exit_codes: dict[tuple[str, int], tuple[int, int]] = {}  # -> (code, restarts)
        acct: list[str] = []
        problem: str | None = None
        for line in res.stdout.splitlines():
            words = line.split()
            if len(words) == 5 and words[0] == "exit" and words[2].isdigit():
                if words[3].lstrip("-").isdigit() and words[4].isdigit():
                    exit_codes[(words[1], int(words[2]))] = (int(words[3]), int(words[4]))
            elif words[:1] == ["acct-error"]:
                problem = problem or " ".join(words[2:])[:500]
            else:
                acct.append(line)

        runs: dict[tuple[str, int], list[QacctRecord]] = {}
        found_tags: dict[str, str] = {}
        for rec in parse_qacct("\n".join(acct), self.utc_offset):
            runs.setdefault((rec.job_id, rec.array_index), []).append(rec)
            if rec.name.startswith(JOB_NAME_PREFIX):
                found_tags.setdefault(rec.name[len(JOB_NAME_PREFIX) :], rec.job_id)
        found = {key: accounting_observation(recs) for key, recs in runs.items()}
        for key, (code, restarts) in exit_codes.items():
            if key in found:
                continue  # accounting says more (times, Grid Engine's own failure codes)
            found[key] = exit_observation(
                *key, code, restarts=restarts, message="from the task's exit-code file"
            )
        self.accounting_problem = problem
        return found, found_tags

    # ------------------------------------------------------------------ cancel

    def cancel_argv(self, whole: Sequence[str], per_job: Mapping[str, set[int]]) -> list[str]:
        targets: list[tuple[str, int | None]] = [(j, None) for j in whole]
        targets += [(j, i) for j, idxs in per_job.items() for i in idxs]
        return ["qdel", qdel_targets(targets)]
