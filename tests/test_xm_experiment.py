"""XManager launch scripts on lxr: sweeps become work units, written in one transaction, run
to Succeeded on the local cluster; work units follow XManager's contract."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("xmanager")

from xmanager import xm

from lxr import xm_cluster
from lxr.store import Store
from lxr.testing import converge

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "xm"
PKG = EXAMPLES / "py_package"
NO_RETRY = {"backoff_limit_per_index": 0}


def _lxr(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lxr")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, cwd=cwd, env=os.environ, timeout=240
    )


def _package(experiment: xm_cluster.ClusterExperiment, path: Path = PKG) -> xm.Executable:
    spec = xm_cluster.PythonPackage(
        path=str(path), entrypoint=xm_cluster.ModuleName("sweep_demo.train")
    )
    [executable] = experiment.package([xm.Packageable(spec, executor_spec=xm_cluster.Local.Spec())])
    return executable


def _units(store: Store) -> list[tuple[str, dict, dict, str]]:
    return [
        (u.metadata["labels"].get("name", ""), u.spec.args, u.spec.env, u.status.phase.value)
        for u in store.list_work_units(selector={})
    ]


@pytest.mark.slow
def test_local_example_launch_runs_to_succeeded(store: Store) -> None:
    res = _lxr("launch", str(EXAMPLES / "launch_local.py"), "--", "--seeds=2", "--lrs=0.1")
    assert res.returncode == 0, res.stderr
    assert "staging: 1 artifacts," in res.stdout
    [exp] = store.list_experiments()
    assert exp.status.work_units["total"] == 2
    converge(store, [exp.metadata.name], timeout=120)
    [exp] = store.list_experiments()
    assert exp.status.phase.value == "Succeeded"
    assert [(a["lr"], a["seed"]) for _, a, _, _ in _units(store)] == [(0.1, 0), (0.1, 1)]


def test_unchanged_code_uploads_zero_bytes_changed_code_only_the_change(
    store: Store, tmp_path: Path
) -> None:
    src = tmp_path / "pkg"
    shutil.copytree(PKG, src)
    config = tmp_path / "config.txt"
    config.write_text("depth=3\n")

    def launch() -> xm_cluster.ClusterExperiment:
        with xm_cluster.create_experiment("bytes", store=store, quiet=True) as experiment:
            files = xm_cluster.Fileset(files={str(config): "config.txt"})
            spec = xm_cluster.PythonPackage(
                path=str(src),
                entrypoint=xm_cluster.ModuleName("sweep_demo.train"),
                resources=[files],
            )
            [exe] = experiment.package(
                [
                    xm.Packageable(
                        spec,
                        executor_spec=xm_cluster.Local.Spec(),
                        args={"config": files.get_path("config.txt")},
                    )
                ]
            )
            for seed in range(3):  # packaging is per artifact, not per work unit
                experiment.add(xm.Job(exe, xm_cluster.Local(), args={"seed": seed}))
        return experiment

    first = launch().staging_reports
    assert [(r.artifacts, r.uploaded) for r in first] == [(2, 2)]
    assert first[0].bytes_uploaded > 0
    second = launch().staging_reports
    assert [(r.artifacts, r.present, r.bytes_uploaded) for r in second] == [(2, 2, 0)]
    (src / "src" / "sweep_demo" / "extra.py").write_text("X = 1\n")
    third = launch().staging_reports
    assert [(r.uploaded, r.present) for r in third] == [(1, 1)]
    assert 0 < third[0].bytes_uploaded < first[0].bytes_uploaded + 2000
    # what the controller exports as lxr_staging_bytes_total: recorded in the store by launches
    assert store.staged_bytes() == {"local": first[0].bytes_uploaded + third[0].bytes_uploaded}
    # the fileset path in args was rewritten to its staged directory, and the task reads it
    exps = store.list_experiments()
    converge(store, [exps[-1].metadata.name], timeout=120)
    unit = store.list_work_units(exps[-1].metadata.name)[0]
    assert unit.status.phase.value == "Succeeded"
    assert unit.spec.args["config"].endswith("/config.txt")
    assert Path(unit.spec.args["config"]).read_text() == "depth=3\n"


def test_script_raising_midway_writes_nothing_and_shows_its_traceback(
    store: Store, tmp_path: Path
) -> None:
    script = tmp_path / "broken_launcher.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from xmanager import xm
            from lxr import xm_cluster

            def explode():
                raise RuntimeError("boom in the launch script")

            with xm_cluster.create_experiment("broken") as experiment:
                spec = xm_cluster.PythonPackage(
                    path={str(PKG)!r}, entrypoint=xm_cluster.ModuleName("sweep_demo.train")
                )
                [exe] = experiment.package([xm.Packageable(spec, xm_cluster.Local.Spec())])
                experiment.add(xm.Job(exe, xm_cluster.Local(), args={{"seed": 1}}))
                experiment.add(xm.Job(exe, xm_cluster.Local(), args={{"seed": 2}}))
                explode()
            """
        )
    )
    res = _lxr("launch", str(script))
    assert res.returncode == 1
    assert "RuntimeError: boom in the launch script" in res.stderr
    assert f'File "{script}", line 15, in <module>' in res.stderr
    assert "in explode" in res.stderr
    assert "runpy" not in res.stderr and "lxr/xm_cluster" not in res.stderr
    assert store.list_experiments() == []


def test_store_transaction_is_all_or_nothing(store: Store) -> None:
    from lxr.api.resources import Executable, Experiment, ExperimentSpec, ObjectMeta
    from lxr.store import Invalid

    ok = Experiment(
        metadata=ObjectMeta(name="tx-ok"),
        spec=ExperimentSpec(executable=Executable(command=["true"])),
    )
    bad = Experiment(
        metadata=ObjectMeta(name="tx-bad"),
        spec=ExperimentSpec(cluster="nowhere", executable=Executable(command=["true"])),
    )
    with pytest.raises(Invalid), store.transaction():
        store.apply(ok)
        store.apply(bad)
    assert store.list_experiments() == []


def test_sweep_idioms_loops_args_lists_generators_and_array_jobs(store: Store) -> None:
    with xm_cluster.create_experiment("idioms", store=store, quiet=True) as experiment:
        exe = _package(experiment)
        local = xm_cluster.Local()
        # plain loop
        for lr in (0.1, 0.2):
            experiment.add(xm.Job(exe, local, args={"lr": lr}))
        # xmanager-slurm: one work unit per element
        experiment.add(
            xm.Job(exe, local),
            args=[{"args": {"seed": s}, "env_vars": {"S": str(s)}} for s in (7, 8)],
        )

        # job generator
        async def gen(work_unit: xm.WorkUnit, **args: object) -> None:
            work_unit.add(xm.Job(exe, local, args={"seed": args["seed"], "lr": 0.5}))

        experiment.add(gen, args={"seed": 9})
        # lxm3 ArrayJob: per-task args, one env broadcast to all
        experiment.add(
            xm_cluster.ArrayJob(
                exe, local, args=[{"seed": 1}, {"seed": 2}], env_vars=[{"TASK": "a"}]
            )
        )
    assert experiment.work_unit_count == 6
    [lxr_exp] = store.list_experiments()  # one cluster, one executable: one job array
    assert lxr_exp.spec.executable.command == ["python3", "-m", "sweep_demo.train"]
    assert lxr_exp.spec.executable.env["PYTHONPATH"].endswith(".zip")
    assert [(n, a, e) for n, a, e, _ in _units(store)] == [
        ("1", {"lr": 0.1}, {}),
        ("2", {"lr": 0.2}, {}),
        ("3", {"seed": 7}, {"S": "7"}),
        ("4", {"seed": 8}, {"S": "8"}),
        ("5", {"seed": 9, "lr": 0.5}, {}),
        ("6.0", {"seed": 1}, {"TASK": "a"}),
        ("6.1", {"seed": 2}, {"TASK": "a"}),
    ]
    wu6 = experiment.work_units[6]
    assert [j.address for j in wu6.launched_jobs] == [
        f"{lxr_exp.metadata.name}/5",
        f"{lxr_exp.metadata.name}/6",
    ]
    again = xm_cluster.get_experiment(experiment.experiment_id, store=store)
    assert again.work_unit_count == 6 and again.work_units[6].refs == wu6.refs
    with pytest.raises(xm.NotFoundError):
        xm_cluster.get_experiment(12345, store=store)


def test_array_job_broadcast_rules() -> None:
    exe, ex = object(), xm_cluster.Local()
    job = xm_cluster.ArrayJob(exe, ex, args=[{"a": 1}], env_vars=[{"E": 1}, {"E": 2}])  # type: ignore[arg-type]
    assert job.tasks() == [({"a": 1}, {"E": "1"}), ({"a": 1}, {"E": "2"})]
    with pytest.raises(ValueError, match="same number"):
        xm_cluster.ArrayJob(exe, ex, args=[{}, {}], env_vars=[{}, {}, {}]).tasks()  # type: ignore[arg-type]


@pytest.mark.slow
def test_work_unit_wait_status_and_stop(store: Store) -> None:
    @xm.run_in_asyncio_loop
    async def main() -> tuple:
        async with xm_cluster.create_experiment(
            "contract", store=store, quiet=True, spec_overrides=NO_RETRY
        ) as experiment:
            exe = _package(experiment)
            ok = await experiment.add(xm.Job(exe, xm_cluster.Local(), args={"seed": 1}))
            bad = await experiment.add(xm.Job(exe, xm_cluster.Local(), args={"fail": True}))
            before = ok.get_status()
            assert before.is_active and not before.is_completed
            done = await ok.wait_until_complete()  # writes what was added, reconciles here
            with pytest.raises(xm.ExperimentUnitFailedError):
                await bad.wait_until_complete()
            # a long unit and a short neighbour in ONE lxr experiment (one job array): stopping
            # the long one cancels it alone, the neighbour still completes
            slow = await experiment.add(xm.Job(exe, xm_cluster.Local(), args={"sleep": 60.0}))
            quick = await experiment.add(
                xm.Job(exe, xm_cluster.Local(), args={"seed": 3, "sleep": 2.0})
            )
            await experiment._write_pending()
            assert slow.refs[0][0] == quick.refs[0][0]
            while slow.get_status().phases != ("Running",):
                await experiment._reconcile_step()
            slow.stop()
            with pytest.raises(xm.ExperimentUnitNotCompletedError):
                await slow.wait_until_complete()
            await quick.wait_until_complete()
            return (
                done is ok,
                ok.get_status(),
                bad.get_status(),
                slow.get_status(),
                quick.get_status(),
                slow.refs[0],
            )

    same, ok_status, bad_status, slow_status, quick_status, (name, idx) = main()
    assert same
    assert ok_status.is_completed and not ok_status.is_active and not ok_status.is_failed
    assert bad_status.is_failed and not bad_status.is_completed
    assert slow_status.phases == ("Stopped",)
    assert not (slow_status.is_active or slow_status.is_completed or slow_status.is_failed)
    assert quick_status.is_completed
    [unit] = store.list_work_units(name, index=idx)
    assert unit.status.reason == "StopRequested"
    assert len(unit.status.attempts) == 1, "a stopped unit is never resubmitted"
    assert store.get_experiment(name).status.phase.value == "Stopped"


def test_status_mapping_backoff_is_active_stopped_is_neither() -> None:
    from lxr.xm_cluster import WorkUnitStatus

    assert WorkUnitStatus(["BackOff"]).is_active
    stopped = WorkUnitStatus(["Stopped"])
    assert not (stopped.is_active or stopped.is_completed or stopped.is_failed)
    mixed = WorkUnitStatus(["Succeeded", "Failed"])
    assert mixed.is_failed and not mixed.is_completed


def test_cli_help_and_apply_do_not_import_xmanager(state_home: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from lxr.cli.main import main
        for argv in (["lxr", "--help"], ["lxr", "apply", "--dry-run", "-f", sys.argv[1]]):
            sys.argv = argv
            try:
                main()
            except SystemExit:
                pass
        print("XM-IMPORTED" if "xmanager" in sys.modules else "XM-FREE")
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "examples" / "quickstart.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.stdout.strip().splitlines()[-1] == "XM-FREE", res.stdout + res.stderr


def test_experiment_sync_with_inside_running_loop_is_refused(store: Store) -> None:
    async def main() -> None:
        with xm_cluster.create_experiment("x", store=store, quiet=True):
            pass

    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(main())
