"""Work units of several nodes and ranks on the real dev cluster (deploy/dev-cluster: Slurm
partition ``multi`` of nodes lxr-n1..3 with 2 CPUs each, ``urgent`` over them), over SSH: every
rank starts once with the rendezvous environment and a real TCP all-gather completes, a sweep of
multi-node units is one ``sbatch --array``, and preempting one node of a running unit ends the
whole allocation and resubmits the unit whole.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from lxr.api.resources import Cluster, Experiment
from lxr.testing import converge, finished
from tests.conftest import require
from tests.test_slurm_integration import (
    CLI,
    CLUSTER,
    Slurm,
    attempts_of,
    cluster_spec,
    run_until,
    slurm,
    ssh,
)

__all__ = ["slurm"]  # the fixture, shared with the Slurm tests

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GANG = {"nodes": 2, "tasksPerNode": 2, "cpus": 1, "memory": "100Mi", "partition": "multi"}

#: a TCP all-gather with the standard library: rank 0 listens on MASTER_PORT, every other rank
#: sends what it saw, rank 0 answers each with the whole list, and every rank prints it
ALL_GATHER = r"""
import json, os, socket, time
env = os.environ
me = {k: env.get(k) for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE",
      "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LXR_RANK", "SLURMD_NODENAME")}
rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
addr, port = env["MASTER_ADDR"], int(env["MASTER_PORT"])
if rank == 0:
    server = socket.create_server(("", port))
    server.settimeout(60)
    peers, items = [], [me]
    while len(items) < world:
        conn, _ = server.accept()
        items.append(json.loads(conn.makefile().readline()))
        peers.append(conn)
    out = json.dumps(sorted(items, key=lambda i: int(i["RANK"]))) + "\n"
    for conn in peers:
        conn.sendall(out.encode())
        conn.close()
else:
    deadline = time.time() + 60
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    conn.sendall((json.dumps(me) + "\n").encode())
    out = conn.makefile().readline()
print("ALLGATHER " + out.strip(), flush=True)
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env={**os.environ}, check=False
    )


def test_two_nodes_two_tasks_rendezvous(slurm: Slurm) -> None:
    name = slurm.apply("ddp", ["python3", "-c", ALL_GATHER], 1, resources=GANG)
    converge(slurm.store, [name], timeout=120, interval=0.5)
    (unit,) = slurm.units(name)
    assert unit.status.phase.value == "Succeeded", unit.status
    (att,) = attempts_of(unit)
    assert att.rank_exit_codes == [0, 0, 0, 0] and att.first_failed_rank is None
    seen = []
    for rank in range(4):
        out = cli("logs", "experiment", name, "--wu", "0", "--rank", str(rank))
        assert out.returncode == 0, out.stderr
        (line,) = [x for x in out.stdout.splitlines() if x.startswith("ALLGATHER ")]
        gathered = json.loads(line.removeprefix("ALLGATHER "))
        assert int(gathered[rank]["RANK"]) == rank
        seen.append(gathered)
    assert all(g == seen[0] for g in seen)  # every rank got the same list: it completed
    items = seen[0]
    assert sorted(int(i["RANK"]) for i in items) == [0, 1, 2, 3]  # each rank exactly once
    assert len({i["SLURMD_NODENAME"] for i in items}) == 2
    assert len({(i["MASTER_ADDR"], i["MASTER_PORT"]) for i in items}) == 1
    assert {(i["WORLD_SIZE"], i["LOCAL_WORLD_SIZE"]) for i in items} == {("4", "2")}
    assert [i["LXR_RANK"] for i in items] == ["0", "1", "2", "3"]
    assert sorted((i["NODE_RANK"], i["LOCAL_RANK"]) for i in items) == [
        ("0", "0"), ("0", "1"), ("1", "0"), ("1", "1"),
    ]  # fmt: skip
    (sbatch,) = slurm.sbatches()
    tag = slurm.store.find_attempt(name, 0)[1]
    script = ssh(slurm.env, f"cat .lxr/staging/jobs/{tag}/job.sbatch")
    assert "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\n" in script
    assert "srun --kill-on-bad-exit=1" in script
    described = cli("describe", "workunit", f"{name}-0")
    assert "Ranks:" in described.stdout and "0:0 1:0 2:0 3:0" in described.stdout


def test_a_rank_that_fails_ends_the_gang_and_is_counted(slurm: Slurm) -> None:
    script = 'if [ "$RANK" = 2 ]; then exit 3; fi; exec sleep 30'
    name = slurm.apply(
        "rankfail", ["bash", "-c", script], 1, resources=GANG, backoffLimitPerIndex=0
    )
    converge(slurm.store, [name], timeout=120, interval=0.5)
    (unit,) = slurm.units(name)
    assert unit.status.phase.value == "Failed" and unit.status.failures == 1
    (att,) = attempts_of(unit)
    assert att.exit_code == 3 and att.first_failed_rank == 2
    codes = att.rank_exit_codes or []
    assert codes[2] == 3 and all(c != 0 for c in codes)  # the others were ended, not left
    described = cli("describe", "workunit", f"{name}-0").stdout
    assert "rank 2" in described


def test_ranks_that_only_the_cluster_defaults_ask_for_are_read_as_ranks(slurm: Slurm) -> None:
    """Nodes and tasks from the Cluster's defaults, none in the experiment: recorded with it
    at apply, so each rank's exit code is read as for an experiment that asks itself."""
    spec = cluster_spec(slurm.env)
    spec["defaults"] = {**GANG, "tasksPerNode": 1}
    slurm.store.apply(Cluster.model_validate({"metadata": {"name": CLUSTER}, "spec": spec}))
    script = 'if [ "$RANK" = 1 ]; then exit 4; fi; exec sleep 30'
    name = slurm.apply("defranks", ["bash", "-c", script], 1, backoffLimitPerIndex=0)
    converge(slurm.store, [name], timeout=120, interval=0.5)
    (unit,) = slurm.units(name)
    assert unit.status.phase.value == "Failed", unit.status
    (att,) = attempts_of(unit)
    assert att.exit_code == 4 and att.first_failed_rank == 1, att
    assert att.rank_exit_codes is not None and len(att.rank_exit_codes) == 2, att
    assert att.rank_exit_codes[1] == 4


def test_a_sweep_of_three_multinode_units_is_one_array(slurm: Slurm) -> None:
    resources = {**GANG, "tasksPerNode": 1}
    name = slurm.apply(
        "sweep3", ["bash", "-c", "echo $RANK on $SLURMD_NODENAME"], 3, resources=resources
    )
    converge(slurm.store, [name], timeout=150, interval=0.5)
    units = slurm.units(name)
    assert [u.status.phase.value for u in units] == ["Succeeded"] * 3
    assert all(attempts_of(u)[0].rank_exit_codes == [0, 0] for u in units)
    (sbatch,) = slurm.sbatches()
    assert "--array=0-2" in sbatch


def test_preempting_one_node_resubmits_the_whole_unit(slurm: Slurm) -> None:
    pids = f".lxr-{slurm.prefix}-pids"
    ssh(slurm.env, f"mkdir -p {pids}")
    # each rank notes its pid and node; the first attempt runs until preempted, the second ends
    program = (
        f'echo "$$ $SLURMD_NODENAME" > ~/{pids}/$LXR_ATTEMPT.$RANK; '
        'if [ "$LXR_ATTEMPT" = 1 ]; then exec sleep 60; fi'
    )
    name = slurm.apply("preempt", ["bash", "-c", program], 1, resources=GANG)
    state: dict[str, object] = {"urgent": None}

    def until() -> bool:
        (unit,) = slurm.units(name)
        if state["urgent"] is None:
            started = ssh(slurm.env, f"ls ~/{pids}", check=False).split()
            if unit.status.phase.value == "Running" and len(started) == 4:
                # one node of the allocation: rank 0's
                node = ssh(slurm.env, f"cut -d' ' -f2 ~/{pids}/1.0").strip()
                state["node"] = node
                state["urgent"] = ssh(
                    slurm.env,
                    f"sbatch --parsable -p urgent -w {node} -c 2 --mem=100M "
                    f"-J lxr-{slurm.prefix}-urgent -o /dev/null --wrap 'sleep 3'",
                ).strip()
            return False
        return finished(slurm.store, name)

    run_until(slurm.store, until, timeout=180)
    assert state["urgent"], "the unit never ran on two nodes"
    (unit,) = slurm.units(name)
    atts = attempts_of(unit)
    assert unit.status.phase.value == "Succeeded"
    assert [a.reason for a in atts] == ["Preempted", "Completed"], [
        (a.reason, a.state) for a in atts
    ]
    assert unit.status.failures == 0 and unit.status.disruptions == 1
    assert len(slurm.sbatches()) == 2  # resubmitted once, whole
    # no rank of the first attempt is left running, on either node
    first = [ssh(slurm.env, f"cat ~/{pids}/1.{r}").split() for r in range(4)]
    assert len({node for _, node in first}) == 2
    alive = ssh(slurm.env, "ps -o pid= -p " + ",".join(p for p, _ in first), check=False)
    assert alive.strip() == "", f"ranks of the first attempt still run: {alive}"
    assert len(ssh(slurm.env, f"ls ~/{pids}").split()) == 8  # 4 ranks, twice
    ssh(slurm.env, f"rm -rf ~/{pids}", check=False)


# ---------------------------------------------------------------------------- Grid Engine


def test_grid_engine_pe_of_four_slots_launches_four_ranks(
    dev_cluster: dict[str, str], store
) -> None:
    from tests.test_sge_integration import CLUSTER as SGE_CLUSTER
    from tests.test_sge_integration import cluster, remote, unique

    probe = remote(dev_cluster, "qconf -sp mpi | grep ^allocation_rule")
    require(probe.returncode == 0, f"no Grid Engine PE mpi on the dev cluster: {probe.stderr}")
    store.apply(cluster(dev_cluster))
    name = unique("sge-pe")
    exp = Experiment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "cluster": SGE_CLUSTER,
                "executable": {"command": ["python3", "-c", ALL_GATHER]},
                "workUnits": [{}],
                "resources": {
                    "tasksPerNode": 4,
                    "cpus": 1,
                    "memory": "1Gi",
                    "sge": {"parallelEnvironment": "mpi"},
                },
            },
        }
    )
    store.apply(exp)
    converge(store, [name], timeout=150, interval=0.5)
    (unit,) = store.list_work_units(name)
    assert unit.status.phase.value == "Succeeded", unit.status
    (att,) = unit.status.attempts
    assert att.rank_exit_codes == [0, 0, 0, 0]
    tag = store.find_attempt(name, 0)[1]
    job = f".lxr/staging/jobs/{tag}"
    script = remote(dev_cluster, f"cat {job}/job.sge").stdout
    assert "lxr_pe_ranks" in script and "$PE_HOSTFILE" in script
    outs = [remote(dev_cluster, f"cat {job}/logs/{att.index}.rank{r}.out").stdout for r in range(4)]
    gathered = [json.loads(o.split("ALLGATHER ", 1)[1]) for o in outs]
    assert all(g == gathered[0] for g in gathered)
    assert sorted(int(i["RANK"]) for i in gathered[0]) == [0, 1, 2, 3]
    assert {(i["WORLD_SIZE"], i["MASTER_PORT"]) for i in gathered[0]} == {
        ("4", gathered[0][0]["MASTER_PORT"])
    }
    accounting = remote(dev_cluster, f"qacct -j {att.job_id} | grep -E '^(granted_pe|slots)'")
    assert "mpi" in accounting.stdout and re.search(r"slots\s+4", accounting.stdout)


# ---------------------------------------------------------------------------- components

SERVER = r"""
import os, socket, sys
port = int(sys.argv[1].split("=", 1)[1])
server = socket.create_server(("", port))
server.settimeout(60)
conn, _ = server.accept()
line = conn.makefile().readline().strip()
conn.sendall(f"pong {line}\n".encode())
print("SERVER got", line, "on", os.environ["SLURMD_NODENAME"], flush=True)
"""
CLIENT = r"""
import os, socket, sys, time
port = int(sys.argv[1].split("=", 1)[1])
host = os.environ["LXR_COMPONENT_SERVER_NODELIST"]
deadline = time.time() + 60
while True:
    try:
        conn = socket.create_connection((host, port), timeout=5)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
conn.sendall(f"ping from {os.environ['SLURMD_NODENAME']}\n".encode())
print("CLIENT", conn.makefile().readline().strip(), "via", host,
      os.environ["LXR_COMPONENT_CLIENT_NODELIST"], flush=True)
"""


def test_a_server_and_a_client_are_one_heterogeneous_job(slurm: Slurm) -> None:
    import secrets

    from lxr.api.resources import Experiment

    port = 20000 + secrets.randbelow(9000)
    name = slurm.name("hetjob")
    one = {"cpus": 1, "memory": "100Mi", "partition": "multi"}
    slurm.store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "cluster": "dev-slurm",
                    "resources": one,
                    "components": {
                        "server": {"executable": {"command": ["python3", "-c", SERVER]}},
                        "client": {"executable": {"command": ["python3", "-c", CLIENT]}},
                    },
                    "workUnits": [{"args": {"port": port}}],
                },
            }
        )
    )
    converge(slurm.store, [name], timeout=120, interval=0.5)
    (unit,) = slurm.units(name)
    assert unit.status.phase.value == "Succeeded", unit.status
    (att,) = attempts_of(unit)
    assert att.rank_exit_codes == [0, 0]
    (sbatch,) = slurm.sbatches()
    assert not any(a.startswith("--array") for a in sbatch)  # one job, not an array
    parts = ssh(slurm.env, f"squeue --me -h -t all -j {att.job_id} -O JobArrayID").split()
    assert sorted(parts) == [f"{att.job_id}+0", f"{att.job_id}+1"]
    server = cli("logs", "experiment", name, "--wu", "0", "--component", "server")
    client = cli("logs", "experiment", name, "--wu", "0", "--component", "client", "--rank", "0")
    assert server.returncode == 0 and client.returncode == 0, server.stderr + client.stderr
    assert "SERVER got ping from" in server.stdout
    assert "CLIENT pong ping from" in client.stdout


#: runs the component's own script from its package (kind files: $LXR_PACKAGE is its folder)
FROM_PACKAGE = (
    "import os, runpy; runpy.run_path(os.environ['LXR_PACKAGE'] + '/main.py', run_name='__main__')"
)


def test_components_from_yaml_each_ship_their_own_package(slurm: Slurm, tmp_path) -> None:
    """`spec.components.<name>.executable.package` from YAML: each component's folder is built
    at apply and recorded in that component, both are staged, and each part of the
    heterogeneous job runs its own code."""
    import secrets

    port = 20000 + secrets.randbelow(9000)
    name = slurm.name("hetpkg")
    for part, code in (("server", SERVER), ("client", CLIENT)):
        (tmp_path / part).mkdir()
        (tmp_path / part / "main.py").write_text(code)
    component = (
        "    {part}:\n"
        "      executable:\n"
        "        package: {{path: {part}, kind: files}}\n"
        '        command: [python3, -c, "{code}"]\n'
    )
    doc = tmp_path / "hetpkg.yaml"
    doc.write_text(
        "apiVersion: lxr.dev/v1alpha1\nkind: Experiment\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n  cluster: dev-slurm\n"
        "  resources: {cpus: 1, memory: 100Mi, partition: multi}\n"
        "  components:\n"
        + "".join(component.format(part=p, code=FROM_PACKAGE) for p in ("server", "client"))
        + f"  workUnits: [{{args: {{port: {port}}}}}]\n"
    )
    res = cli("apply", "-f", str(doc))
    assert res.returncode == 0, res.stderr
    exp = slurm.store.get_experiment(name)
    assert exp.spec.components is not None
    refs = {n: c.executable.artifacts for n, c in exp.spec.components.items()}
    assert [len(r) for r in refs.values()] == [1, 1], refs
    assert refs["server"][0].digest != refs["client"][0].digest
    assert all(slurm.store.has_artifact(r[0].digest) for r in refs.values())
    converge(slurm.store, [name], timeout=120, interval=0.5)
    (unit,) = slurm.units(name)
    assert unit.status.phase.value == "Succeeded", unit.status
    exp = slurm.store.get_experiment(name)
    assert exp.status is not None
    assert sorted(a.digest for a in exp.status.artifacts) == sorted(
        r[0].digest for r in refs.values()
    )
    server = cli("logs", "experiment", name, "--wu", "0", "--component", "server")
    client = cli("logs", "experiment", name, "--wu", "0", "--component", "client")
    assert "SERVER got ping from" in server.stdout, server.stdout + server.stderr
    assert "CLIENT pong ping from" in client.stdout, client.stdout + client.stderr


def test_ranks_that_run_on_after_one_failed_are_ended_by_lxr(
    dev_cluster: dict[str, str], store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The net below the launcher: on Grid Engine, ranks that ignore the launcher's SIGTERM
    run on after rank 1 exited 3; lxr sees the failed rank and deletes the whole job, and the
    attempt is that rank's failure."""
    from lxr.reconciler import classify
    from tests.test_sge_integration import CLUSTER as SGE_CLUSTER
    from tests.test_sge_integration import cluster, remote, unique

    monkeypatch.setattr(classify, "GANG_GRACE_SECONDS", 5.0)
    store.apply(cluster(dev_cluster))
    name = unique("sge-broken")
    pids = f".lxr-{name}-pids"
    program = (
        f'echo $$ > ~/{pids}/$RANK; if [ "$RANK" = 1 ]; then sleep 1; exit 3; fi; '
        "trap '' TERM; sleep 300 & wait $!; sleep 300"
    )
    remote(dev_cluster, f"mkdir -p ~/{pids}")
    store.apply(
        Experiment.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "cluster": SGE_CLUSTER,
                    "executable": {"command": ["bash", "-c", program]},
                    "workUnits": [{}],
                    "backoffLimitPerIndex": 0,
                    "resources": {"tasksPerNode": 4, "sge": {"parallelEnvironment": "mpi"}},
                },
            }
        )
    )
    started = time.monotonic()
    converge(store, [name], timeout=150, interval=0.5)
    assert time.monotonic() - started < 120  # not the ranks' 300 s
    (unit,) = store.list_work_units(name)
    assert unit.status.phase.value == "Failed" and unit.status.failures == 1
    (att,) = unit.status.attempts
    assert att.first_failed_rank == 1 and att.exit_code == 3 and att.reason == "Error"
    events = [e.reason for e in store.list_events(name)]
    assert "Cancelling" in events or any("cancel" in e.lower() for e in events), events
    listed = remote(dev_cluster, f"cat ~/{pids}/0 ~/{pids}/2 ~/{pids}/3").stdout.split()
    assert len(listed) == 3
    # Grid Engine kills the job's processes after qdel on its own time (the execd's, a few
    # seconds on a loaded machine). A zombie has ended: only its parent has not reaped it yet
    # (in a PID namespace whose first process is a shell, orphans wait for it a while)
    ps = "ps -o stat=,pid=,pgid=,sid=,etime=,args= -p " + ",".join(listed)

    def running() -> list[str]:
        rows = remote(dev_cluster, ps).stdout.splitlines()
        return [r for r in rows if r.strip() and not r.lstrip().startswith("Z")]

    deadline = time.monotonic() + 30
    while (alive := running()) and time.monotonic() < deadline:
        time.sleep(1)
    assert alive == [], f"ranks still run 30 s after the job ended: {alive}"
    remote(dev_cluster, f"rm -rf ~/{pids}")
