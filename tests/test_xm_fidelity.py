"""XManager's contract on lxr: identities stored and matched (adding twice adds once, element k
of args=[...] is <identity>_k), get_experiment(id) returns an experiment one can add to inside
or outside a with block, and the context (title, tags, notes, artifacts) is stored and shown by
`lxr get experiments -o wide` and `lxr describe`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xmanager")

from lxr import (
    xm,
    xm_cluster,
)
from lxr.store import Store

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "examples" / "xm" / "py_package"


def _lxr(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from lxr.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ,
        timeout=240,
        check=False,
    )


def _exe(experiment: xm_cluster.ClusterExperiment) -> xm.Executable:
    spec = xm_cluster.PythonPackage(
        path=str(PKG), entrypoint=xm_cluster.ModuleName("sweep_demo.train")
    )
    [exe] = experiment.package([xm.Packageable(spec, executor_spec=xm_cluster.Local.Spec())])
    return exe


def _identities(store: Store) -> list[tuple[str, dict]]:
    return sorted(
        (u.metadata["labels"]["name"], u.spec.args) for u in store.list_work_units(selector={})
    )


def test_identity_twice_adds_once_and_args_lists_get_indexed_identities(store: Store) -> None:
    with xm_cluster.create_experiment("ids", store=store, quiet=True) as experiment:
        exe = _exe(experiment)
        job = xm.Job(exe, xm_cluster.Local())
        experiment.add(job, args={"args": {"lr": 0.1}}, identity="base")
        experiment.add(job, args={"args": {"lr": 0.2}}, identity="base")  # adopted: not added
        experiment.add(job, args=[{"args": {"seed": s}} for s in range(3)], identity="sweep")
        experiment.add(job, args=[{"args": {"seed": s}} for s in range(3)], identity="sweep")
    assert experiment.work_unit_count == 4
    assert [wu.identity for wu in experiment.work_units.values()] == [
        "base",
        "sweep_0",
        "sweep_1",
        "sweep_2",
    ]
    assert _identities(store) == [
        ("1", {"lr": 0.1}),
        ("2", {"seed": 0}),
        ("3", {"seed": 1}),
        ("4", {"seed": 2}),
    ]


def test_rerun_with_the_same_identities_adds_nothing_get_experiment_add_adds_one(
    store: Store,
) -> None:
    with xm_cluster.create_experiment("again", store=store, quiet=True) as experiment:
        exe = _exe(experiment)
        for s in range(2):
            experiment.add(
                xm.Job(exe, xm_cluster.Local()), args={"args": {"seed": s}}, identity=f"seed{s}"
            )
    xid = experiment.experiment_id
    before = _identities(store)

    # the same launch again, reattached to the stored experiment: nothing new
    again = xm_cluster.get_experiment(xid, store=store)
    with again:
        exe = _exe(again)
        for s in range(2):
            again.add(
                xm.Job(exe, xm_cluster.Local()), args={"args": {"seed": s}}, identity=f"seed{s}"
            )
    assert _identities(store) == before and again.work_unit_count == 2

    # outside a with block: one more unit, id 3, written at once into the same xm experiment
    later = xm_cluster.get_experiment(xid, store=store)
    with xm_cluster.create_experiment("pkg", store=store, quiet=True) as other:
        exe = _exe(other)
    later.add(xm.Job(exe, xm_cluster.Local()), args={"args": {"seed": 9}}, identity="seed9")
    assert ("3", {"seed": 9}) in _identities(store)
    assert [
        e
        for e in store.list_experiments()
        if e.metadata.labels.get("xm.lxr.dev/experiment-id") == str(xid)
    ]
    reloaded = xm_cluster.get_experiment(xid, store=store)
    assert sorted(reloaded.work_units) == [1, 2, 3]
    assert reloaded.work_units[3].identity == "seed9"
    # and inside one: the same identity is adopted, a new one added as unit 4
    with reloaded:
        reloaded.add(xm.Job(exe, xm_cluster.Local()), args={"args": {"seed": 9}}, identity="seed9")
        reloaded.add(
            xm.Job(exe, xm_cluster.Local()), args={"args": {"seed": 10}}, identity="seed10"
        )
    assert sorted(xm_cluster.get_experiment(xid, store=store).work_units) == [1, 2, 3, 4]


def test_context_annotations_and_artifacts_are_stored_and_shown(store: Store) -> None:
    with xm_cluster.create_experiment("ctx", store=store, quiet=True) as experiment:
        experiment.context.annotations.tags.add("baseline")
        experiment.context.annotations.notes = "first try"
        experiment.add(xm.Job(_exe(experiment), xm_cluster.Local()), args={"args": {"seed": 1}})
    # after the write: stored at once
    experiment.context.annotations.title = "ctx [renamed]"
    experiment.context.annotations.tags.add("v2")
    experiment.context.artifacts["tensorboard"] = "file:///tmp/tb"
    [exp] = store.list_experiments()
    notes = exp.metadata.annotations
    assert notes["lxr.dev/title"] == "ctx [renamed]" and notes["lxr.dev/tags"] == "baseline,v2"
    assert notes["lxr.dev/notes"] == "first try"
    assert notes["lxr.dev/artifacts"] == '{"tensorboard": "file:///tmp/tb"}'
    wide = _lxr("get", "experiments", "-o", "wide")
    assert (
        "TITLE" in wide.stdout and "ctx [renamed]" in wide.stdout and "baseline,v2" in wide.stdout
    )
    described = _lxr("describe", "experiment", exp.metadata.name)
    assert "lxr.dev/notes=first try" in described.stdout
    assert "lxr.dev/title=ctx [renamed]" in described.stdout
    reloaded = xm_cluster.get_experiment(experiment.experiment_id, store=store)
    assert reloaded.experiment_title == "ctx [renamed]"
    assert set(reloaded.context.annotations.tags) == {"baseline", "v2"}
    assert dict(reloaded.context.artifacts) == {"tensorboard": "file:///tmp/tb"}


def test_get_current_experiment_inside_the_block(store: Store) -> None:
    with pytest.raises(RuntimeError, match="needs an experiment context"):
        xm_cluster.get_current_experiment()
    with xm_cluster.create_experiment("cur", store=store, quiet=True) as experiment:
        assert xm_cluster.get_current_experiment() is experiment


_SCHEDULER_COMMANDS = (
    "squeue",
    "sacct",
    "sbatch",
    "scancel",
    "scontrol",
    "qstat",
    "qacct",
    "qsub",
    "qdel",
)


@pytest.mark.integration
@pytest.mark.slow
def test_waiting_reads_the_store_zero_scheduler_calls_from_the_launch_process(
    dev_cluster: dict[str, str], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import time

    from lxr.api.loader import load_objects
    from lxr.schedulers.ssh import SSHTransport
    from lxr.schedulers.transport import LocalTransport

    for loaded in load_objects(REPO / "examples" / "slurm" / "cluster.yaml"):
        store.apply(loaded.obj)
    commands: list[str] = []
    for cls in (SSHTransport, LocalTransport):
        real_run = cls._run

        async def counting(self, argv, input, _real=real_run):  # type: ignore[no-untyped-def]
            commands.append(" ".join(argv))
            return await _real(self, argv, input)

        monkeypatch.setattr(cls, "_run", counting)
    real_files = SSHTransport.run_with_files

    async def counting_files(self, argv, files, *a, **k):  # type: ignore[no-untyped-def]
        commands.append(" ".join(argv))
        return await real_files(self, argv, files, *a, **k)

    monkeypatch.setattr(SSHTransport, "run_with_files", counting_files)

    async def launch() -> tuple[float, list[str]]:
        async with xm_cluster.create_experiment("wait", store=store, quiet=True) as experiment:
            spec = xm_cluster.PythonPackage(
                path=str(PKG), entrypoint=xm_cluster.CommandList(["sleep 15"])
            )
            [exe] = experiment.package(
                [xm.Packageable(spec, executor_spec=xm_cluster.Slurm.Spec())]
            )
            executor = xm_cluster.Slurm(walltime=300, cluster="dev-slurm")
            wus = [await experiment.add(xm.Job(exe, executor)) for _ in range(3)]
            start = time.monotonic()
            await asyncio.gather(*[wu.wait_until_complete() for wu in wus])
            statuses = [wu.get_status() for wu in wus]
            assert all(s.is_completed for s in statuses), statuses
            return time.monotonic() - start, list(commands)

    waited, seen = asyncio.run(launch())
    assert waited >= 15  # several controller cycles, none of them the launch process's
    scheduler_calls = [c for c in seen if any(name in c for name in _SCHEDULER_COMMANDS)]
    assert scheduler_calls == [], scheduler_calls
    # staging is the controller's too (issue 16): the launch process ran nothing on the cluster
    assert seen == [], seen

    async def probe() -> None:  # and the counter counts what this process does run
        transport = SSHTransport(store.get_cluster("dev-slurm").spec.ssh)  # type: ignore[arg-type]
        try:
            await transport.run(["true"])
        finally:
            await transport.close()

    asyncio.run(probe())
    assert commands == ["true"], "the counter works"
    [exp] = store.list_experiments()
    assert exp.status.phase.value == "Succeeded"
    assert len({u.status.attempts[0].job_id for u in store.list_work_units(exp.metadata.name)}) == 1


def test_list_and_dict_args_render_as_xmanager_renders_them(store: Store) -> None:
    with xm_cluster.create_experiment("lists", store=store, quiet=True) as experiment:
        exe = _exe(experiment)
        experiment.add(
            xm.Job(
                exe, xm_cluster.Local(), args={"layers": [64, 32], "opt": {"lr": 0.1}, "seed": 1}
            )
        )
    [exp] = store.list_experiments()
    [unit] = store.list_work_units(exp.metadata.name)
    # a flat list repeats the flag (absl's multi-flags); a dict is passed as its str()
    assert exp.spec.executable.command[-2:] == ["--layers=64", "--layers=32"]
    assert unit.spec.args == {"opt": "{'lr': 0.1}", "seed": 1}
    expected = xm.SequentialArgs.from_collection(
        {"layers": [64, 32], "opt": {"lr": 0.1}, "seed": 1}
    )
    assert expected.to_list(xm.utils.ARGV_ESCAPER) == [
        "--layers=64",
        "--layers=32",
        "--opt={'lr': 0.1}",
        "--seed=1",
    ]


@pytest.mark.slow
def test_task_sees_xmanager_ids_and_logs_read_its_output(store: Store, tmp_path: Path) -> None:
    from lxr.testing import converge

    script = tmp_path / "ids.sh"
    with xm_cluster.create_experiment("ids-env", store=store, quiet=True) as experiment:
        spec = xm_cluster.PythonPackage(
            path=str(PKG),
            entrypoint=xm_cluster.CommandList(['echo "xm=$XM_EXPERIMENT_ID wu=$LXR_WORK_UNIT"']),
        )
        [exe] = experiment.package([xm.Packageable(spec, executor_spec=xm_cluster.Local.Spec())])
        for _ in range(2):
            experiment.add(xm.Job(exe, xm_cluster.Local()))
    del script
    names = [e.metadata.name for e in store.list_experiments()]
    converge(store, names, timeout=120)
    for wu_id, wu in experiment.work_units.items():
        assert wu.logs().strip() == f"xm={experiment.experiment_id} wu={wu_id - 1}"
        assert wu.logs(stderr=True) == ""


def test_get_current_work_unit_in_a_generator_and_from_a_tasks_environment(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []

    async def generator(work_unit: xm.WorkUnit) -> None:
        seen.append(xm_cluster.get_current_work_unit() is work_unit)
        await work_unit.add(xm.Job(exe, xm_cluster.Local()))

    with xm_cluster.create_experiment("gen", store=store, quiet=True) as experiment:
        exe = _exe(experiment)
        experiment.add(generator)
        experiment.add(generator)
    assert seen == [True, True]
    monkeypatch.setenv("XM_EXPERIMENT_ID", str(experiment.experiment_id))
    [name] = {name for wu in experiment.work_units.values() for name, _ in wu.refs}
    monkeypatch.setenv("LXR_EXPERIMENT", name)
    monkeypatch.setenv("LXR_WORK_UNIT", "1")
    monkeypatch.setenv("XDG_STATE_HOME", os.environ["XDG_STATE_HOME"])
    unit = xm_cluster.get_current_work_unit()
    assert unit.work_unit_id == 2
    monkeypatch.delenv("XM_EXPERIMENT_ID")
    with pytest.raises(RuntimeError, match="XM_EXPERIMENT_ID, LXR_EXPERIMENT and LXR_WORK_UNIT"):
        xm_cluster.get_current_work_unit()


@pytest.mark.integration
@pytest.mark.slow
def test_an_ssh_launch_is_quiet(dev_cluster: dict[str, str], store: Store) -> None:
    applied = _lxr("apply", "-f", str(REPO / "examples" / "slurm" / "cluster.yaml"))
    assert applied.returncode == 0, applied.stderr
    # the script run as `python launch_slurm.py` (absl logging), as users of lxm3 do
    res = subprocess.run(
        [sys.executable, str(REPO / "examples" / "xm" / "launch_slurm.py")],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    output = res.stdout + res.stderr
    assert "asyncssh" not in output, output
    assert "Task was destroyed but it is pending" not in output, output
    assert "staging:" in res.stdout
