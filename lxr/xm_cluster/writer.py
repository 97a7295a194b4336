"""From xm tasks to lxr Experiments: what each cluster needs staged, each task resolved against
its staged paths, and tasks grouped into one lxr Experiment per (cluster, command, resources)
so the reconciler packs each group into job arrays."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xmanager import xm

from lxr.api.artifacts import STAGED_BLOBS
from lxr.api.paths import with_blobs_root
from lxr.api.resources import (
    ArtifactRef,
    ClusterSpec,
    Component,
    Executable,
    Experiment,
    ExperimentSpec,
    FailurePolicy,
    FailurePolicyAction,
    FailurePolicyRule,
    FailureReason,
    ObjectMeta,
    RequeuePolicy,
    Resources,
    WorkUnitTemplate,
)
from lxr.schedulers.registry import local_blobs_root
from lxr.staging import Blob
from lxr.store import Store
from lxr.xm_cluster.accelerators import resolve_accelerator
from lxr.xm_cluster.commands import runtime_command, split_args, substitute
from lxr.xm_cluster.context import ANNOTATION_TITLE
from lxr.xm_cluster.dependencies import resolve_dependency
from lxr.xm_cluster.executors import executor_resources
from lxr.xm_cluster.packaging import ClusterExecutable, build_fileset_blob
from lxr.xm_cluster.specs import PLACEHOLDER_RE, fileset_by_uid, resolve_path
from lxr.xm_cluster.work_unit import Task

__all__ = [
    "ANNOTATION_TITLE",
    "ANNOTATION_WORK_UNITS",
    "LABEL_EXPERIMENT_ID",
    "REJECTED_IS_FINAL",
    "Built",
    "add_dependencies",
    "artifacts_needed",
    "build_task",
    "fold_groups",
    "group_tasks",
    "labelled_blobs",
    "lxr_experiment",
    "slug",
    "task_label",
    "write_tasks",
]

LABEL_EXPERIMENT_ID = "xm.lxr.dev/experiment-id"
#: JSON list, by lxr work-unit index: [xm work unit id, task number within it, identity]
ANNOTATION_WORK_UNITS = "xm.lxr.dev/work-units"


#: the failure policy of launched experiments: a refused submission is not retried
REJECTED_IS_FINAL = FailurePolicy(
    rules=[
        FailurePolicyRule(
            action=FailurePolicyAction.FAIL_INDEX, on_reasons=[FailureReason.SUBMIT_ERROR]
        )
    ]
)


@dataclass
class Built:
    """A task resolved against its staged artifacts."""

    cluster: str
    key: str
    command: list[str]
    exec_env: dict[str, str]
    working_dir: str | None
    resources: Resources
    requeue: RequeuePolicy
    parallelism: int | None
    args: dict[str, Any]
    env: dict[str, str]
    task: Task
    blobs: dict[str, tuple[str, Blob]]  # staged name -> (artifact name, blob)
    #: the jobs of an xm.JobGroup, one lxr work unit of components (this Built stands for all)
    parts: list[Built] | None = None


def fold_groups(built: Sequence[Built]) -> list[Built]:
    """The jobs of each xm.JobGroup folded into one Built of ``parts`` (one lxr work unit of
    components), in order. Work units whose groups have the same shape share an experiment:
    the key holds each part's name and key, and the parts' keyword args when they differ
    (the same args for every part are the work unit's)."""
    out: list[Built] = []
    groups: dict[tuple[int, int], Built] = {}
    for b in built:
        comp = b.task.component
        if comp is None:
            out.append(b)
            continue
        at = (b.task.work_unit.work_unit_id, comp[0])
        if at in groups:
            groups[at].parts.append(b)  # type: ignore[union-attr]
        else:
            groups[at] = dataclasses.replace(b, parts=[b])
            out.append(groups[at])
    for folded in groups.values():
        parts = folded.parts or []
        clusters = sorted({p.cluster for p in parts})
        if len(clusters) > 1:
            raise ValueError(
                f"a JobGroup's jobs run together on one cluster, not on {', '.join(clusters)}"
            )
        shared = all(p.args == parts[0].args for p in parts)
        folded.key = json.dumps(
            [[p.task.component[1], p.key, None if shared else p.args] for p in parts],  # type: ignore[index]
            sort_keys=True,
        )
        folded.args = parts[0].args if shared else {}
        folded.env = {}
    return out


def slug(title: str) -> str:
    """A name-safe form of an experiment title."""
    text = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return (text or "xm")[:36].strip("-") or "xm"


def artifacts_needed(tasks: Sequence[Task]) -> tuple[dict[str, dict[str, Blob]], dict[str, Blob]]:
    """``({cluster: {blob name: blob}}, {fileset uid: blob})``: what each cluster needs,
    including filesets named only in args or env (``fileset.get_path(...)`` in an arg)."""
    needs: dict[str, dict[str, Blob]] = {}
    extra_filesets: dict[str, Blob] = {}
    for task in tasks:
        job = task.job
        exe = job.executable
        assert isinstance(exe, ClusterExecutable)
        cluster, _, _ = executor_resources(job.executor)
        blobs = needs.setdefault(cluster, {})
        for blob in exe.blobs():
            blobs[blob.name] = blob
        merged = xm.merge_args(exe.args, job.args)
        texts = [str(v) for v in merged.to_list(str)]
        texts += [str(v) for v in {**exe.env_vars, **job.env_vars}.values()]
        for text in texts:
            for uid in PLACEHOLDER_RE.findall(text):
                if uid not in exe.filesets:
                    extra_filesets[uid] = build_fileset_blob(fileset_by_uid(uid))
                    blobs[extra_filesets[uid].name] = extra_filesets[uid]
    return needs, extra_filesets


def labelled_blobs(exe: ClusterExecutable) -> dict[str, tuple[str, Blob]]:
    """The executable's artifacts by staged name, each with what it is (its artifact name)."""
    out = {exe.blob.name: ("package", exe.blob)}
    for uid, blob in exe.filesets.items():
        out.setdefault(blob.name, (f"fileset-{uid}", blob))
    for label, extra in (("image", exe.image_blob), ("requirements", exe.requirements_blob)):
        if extra is not None:
            out.setdefault(extra.name, (label, extra))
    return out


def staged(blob: Blob) -> str:
    """Where ``blob`` will be on the cluster (the controller fills in the directory)."""
    return f"{STAGED_BLOBS}/{blob.name}"


def build_task(
    task: Task,
    extra: Mapping[str, Blob],
    cluster_spec: ClusterSpec,
) -> Built:
    """One task's command, resources and args on its cluster, naming its artifacts where the
    controller will stage them."""
    job = task.job
    exe = job.executable
    assert isinstance(exe, ClusterExecutable)
    cluster, resources, requeue = executor_resources(job.executor)
    roots = {b.name: staged(b) for b in exe.blobs()}
    paths = {uid: staged(b) for uid, b in {**exe.filesets, **extra}.items()}
    blobs = labelled_blobs(exe)
    executor = job.executor
    gpus = bool(resources.gpus)
    resources = resolve_accelerator(resources, cluster_spec, cluster)
    command, exec_env, workdir = runtime_command(
        exe, executor, roots, gpus=gpus, scheduler=cluster_spec.scheduler
    )
    if workdir is None and cluster_spec.ssh is None:
        # on this machine, tasks run beside the launch script, never in the cwd of
        # whichever process reconciles (lxr.api.paths); over SSH, in the login home
        workdir = resolve_path(".")
    merged = xm.merge_args(exe.args, job.args)
    positional, keywords = split_args(merged, paths)
    command += positional
    env = {k: substitute(str(v), paths) for k, v in {**exe.env_vars, **job.env_vars}.items()}
    # filesets named only in args or env are needed too
    texts = [str(v) for v in merged.to_list(str)]
    texts += [str(v) for v in {**exe.env_vars, **job.env_vars}.values()]
    for text in texts:
        for uid in PLACEHOLDER_RE.findall(text):
            if uid in extra:
                blobs.setdefault(extra[uid].name, (f"fileset-{uid}", extra[uid]))
    parallelism = executor.parallelism() if hasattr(executor, "parallelism") else None
    key = json.dumps(
        [
            command,
            exec_env,
            workdir,
            resources.model_dump(mode="json"),
            requeue.value,
            parallelism,
        ],
        sort_keys=True,
    )
    return Built(
        cluster,
        key,
        command,
        exec_env,
        workdir,
        resources,
        requeue,
        parallelism,
        keywords,
        env,
        task,
        blobs,
    )


def task_label(task: Task) -> str:
    """The lxr work unit's name of a task: its xm work unit id, ``.<n>`` when it has several."""
    wu = task.work_unit
    label = str(wu.work_unit_id)
    return label + (f".{task.number}" if len(wu.tasks) > 1 else "")


def add_dependencies(
    store: Store, experiments: Sequence[tuple[Experiment, Sequence[Built]]]
) -> None:
    """Each task's xm dependency as its lxr work unit's ``dependsOn``, naming the upstream
    tasks' lxr work units: those written now, before, or stored (a reattached unit)."""
    planned = {
        id(b.task): (exp.metadata.name, task_label(b.task))
        for exp, members in experiments
        for b in members
    }

    def names(wu: Any) -> list[tuple[str, str]]:
        found = []
        for t in wu.tasks:
            if id(t) in planned:
                found.append(planned[id(t)])
            elif t.ref is not None:
                found.append((t.ref[0], task_label(t)))
        for name, idx in wu._refs:  # rehydrated: the name is the stored unit's
            [unit] = store.list_work_units(name, index=idx)
            found.append((name, unit.metadata["labels"].get("name", str(idx))))
        return found

    for exp, members in experiments:
        templates = exp.spec.work_units or []
        for tpl, b in zip(templates, members, strict=True):
            dep = b.task.work_unit.dependency
            if dep is not None:
                tpl.depends_on = resolve_dependency(dep, names)


def group_tasks(built: Sequence[Built]) -> list[list[Built]]:
    """Tasks that can share one lxr Experiment (and so job arrays), in order."""
    groups: dict[tuple[str, str], list[Built]] = {}
    for b in built:
        groups.setdefault((b.cluster, b.key), []).append(b)
    return list(groups.values())


def lxr_experiment(
    name: str,
    experiment_id: int,
    annotations: Mapping[str, str],
    members: Sequence[Built],
    spec_overrides: Mapping[str, Any],
) -> Experiment:
    """The lxr Experiment of one group of tasks."""
    first = members[0]
    what = (
        _components(experiment_id, members)
        if first.parts
        else _one_executable(experiment_id, members)
    )
    overrides = dict(spec_overrides)
    # a request the scheduler refused (an unknown gres, partition or account) is refused
    # again: the work unit fails at once with the scheduler's words instead of retrying
    overrides.setdefault("failure_policy", REJECTED_IS_FINAL)
    if first.parallelism is not None:
        overrides.setdefault("parallelism", first.parallelism)
    ids = [
        [b.task.work_unit.work_unit_id, b.task.number, b.task.work_unit.identity] for b in members
    ]
    return Experiment(
        metadata=ObjectMeta(
            name=name,
            labels={LABEL_EXPERIMENT_ID: str(experiment_id)},
            annotations={**annotations, ANNOTATION_WORK_UNITS: json.dumps(ids)},
        ),
        spec=ExperimentSpec(
            cluster=first.cluster,
            requeue=first.requeue,
            **what,
            **overrides,
        ),
    )


def _artifacts(members: Sequence[Built]) -> list[ArtifactRef]:
    """The artifacts these tasks need (each once), as the executable records them."""
    blobs: dict[str, tuple[str, Blob]] = {}
    for b in members:
        for staged_name, item in b.blobs.items():
            blobs.setdefault(staged_name, item)
    return [
        ArtifactRef(
            name=label, digest=blob.digest, bytes=blob.size, suffix=blob.suffix, unpack=blob.unpack
        )
        for label, blob in blobs.values()
    ]


def _part(b: Built) -> str:
    """The component name of one job of a JobGroup."""
    return b.task.component[1]  # type: ignore[index]


def _one_executable(experiment_id: int, members: Sequence[Built]) -> dict[str, Any]:
    """The spec fields of tasks that run one executable: it, their resources, the units."""
    first = members[0]
    # env identical in every unit belongs to the executable; the rest to each unit
    common = dict(first.env)
    for b in members[1:]:
        common = {k: v for k, v in common.items() if b.env.get(k) == v}
    units = [
        WorkUnitTemplate(
            name=task_label(b.task),
            args=b.args,
            env={k: v for k, v in b.env.items() if k not in common},
        )
        for b in members
    ]
    executable = Executable(
        command=first.command,
        env={**first.exec_env, **common, "XM_EXPERIMENT_ID": str(experiment_id)},
        working_dir=first.working_dir,
        artifacts=_artifacts(members),
    )
    return {"executable": executable, "resources": first.resources, "work_units": units}


def _components(experiment_id: int, members: Sequence[Built]) -> dict[str, Any]:
    """The spec fields of work units that are each an xm.JobGroup: one component per job."""
    parts = members[0].parts or []
    shared = all(p.args == parts[0].args for p in parts)
    components = {
        p.task.component[1]: Component(  # type: ignore[index]
            executable=Executable(
                command=p.command,
                env={**p.exec_env, **p.env, "XM_EXPERIMENT_ID": str(experiment_id)},
                working_dir=p.working_dir,
                artifacts=_artifacts(
                    [q for b in members for q in b.parts or [] if _part(q) == _part(p)]
                ),
            ),
            resources=p.resources,
            args={} if shared else p.args,
        )
        for p in parts
    }
    units = [
        WorkUnitTemplate(name=str(b.task.work_unit.work_unit_id), args=b.args) for b in members
    ]
    return {"components": components, "work_units": units}


async def write_tasks(
    store: Store,
    tasks: Sequence[Task],
    make_experiment: Callable[[list[Built]], Experiment],
) -> list[str]:
    """Record the artifacts ``tasks`` need in the store's blob store, resolve the tasks and
    write them as lxr Experiments in one transaction; returns the experiments' names. Nothing
    is sent to a cluster here: the controller stages the artifacts before it submits."""
    # launches finish in any order (generators run concurrently): index by work unit id
    ordered = sorted(tasks, key=lambda t: (t.work_unit.work_unit_id, t.number))
    # 1. artifacts each cluster needs, including filesets named only in args/env
    needs, extra_filesets = artifacts_needed(ordered)
    # 2. their bytes into the store, by digest (a no-op for what it has)
    recorded: set[str] = set()
    for blobs in needs.values():
        for blob in blobs.values():
            if blob.digest not in recorded:
                recorded.add(blob.digest)
                store.put_artifact(blob.source, blob.digest)
    # 3. resolve every task against where its artifacts will be, group into lxr experiments
    specs = {c: store.get_cluster(c).spec for c in needs}
    built = [build_task(t, extra_filesets, specs[t.cluster]) for t in ordered]
    experiments = [
        (make_experiment(members), members) for members in group_tasks(fold_groups(built))
    ]
    # on a cluster of this machine the blob directory is known now: record real paths
    for i, (exp, members) in enumerate(experiments):
        root = local_blobs_root(exp.spec.cluster, specs[exp.spec.cluster])
        if root is not None:
            experiments[i] = (with_blobs_root(exp, root), members)
    add_dependencies(store, experiments)
    # 4. one transaction for all of them (their dependencies may name one another)
    batch = {exp.metadata.name: exp.spec for exp, _ in experiments}
    with store.transaction():
        for exp, _ in experiments:
            store.apply(exp, pending_experiments=batch)
    for exp, members in experiments:
        for idx, b in enumerate(members):
            for part in b.parts or [b]:
                part.task.ref = (exp.metadata.name, idx)
    return [exp.metadata.name for exp, _ in experiments]
