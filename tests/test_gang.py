"""Work units of several ranks (nodes x tasksPerNode), daemon-free: the resources model, what
each scheduler refuses, the Slurm job script (srun, rendezvous), the rank launcher's records,
reading the ranks' exit codes, and the planner recording them in the attempt."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import anyio
import pytest
from pydantic import ValidationError

from lxr.api.capabilities import unsupported
from lxr.api.resources import Executable, Experiment, ExperimentSpec, FailureReason, Resources
from lxr.reconciler.actions import UpdateStatus
from lxr.reconciler.cycle import observe_query
from lxr.reconciler.planner import plan_experiment
from lxr.schedulers.base import ArrayJob, ObserveQuery, TaskObservation, TaskPhase, TaskSpec
from lxr.schedulers.jobscript import render_template
from lxr.schedulers.slurm.driver import SlurmDriver
from lxr.schedulers.slurm.render import sbatch_options
from lxr.schedulers.transport import LocalTransport
from lxr.store import Invalid, Store
from tests.test_planner import NOW, attempt, exp, only, snap, task, wu

GANG = Resources(nodes=2, tasks_per_node=2, cpus=1)


def test_resources_of_several_ranks() -> None:
    res = Resources.model_validate(
        {"nodes": 3, "tasksPerNode": 4, "gpusPerTask": 1, "memoryPerCpu": "2Gi", "cpus": 2}
    )
    assert (res.nodes, res.tasks_per_node, res.gpus_per_task) == (3, 4, 1)
    assert res.ranks == 12 and res.gang
    assert Resources().ranks == 1 and not Resources().gang
    assert Resources(nodes=1, tasks_per_node=1).ranks == 1
    with pytest.raises(ValidationError, match="memory .per node. or memoryPerCpu"):
        Resources.model_validate({"memory": "1Gi", "memoryPerCpu": "1Gi"})
    with pytest.raises(ValidationError):
        Resources.model_validate({"nodes": 0})
    with pytest.raises(ValidationError, match="not a memory quantity"):
        Resources.model_validate({"memoryPerCpu": "lots"})
    # the experiment's memory per CPU wins over the cluster's default memory per node
    merged = Resources.model_validate({"memoryPerCpu": "1Gi"}).merged_over(
        Resources(memory="256Mi", cpus=1)
    )
    assert (merged.memory, merged.memory_per_cpu, merged.cpus) == (None, "1Gi", 1)
    merged = Resources(memory="2Gi").merged_over(Resources.model_validate({"memoryPerCpu": "1Gi"}))
    assert (merged.memory, merged.memory_per_cpu) == ("2Gi", None)


def test_each_scheduler_says_what_it_cannot_run() -> None:
    assert unsupported("slurm", GANG, components=2) == []
    assert unsupported("slurm", Resources(gpus_per_task=2, memory_per_cpu="1Gi")) == []
    local = unsupported("local", GANG)
    assert local == [
        "spec.resources.nodes: 2: not possible on a local cluster: the local cluster is this "
        "one machine",
        "spec.resources.tasksPerNode: 2: not possible on a local cluster: the local scheduler "
        "starts one process per work unit (use a Slurm or Grid Engine cluster for several ranks)",
    ]
    assert unsupported("sge", GANG) == []
    (sge,) = unsupported("sge", Resources(), components=2)
    assert sge.startswith("spec.components (2 components): not possible on a sge cluster: ")
    assert "Grid Engine has no heterogeneous jobs" in sge
    (gpus,) = unsupported("sge", Resources(gpus_per_task=1))
    assert "gpusPerTask: 1" in gpus and "use gpus" in gpus


def test_apply_refuses_several_nodes_on_the_local_cluster(store: Store) -> None:
    doc = {
        "metadata": {"name": "ddp-local"},
        "spec": {"executable": {"command": ["true"]}, "resources": {"nodes": 2}},
    }
    with pytest.raises(Invalid, match="spec.resources.nodes: 2: not possible on a local"):
        store.apply(Experiment.model_validate(doc))
    with pytest.raises(Exception, match="ddp-local"):
        store.get_experiment("ddp-local")  # nothing was written


def _job(resources: Resources, n: int = 1) -> ArrayJob:
    tasks = [TaskSpec(i, ["python3", "train.py"], work_unit=i) for i in range(n)]
    return ArrayJob("tag1", "ddp", "uid", tasks, resources)


def test_sbatch_options_of_several_ranks() -> None:
    opts = sbatch_options(_job(Resources(nodes=2, tasks_per_node=2, cpus=3)), "/s/jobs/tag1")
    assert "--nodes=2" in opts and "--ntasks-per-node=2" in opts and "--cpus-per-task=3" in opts
    opts = sbatch_options(
        _job(Resources(tasks_per_node=4, gpus_per_task=1, gpu_type="a100", memory_per_cpu="1Gi")),
        "/s",
    )
    assert {"--nodes=1", "--ntasks-per-node=4", "--gpus-per-task=a100:1"} <= set(opts)
    assert "--mem-per-cpu=1024M" in opts and not any(o.startswith("--mem=") for o in opts)
    # a plain task keeps its lines exactly as before
    plain = sbatch_options(_job(Resources(cpus=2, memory="1Gi")), "/s")
    assert not any(o.startswith(("--nodes", "--ntasks")) for o in plain)


def test_the_slurm_job_script_starts_every_rank_with_srun() -> None:
    driver = SlurmDriver("c", LocalTransport(), "/st")
    files, argv = driver.render(_job(GANG, n=3))
    script = files["/st/jobs/tag1/job.sbatch"].decode()
    assert argv == ["sbatch", "--parsable", "--array=0-2", "/st/jobs/tag1/job.sbatch"]
    assert "srun --kill-on-bad-exit=1 --nodes=2 --ntasks=4" in script
    assert "--ntasks-per-node=2 --cpus-per-task=1" in script
    assert "export WORLD_SIZE=4 LOCAL_WORLD_SIZE=2" in script
    assert "RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID NODE_RANK=$SLURM_NODEID" in script
    assert 'MASTER_PORT=$(lxr_master_port "$SLURM_JOB_ID")' in script
    assert '/st/jobs/tag1/logs/"$SLURM_ARRAY_TASK_ID".rank%t.out' in script
    assert "exec bash /st/jobs/tag1/run-task.sh" not in script
    plain = SlurmDriver("c", LocalTransport(), "/st").render(_job(Resources(cpus=1)))[0]
    text = plain["/st/jobs/tag1/job.sbatch"].decode()
    assert (
        "srun" not in text and 'exec bash /st/jobs/tag1/run-task.sh /st/jobs/tag1 "$SLURM' in text
    )


def _bash(script: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    lib = render_template("gang.sh.j2")
    return subprocess.run(
        ["bash", "-c", lib + "\n" + script],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=30,
        check=False,
    )


def test_the_task_exits_with_the_code_of_the_rank_that_failed_first(tmp_path: Path) -> None:
    ranks = tmp_path / "ranks" / "0"
    ranks.mkdir(parents=True)
    # rank 2 failed first (exit 3); srun then ended ranks 0 and 1 (143), rank 3 wrote nothing
    (ranks / "0").write_text("143 1700000010.5\n")
    (ranks / "1").write_text("143 1700000010.25\n")
    (ranks / "2").write_text("3 1700000009.75\n")
    (ranks / ".3.tmp").write_text("0 1\n")
    res = _bash('lxr_gang_exit 137 ranks/0 exit/0; echo "rc=$?"', tmp_path)
    assert res.stdout.strip() == "rc=3"
    assert "lxr: rank 2 exited 3 first" in res.stderr
    assert (tmp_path / "exit" / "0").read_text() == "3\n"
    # every rank succeeded: the launcher's own code
    for r in range(3):
        (ranks / str(r)).write_text(f"0 17000000{r}0.0\n")
    res = _bash('lxr_gang_exit 0 ranks/0 exit/0; echo "rc=$?"', tmp_path)
    assert res.stdout.strip() == "rc=0" and (tmp_path / "exit" / "0").read_text() == "0\n"
    # the launcher failed before any rank started (srun refused): its code
    res = _bash('lxr_gang_exit 1 ranks/9 exit/9; echo "rc=$?"', tmp_path)
    assert res.stdout.strip() == "rc=1"


def test_the_master_port_follows_the_job_id_and_skips_listening_ports(tmp_path: Path) -> None:
    a = _bash("lxr_master_port 1187", tmp_path).stdout.strip()
    b = _bash("lxr_master_port 1188", tmp_path).stdout.strip()
    assert int(a) >= 21187 and int(b) >= 21188 and a != b
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        if 20000 <= port < 30000:  # only a port in lxr's range can be chosen
            job = port - 20000
            assert _bash(f"lxr_master_port {job}", tmp_path).stdout.strip() != str(port)


def test_the_ranks_exit_codes_are_read_once_a_task_ended(tmp_path: Path) -> None:
    driver = SlurmDriver("c", LocalTransport(), str(tmp_path))
    job_dir = tmp_path / "jobs" / "tag1"
    for idx, codes in {0: {0: "0 5.0", 1: "0 6.0"}, 1: {0: "143 9.0", 2: "7 8.0"}}.items():
        (job_dir / "ranks" / str(idx)).mkdir(parents=True)
        for rank, line in codes.items():
            (job_dir / "ranks" / str(idx) / str(rank)).write_text(line + "\n")
    (tmp_path / "byid").mkdir()
    (tmp_path / "byid" / "31").symlink_to(job_dir)
    tasks = {
        ("31", 0): TaskObservation("31", 0, TaskPhase.SUCCEEDED, "COMPLETED", exit_code=0),
        ("31", 1): TaskObservation("31", 1, TaskPhase.FAILED, "FAILED", exit_code=7),
        ("31", 2): TaskObservation("31", 2, TaskPhase.RUNNING, "RUNNING"),
    }
    query = ObserveQuery({"31": frozenset({0, 1, 2})}, gangs={"31": 3})
    anyio.run(driver.read_rank_exits, tasks, query)
    assert tasks[("31", 0)].rank_exit_codes == (0, 0, None)
    assert tasks[("31", 0)].first_failed_rank is None
    assert tasks[("31", 1)].rank_exit_codes == (143, None, 7)
    assert tasks[("31", 1)].first_failed_rank == 2  # it ended before rank 0 did
    assert tasks[("31", 2)].rank_exit_codes is None  # still running: not read


def test_the_observe_query_names_the_jobs_of_several_ranks() -> None:
    spec = ExperimentSpec(executable=Executable(command=["x"]), resources=GANG)
    record = exp(wu(0, attempt("42")), wu(1, attempt(None, index=1, sub="Intent")), spec=spec)
    query = observe_query([record])
    assert dict(query.gangs) == {"42": 4} and set(query.jobs) == {"42"}
    assert dict(observe_query([exp(wu(0, attempt("42")))]).gangs) == {}


def test_an_ended_attempt_keeps_its_ranks_exit_codes() -> None:
    spec = ExperimentSpec(executable=Executable(command=["x"]), resources=GANG)
    failed = task(
        TaskPhase.FAILED,
        reason=FailureReason.ERROR,
        exit_code=3,
        rank_exit_codes=(143, 3, 143, 143),
        first_failed_rank=1,
    )
    actions = plan_experiment(exp(wu(0, attempt("42")), spec=spec), snap(failed), NOW)
    (update,) = only(actions, UpdateStatus)
    (ended,) = [a for a in update.attempts if a.final]
    assert ended.rank_exit_codes == (143, 3, 143, 143) and ended.first_failed_rank == 1
    (patch,) = update.work_units
    assert patch.phase == "BackOff" and patch.failures == 1  # a rank's failure is counted


def test_grid_engine_asks_for_the_slots_of_every_rank() -> None:
    from lxr.schedulers.sge.driver import SGEDriver

    res = Resources.model_validate(
        {
            "nodes": 2,
            "tasksPerNode": 2,
            "cpus": 2,
            "memory": "4Gi",
            "sge": {"parallelEnvironment": "mpi"},
        }
    )
    files, argv = SGEDriver("c", LocalTransport(), "/st").render(_job(res))
    assert argv[argv.index("-pe") : argv.index("-pe") + 3] == ["-pe", "mpi", "8"]
    assert "h_vmem=1024M" in argv  # 4Gi per node over its 2 ranks x 2 CPUs
    script = files["/st/jobs/tag1/job.sge"].decode()
    assert 'lxr_pe_ranks /st/jobs/tag1 "$SGE_TASK_ID" 4 2' in script
    assert "export MASTER_ADDR MASTER_PORT WORLD_SIZE=4" in script
    # without a parallel environment of its own: the cluster's
    plain = SGEDriver("c", LocalTransport(), "/st").render(_job(Resources(tasks_per_node=3)))[1]
    assert plain[plain.index("-pe") : plain.index("-pe") + 3] == ["-pe", "smp", "3"]
    per_cpu = SGEDriver("c", LocalTransport(), "/st").render(
        _job(Resources.model_validate({"tasksPerNode": 2, "memoryPerCpu": "512Mi"}))
    )[1]
    assert "h_vmem=512M" in per_cpu


def _pe_job(tmp_path: Path, program: str) -> Path:
    from lxr.schedulers.jobscript import job_files

    job_dir = tmp_path / "job"
    job = ArrayJob("t", "e", "u", [TaskSpec(1, ["bash", "-c", program])], GANG)
    for path, data in job_files(job, str(job_dir)).items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    (job_dir / "logs").mkdir()
    return job_dir


def _pe_run(tmp_path: Path, job_dir: Path, hostfile: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pe_hostfile").write_text(hostfile)
    script = (
        f"export PE_HOSTFILE={tmp_path}/pe_hostfile MASTER_ADDR=h MASTER_PORT=1 WORLD_SIZE=4; "
        f"lxr_pe_ranks {job_dir} 1 4 1; "
        f"lxr_gang_exit $? {job_dir}/ranks/1 {job_dir}/exit/1; echo rc=$?"
    )
    return _bash(script, tmp_path)


def test_the_ranks_of_a_parallel_environment_start_from_its_host_file(tmp_path: Path) -> None:
    job_dir = _pe_job(tmp_path, 'echo "$RANK $LOCAL_RANK $NODE_RANK $LOCAL_WORLD_SIZE $WORLD_SIZE"')
    host = subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    res = _pe_run(tmp_path, job_dir, f"{host} 4 all.q@{host} UNDEFINED\n")
    assert res.stdout.strip() == "rc=0", res.stderr
    lines = [(job_dir / "logs" / f"1.rank{r}.out").read_text().split() for r in range(4)]
    assert lines == [[str(r), str(r), "0", "4", "4"] for r in range(4)]
    assert sorted(p.name for p in (job_dir / "ranks" / "1").iterdir()) == ["0", "1", "2", "3"]
    assert (job_dir / "exit" / "1").read_text() == "0\n"


def test_a_failing_rank_ends_the_other_ranks_of_the_parallel_environment(tmp_path: Path) -> None:
    program = 'if [ "$RANK" = 1 ]; then sleep 0.5; exit 5; fi; echo $$ > "$LXR_JOB_DIR/pid.$RANK"; exec sleep 60'
    job_dir = _pe_job(tmp_path, program)
    host = subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    started = time.monotonic()
    res = _pe_run(tmp_path, job_dir, f"{host} 4 all.q@{host} UNDEFINED\n")
    assert time.monotonic() - started < 30  # not the others' 60 s
    assert res.stdout.strip() == "rc=5" and "rank 1 exited 5 first" in res.stderr
    codes = {p.name: p.read_text().split()[0] for p in (job_dir / "ranks" / "1").iterdir()}
    assert codes["1"] == "5" and {codes[r] for r in "023"} == {"143"}
    # a host file with fewer slots than ranks is an error, not fewer ranks
    res = _pe_run(tmp_path, _pe_job(tmp_path / "b", "true"), f"{host} 2 q UNDEFINED\n")
    assert res.stdout.strip() == "rc=99" and "slots for 2 of 4 ranks" in res.stderr


def test_replicas_and_the_topology_idiom_become_ranks() -> None:
    from xmanager import xm

    from lxr import xm_cluster
    from lxr.xm_cluster.executors import executor_resources
    from lxr.xm_cluster.requirements import requirements_to_resources

    res = requirements_to_resources(xm.JobRequirements(cpu=1, ram=xm.GiB, replicas=4))
    assert (res.nodes, res.tasks_per_node, res.cpus, res.memory) == (1, 4, 1, "4096Mi")
    res = requirements_to_resources(xm.JobRequirements(cpu=2, replicas=4), nodes=2)
    assert (res.nodes, res.tasks_per_node, res.ranks) == (2, 2, 4)
    # xmanager-slurm: GPU="4x2" is 4 GPUs per task and 2 replicas
    res = requirements_to_resources(xm_cluster.JobRequirements(CPU=8, GPU="4x2"))
    assert (res.tasks_per_node, res.gpus_per_task, res.gpus) == (2, 4, None)
    res = requirements_to_resources(xm.JobRequirements(a100="2x2"))
    assert (res.tasks_per_node, res.gpus_per_task, res.gpu_type) == (2, 2, "a100")
    with pytest.raises(ValueError, match="is 2 replicas, not replicas=3"):
        xm_cluster.JobRequirements(GPU="4x2", replicas=3)
    # a plain requirement is one task, as before
    assert requirements_to_resources(xm.JobRequirements(cpu=1)).gang is False
    ex = xm_cluster.Slurm(requirements=xm.JobRequirements(cpu=1, replicas=4), cluster="c", nodes=2)
    _, res, _ = executor_resources(ex)
    assert (res.nodes, res.tasks_per_node) == (2, 2)
    ge = xm_cluster.GridEngine(
        requirements=xm.JobRequirements(cpu=1, replicas=4),
        parallel_environments={"mpi": 4},
        cluster="g",
    )
    _, res, _ = executor_resources(ge)
    assert res.ranks == 4 and res.cpus == 1
    assert res.section("sge").parallel_environment == "mpi"  # type: ignore[union-attr]
    # lxm3's meaning without replicas: one process on the environment's slots
    _, one, _ = executor_resources(
        xm_cluster.GridEngine(parallel_environments={"smp": 4}, cluster="g")
    )
    assert (one.cpus, one.gang) == (4, False)


# ---------------------------------------------------------------------------- components

FX = Path(__file__).parent / "fixtures" / "slurm"
COMPONENTS = {
    "metadata": {"name": "serve"},
    "spec": {
        "cluster": "dev",
        "resources": {"cpus": 1, "partition": "multi"},
        "components": {
            "server": {"executable": {"command": ["python3", "server.py"]}},
            "client": {
                "executable": {"command": ["python3", "client.py"], "env": {"A": "1"}},
                "resources": {"nodes": 2},
                "args": {"rounds": 3},
            },
        },
        "sweep": {"grid": {"seed": [1, 2]}},
    },
}


def test_an_experiment_of_components() -> None:
    from lxr.api.resources import component_variable

    exp = Experiment.model_validate(COMPONENTS)
    assert list(exp.spec.components or {}) == ["server", "client"]
    assert exp.spec.main.command == ["python3", "server.py"]
    assert exp.spec.ranks == 3  # 1 server + 2 clients
    assert component_variable("param-server") == "LXR_COMPONENT_PARAM_SERVER_NODELIST"
    bad = {**COMPONENTS["spec"], "executable": {"command": ["x"]}}
    with pytest.raises(ValidationError, match="either executable or components"):
        Experiment.model_validate({"metadata": {"name": "x"}, "spec": bad})
    with pytest.raises(ValidationError, match="either executable or components"):
        Experiment.model_validate({"metadata": {"name": "x"}, "spec": {}})
    clash = {"a-b": {"executable": {"command": ["x"]}}, "a_b": {"executable": {"command": ["x"]}}}
    with pytest.raises(ValidationError, match="differ in more than"):
        Experiment.model_validate({"metadata": {"name": "x"}, "spec": {"components": clash}})
    with pytest.raises(ValidationError, match="component name 'Server'"):
        Experiment.model_validate(
            {"metadata": {"name": "x"}, "spec": {"components": {"Server": clash["a-b"]}}}
        )


def test_grid_engine_refuses_components_when_applied(store: Store) -> None:
    from lxr.api.resources import Cluster

    store.apply(Cluster.model_validate({"metadata": {"name": "dev"}, "spec": {"scheduler": "sge"}}))
    with pytest.raises(Invalid, match="spec.components .2 components.: not possible on a sge"):
        store.apply(Experiment.model_validate(COMPONENTS))
    store.apply(
        Cluster.model_validate({"metadata": {"name": "dev2"}, "spec": {"scheduler": "slurm"}})
    )
    store.apply(
        Experiment.model_validate({**COMPONENTS, "spec": {**COMPONENTS["spec"], "cluster": "dev2"}})
    )


def _het_job() -> ArrayJob:
    from lxr.schedulers.base import JobComponent

    server = [TaskSpec(5, ["python3", "server.py"], work_unit=5)]
    client = [TaskSpec(5, ["python3", "client.py"], work_unit=5)]
    return ArrayJob(
        "tag1",
        "serve",
        "uid",
        server,
        Resources(cpus=1),
        components=(
            JobComponent("server", Resources(cpus=1, partition="multi"), server),
            JobComponent("client", Resources(cpus=1, nodes=2, partition="multi"), client),
        ),
    )


def test_components_are_one_heterogeneous_job() -> None:
    files, argv = SlurmDriver("c", LocalTransport(), "/st").render(_het_job())
    assert argv == ["sbatch", "--parsable", "/st/jobs/tag1/job.sbatch"]  # never an array
    script = files["/st/jobs/tag1/job.sbatch"].decode()
    head = [ln for ln in script.splitlines() if ln.startswith("#SBATCH")]
    assert head.index("#SBATCH hetjob") > head.index("#SBATCH --partition=multi")
    assert "#SBATCH --output=/st/jobs/tag1/logs/5.out" in head
    assert head.count("#SBATCH --job-name=lxr-tag1") == 1
    after = head[head.index("#SBATCH hetjob") + 1 :]
    assert "#SBATCH --nodes=2" in after and "#SBATCH --ntasks-per-node=1" in after
    assert 'export LXR_COMPONENT_SERVER_NODELIST="$SLURM_JOB_NODELIST_HET_GROUP_0"' in script
    assert 'export LXR_COMPONENT_CLIENT_NODELIST="$SLURM_JOB_NODELIST_HET_GROUP_1"' in script
    assert "srun --het-group=0 --kill-on-bad-exit=1 --nodes=1 --ntasks=1" in script
    assert "srun --het-group=1 --kill-on-bad-exit=1 --nodes=2 --ntasks=2" in script
    assert "/st/jobs/tag1/run-task.sh /st/jobs/tag1 5.client rank 1 &" in script
    assert 'lxr_wait_first 0 "${pids[@]}"' in script
    table = files["/st/jobs/tag1/tasks.tsv"].decode().splitlines()
    assert [ln.split("\t")[0] for ln in table] == ["5.server", "5.client"]
    with pytest.raises(Exception, match="one work unit"):
        job = _het_job()
        SlurmDriver("c", LocalTransport(), "/st").render(
            ArrayJob(
                "t",
                "e",
                "u",
                [*job.tasks, TaskSpec(6, ["x"])],
                job.resources,
                components=job.components,
            )
        )


def test_heterogeneous_jobs_read_from_squeue_and_sacct() -> None:
    from lxr.schedulers.slurm.parse import het_row, observation, parse_sacct, parse_squeue

    running = parse_squeue((FX / "hetjob-running.txt").read_text())
    assert [(r.job_id, r.het_offset, r.array_index) for r in running] == [
        ("1255", 0, None), ("1255", 1, None),
    ]  # fmt: skip
    assert observation(het_row(running)).phase is TaskPhase.RUNNING
    failed = parse_squeue((FX / "hetjob-failed.txt").read_text())
    obs = observation(het_row(failed))
    assert (obs.phase, obs.reason, obs.exit_code) == (TaskPhase.FAILED, FailureReason.ERROR, 3)
    acct = parse_sacct((FX / "hetjob-failed-sacct.txt").read_text())
    assert sorted((r.job_id, r.het_offset, r.state) for r in acct) == [
        ("1255", 0, "FAILED"), ("1255", 1, "FAILED"),
    ]  # fmt: skip
    done = parse_squeue((FX / "hetjob-completed.txt").read_text())
    assert observation(het_row(done)).phase is TaskPhase.SUCCEEDED
    # a component still running keeps the job running; a preempted one ends it as preempted
    mixed = [failed[0], running[1]]
    assert observation(het_row(mixed)).phase is TaskPhase.RUNNING
    from dataclasses import replace

    preempted = [replace(done[0]), replace(done[1], state="PREEMPTED")]
    assert observation(het_row(preempted)).reason is FailureReason.PREEMPTED


def test_the_driver_reports_a_heterogeneous_job_as_its_one_task(tmp_path: Path) -> None:
    class Replay(LocalTransport):
        async def run(self, argv, **kw):  # type: ignore[no-untyped-def, override]
            from lxr.schedulers.transport import CommandResult

            if argv[0] == "squeue":
                return CommandResult(
                    tuple(argv), 0, (FX / "hetjob-running.txt").read_text(), "", 0.0
                )
            return await super().run(argv, **kw)

    driver = SlurmDriver("c", Replay(), str(tmp_path))
    driver._prepared = True
    driver.accounting = False
    snap = anyio.run(driver.observe, ObserveQuery({"1255": frozenset({5})}))
    assert set(snap.tasks) == {("1255", 5)} and snap.tasks[("1255", 5)].phase is TaskPhase.RUNNING
    assert snap.tags == {"hetfail": "1255"}
    # cancelled by its job id: it is not an array
    assert driver.cancel_argv([], {"1255": {5}, "31": {2}}) == ["scancel", "1255", "31_2"]


# ---------------------------------------------------------------------------- a broken gang


def test_a_gang_running_on_after_a_rank_failed_is_cancelled_whole() -> None:
    from lxr.reconciler import classify
    from lxr.reconciler.actions import Cancel

    spec = ExperimentSpec(executable=Executable(command=["x"]), resources=GANG)
    failed_at = NOW - classify.GANG_GRACE_SECONDS - 1
    running = task(
        TaskPhase.RUNNING,
        rank_exit_codes=(None, 3, None, None),
        first_failed_rank=1,
        first_failure_time=failed_at,
    )
    record = exp(wu(0, attempt("42", phase="Running"), phase="Running"), spec=spec)
    actions = plan_experiment(record, snap(running), NOW)
    (cancel,) = only(actions, Cancel)
    assert cancel.targets == (("42", 0),)  # the whole allocation: its one task
    updates = only(actions, UpdateStatus)
    assert not any(p.phase != "Running" for u in updates for p in u.work_units)
    # within the grace the launcher is still ending the others: nothing to do
    fresh = task(
        TaskPhase.RUNNING,
        rank_exit_codes=(None, 3, None, None),
        first_failed_rank=1,
        first_failure_time=NOW - 1,
    )
    assert not only(plan_experiment(record, snap(fresh), NOW), Cancel)
    # once it ended after lxr's cancel: the rank's failure, counted, with its exit code
    ended = task(
        TaskPhase.CANCELLED,
        rank_exit_codes=(143, 3, 143, 143),
        first_failed_rank=1,
        first_failure_time=failed_at,
    )
    cancelled = exp(
        wu(0, attempt("42", phase="Running", cancel_requested_at=NOW - 5), phase="Running"),
        spec=spec,
    )
    (update,) = only(plan_experiment(cancelled, snap(ended), NOW), UpdateStatus)
    (patch,) = update.work_units
    assert (patch.phase, patch.failures, patch.exit_code) == ("BackOff", 1, 3)
    assert patch.reason == "Error" and "rank 1 exited 3 first" in (patch.message or "")
    (att,) = [a for a in update.attempts if a.final]
    assert att.first_failed_rank == 1 and att.rank_exit_codes == (143, 3, 143, 143)


def test_a_cancel_by_someone_else_is_still_a_cancel() -> None:
    spec = ExperimentSpec(executable=Executable(command=["x"]), resources=GANG)
    record = exp(wu(0, attempt("42", phase="Running"), phase="Running"), spec=spec)
    ended = task(TaskPhase.CANCELLED, rank_exit_codes=(143, 143, 143, 143))
    (update,) = only(plan_experiment(record, snap(ended), NOW), UpdateStatus)
    (patch,) = update.work_units
    assert patch.phase == "Failed" and patch.reason == "Cancelled"
    # a preempted gang whose ranks died of the kill is a disruption, not the ranks' failure
    preempted = task(
        TaskPhase.FAILED,
        reason=FailureReason.PREEMPTED,
        rank_exit_codes=(143, 143, 143, 143),
        first_failed_rank=0,
        first_failure_time=NOW - 100,
    )
    cancelled = exp(
        wu(0, attempt("42", phase="Running", cancel_requested_at=NOW - 5), phase="Running"),
        spec=spec,
    )
    (update,) = only(plan_experiment(cancelled, snap(preempted), NOW), UpdateStatus)
    (patch,) = update.work_units
    assert patch.phase == "Pending" and patch.disruptions == 1 and patch.failures == 0


def test_the_ranks_of_a_running_gang_are_read_too(tmp_path: Path) -> None:
    driver = SlurmDriver("c", LocalTransport(), str(tmp_path))
    ranks = tmp_path / "jobs" / "t" / "ranks" / "0"
    ranks.mkdir(parents=True)
    (ranks / "1").write_text("3 1700000000.5\n")
    (tmp_path / "byid").mkdir()
    (tmp_path / "byid" / "31").symlink_to(tmp_path / "jobs" / "t")
    tasks = {("31", 0): TaskObservation("31", 0, TaskPhase.RUNNING, "RUNNING")}
    anyio.run(driver.read_rank_exits, tasks, ObserveQuery({"31": frozenset({0})}, gangs={"31": 2}))
    obs = tasks[("31", 0)]
    assert (obs.rank_exit_codes, obs.first_failed_rank) == ((None, 3), 1)
    assert obs.first_failure_time == 1700000000.5
