"""Files every driver writes for a job array: the task table and the task launcher.

The task table has one line per task: ``index<TAB>argv<TAB>env<TAB>cwd<TAB>envFrom``, each
field the base64 of NUL-separated strings (``envFrom``: per source its kind, ``file`` or
``command``, ``optional`` as 0/1, the number of strings that follow, then the path or argv).
The launcher (bash, present on every cluster) decodes the line of its own index, reads the
``envFrom`` sources, and runs the argv directly, so nothing passes through a shell's parser.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import jinja2

from lxr.api.resources import Resources
from lxr.schedulers.base import ArrayJob, TaskSpec

__all__ = [
    "LAUNCHER",
    "TASKS_FILE",
    "GangLayout",
    "gang_layout",
    "job_files",
    "render_template",
    "task_table",
]

TASKS_FILE = "tasks.tsv"
LAUNCHER = "run-task.sh"


@dataclass(frozen=True)
class GangLayout:
    """How the ranks of one work unit are laid out, for the job scripts."""

    nodes: int
    tasks_per_node: int
    cpus: int | None

    @property
    def ranks(self) -> int:
        """Every rank of the work unit."""
        return self.nodes * self.tasks_per_node


def gang_layout(resources: Resources, always: bool = False) -> GangLayout | None:
    """The layout of a work unit of several ranks; None for a plain task (unless
    ``always``: a component of a heterogeneous job is launched as ranks even when one)."""
    if not resources.gang and not always:
        return None
    return GangLayout(resources.nodes or 1, resources.tasks_per_node or 1, resources.cpus)


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("lxr.schedulers", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(name: str, **context: object) -> str:
    """Render one of the job templates shipped with lxr."""
    return _env().get_template(name).render(**context)


def _b64(items: Sequence[str]) -> str:
    raw = b"".join(item.encode() + b"\0" for item in items)
    return base64.b64encode(raw).decode()


def task_table(tasks: Sequence[TaskSpec], suffix: str = "") -> bytes:
    """The task table for ``tasks`` (keyed ``<index><suffix>``: a component of a
    heterogeneous job is ``<index>.<name>``)."""
    lines = []
    for task in tasks:
        env = [f"{k}={v}" for k, v in task.env.items()]
        cwd = base64.b64encode((task.working_dir or "").encode()).decode()
        sources: list[str] = []
        for src in task.env_from:
            words = [src.file] if src.file is not None else list(src.command or [])
            kind = "file" if src.file is not None else "command"
            sources += [kind, str(int(src.optional)), str(len(words)), *words]
        lines.append(
            f"{task.array_index}{suffix}\t{_b64(task.argv)}\t{_b64(env)}\t{cwd}\t{_b64(sources)}\n"
        )
    return "".join(lines).encode()


def job_files(
    job: ArrayJob, job_dir: str, extra: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """Every file of a job's directory: task table, launcher, and a description for humans."""
    meta = {
        "tag": job.tag,
        "experiment": job.experiment,
        "experimentUid": job.experiment_uid,
        "tasks": [
            {"index": t.array_index, "workUnit": t.work_unit, "attempt": t.attempt}
            for t in job.tasks
        ],
    }
    if job.components:
        meta["components"] = [c.name for c in job.components]
        table = b"".join(task_table(c.tasks, f".{c.name}") for c in job.components)
    else:
        table = task_table(job.tasks)
    files = {
        f"{job_dir}/{TASKS_FILE}": table,
        f"{job_dir}/{LAUNCHER}": render_template("run-task.sh.j2").encode(),
        f"{job_dir}/job.json": (json.dumps(meta, indent=1) + "\n").encode(),
    }
    files.update(extra or {})
    return files
