"""Rendering a Slurm submission: the ``#SBATCH`` lines of a job array."""

from __future__ import annotations

from lxr.api.resources import Resources, parse_memory_mib
from lxr.schedulers.base import ArrayJob, SubmitRejected
from lxr.schedulers.batch import JOB_NAME_PREFIX

__all__ = ["sbatch_options"]


def _directive_value(value: str) -> str:
    if "\n" in value or '"' in value:
        raise SubmitRejected(f"cannot put {value!r} in an #SBATCH line")
    return f'"{value}"' if any(c.isspace() for c in value) or "'" in value else value


def _time_limit(seconds: int) -> str:
    minutes = -(-seconds // 60)  # Slurm counts whole minutes: round up, never cut short
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def sbatch_options(job: ArrayJob, job_dir: str) -> list[str]:
    """The ``#SBATCH`` lines of ``job`` (everything but ``--array``, which goes on the command
    line: a long index list is safer there than in a script line). A job of components is a
    heterogeneous job: each component's resources, separated by ``hetjob`` lines."""
    # a heterogeneous job is never an array: its one task's index is written out
    index = str(job.tasks[0].array_index) if job.components else "%a"
    own = [
        f"--job-name={JOB_NAME_PREFIX}{job.tag}",
        f"--comment=lxr:{job.experiment}:{job.tag}",
        f"--output={_directive_value(f'{job_dir}/logs/{index}.out')}",
        f"--error={_directive_value(f'{job_dir}/logs/{index}.err')}",
        # a requeued run appends instead of wiping the first run's output
        "--open-mode=append",
        "--requeue" if job.scheduler_requeue else "--no-requeue",
    ]
    if not job.components:
        return _resource_options(own, job.resources)
    opts: list[str] = []
    for i, component in enumerate(job.components):
        if i:
            opts.append("hetjob")
        # every component is a gang of its own ranks, so that srun --het-group has a layout
        res = component.resources.model_copy(
            update={
                "nodes": component.resources.nodes or 1,
                "tasks_per_node": component.resources.tasks_per_node or 1,
            }
        )
        opts += _resource_options([] if i else own, res, gang=True)
    return opts


def _resource_options(own: list[str], res: Resources, gang: bool = False) -> list[str]:
    """``own`` (lxr's name, comment and log options, kept whatever ``skipDirectives`` say),
    then the lines that ask for ``res``."""
    opts = list(own)
    if res.gang or gang:
        # one allocation for every rank: the job script starts them with srun
        opts.append(f"--nodes={res.nodes or 1}")
        opts.append(f"--ntasks-per-node={res.tasks_per_node or 1}")
    if res.cpus is not None:
        opts.append(f"--cpus-per-task={res.cpus}")
    if res.memory is not None:
        opts.append(f"--mem={parse_memory_mib(res.memory)}M")
    if res.memory_per_cpu is not None:
        opts.append(f"--mem-per-cpu={parse_memory_mib(res.memory_per_cpu)}M")
    if res.gpus_per_task:
        gpus = f"{res.gpu_type}:{res.gpus_per_task}" if res.gpu_type else str(res.gpus_per_task)
        opts.append(f"--gpus-per-task={gpus}")
    if res.gpus:
        gres = f"gpu:{res.gpu_type}:{res.gpus}" if res.gpu_type else f"gpu:{res.gpus}"
        opts.append(f"--gres={gres}")
    if res.time_limit_seconds is not None:
        opts.append(f"--time={_time_limit(res.time_limit_seconds)}")
    for key in ("partition", "account", "qos"):
        value = getattr(res, key)
        if value:
            opts.append(f"--{key}={_directive_value(value)}")
    for key, value in sorted(res.extra.items()):
        key = key.lstrip("-")
        opts.append(f"--{key}" if value == "" else f"--{key}={_directive_value(value)}")
    if res.skip_directives:
        # lxr's own name, comment and log options are how it finds the job and its logs
        keep = opts[: min(4, len(own))]
        rest = opts[len(keep) :]
        opts = keep + [o for o in rest if not any(s in o for s in res.skip_directives)]
    for line in res.directives or []:
        if "\n" in line:
            raise SubmitRejected(f"cannot put {line!r} in an #SBATCH line")
        opts.append(line)
    return opts
