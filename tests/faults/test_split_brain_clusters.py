"""The deterministic split-brain repro on the dev cluster's Slurm and Grid Engine: a leader
stalled (SIGSTOP) right after recording a submission intent, past its lease's TTL; a standby
takes over and submits that intent; the leader resumes. Exactly one job per tag, every work
unit runs once, and the old leader logs that it lost the lease and did nothing.

Before fencing, the resumed leader submitted the same tag a second time (Grid Engine: 11 of
20 work units ran twice, under a ``Succeeded`` experiment).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from lxr.api.resources import Experiment
from lxr.store import Store
from tests.faults.harness import split_brain
from tests.test_sge_integration import CLUSTER as SGE_CLUSTER
from tests.test_sge_integration import cluster as sge_cluster
from tests.test_sge_integration import remote, sge, sge_jobs, unique  # noqa: F401 - fixture sge
from tests.test_slurm_integration import Slurm, ssh
from tests.test_slurm_integration import slurm as slurm

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 5.0
UNITS = 8

# each start appends "experiment work-unit attempt" to a file in the cluster user's home
MARK = 'echo "$LXR_EXPERIMENT $LXR_WORK_UNIT $LXR_ATTEMPT" >> "$HOME/.lxr-marks-$LXR_EXPERIMENT"'


def marks(lines: str) -> list[tuple[str, str]]:
    return sorted((w, a) for _, w, a in (line.split() for line in lines.splitlines() if line))


def check(result, runs: list[tuple[str, str]], tags: dict[str, set[str]]) -> None:
    print(f"standby took over {result.took_over_after:.1f}s after the leader stopped")
    assert result.leader_alive, result.leader_log
    assert len(tags) == 1 and all(len(ids) == 1 for ids in tags.values()), (
        f"one job per tag, one tag: {tags}"
    )
    assert runs == sorted((str(i), "1") for i in range(UNITS)), f"each unit once: {runs}"
    assert "lost the lease" in result.leader_log, result.leader_log


def test_split_brain_on_slurm(
    slurm: Slurm,
    state_home: Path,
) -> None:
    script = f"{MARK}; sleep 2"
    created: list[str] = []

    def apply() -> str:
        created.append(slurm.apply("brain", ["bash", "-c", script], UNITS, parallelism=UNITS))
        return created[0]

    result = split_brain(slurm.store, state_home, apply, TTL, "--interval", "0.5")
    name = created[0]
    out = ssh(slurm.env, "squeue --me -h -r -t all -o '%F %j'", check=False)
    acct = ssh(slurm.env, "sacct -X -n -P -S now-1hour -o JobID,JobName", check=False)
    tags: dict[str, set[str]] = {}
    for line in out.splitlines() + [x.replace("|", " ") for x in acct.splitlines()]:
        parts = line.split()
        if len(parts) == 2 and parts[1].startswith(f"lxr-{name}-"):
            tags.setdefault(parts[1], set()).add(parts[0].split("_")[0])
    runs = marks(ssh(slurm.env, f"cat $HOME/.lxr-marks-{shlex.quote(name)}", check=False))
    ssh(slurm.env, f"rm -f $HOME/.lxr-marks-{shlex.quote(name)}", check=False)
    units = slurm.units(name)
    assert all(u.status.phase.value == "Succeeded" and len(u.status.attempts) == 1 for u in units)
    check(result, runs, tags)


def test_split_brain_on_sge(sge: dict[str, str], store: Store, state_home: Path) -> None:  # noqa: F811
    store.apply(sge_cluster(sge))
    name = unique("sge-brain")
    script = f"{MARK}; sleep 2"

    def apply() -> str:
        store.apply(
            Experiment.model_validate(
                {
                    "metadata": {"name": name},
                    "spec": {
                        "cluster": SGE_CLUSTER,
                        "executable": {"command": ["bash", "-c", script, "task"]},
                        "workUnits": [{"args": {"i": i}} for i in range(UNITS)],
                        "parallelism": UNITS,
                    },
                }
            )
        )
        return name

    result = split_brain(store, state_home, apply, TTL, "--interval", "0.5")
    jobs = sge_jobs(sge, name)  # job id -> names
    tags: dict[str, set[str]] = {}
    for job_id, names in jobs.items():
        for jname in names:
            tags.setdefault(jname, set()).add(job_id)
    runs = marks(remote(sge, f"cat $HOME/.lxr-marks-{shlex.quote(name)}").stdout)
    remote(sge, f"rm -f $HOME/.lxr-marks-{shlex.quote(name)}")
    units = store.list_work_units(name)
    assert all(u.status.phase.value == "Succeeded" and len(u.status.attempts) == 1 for u in units)
    check(result, runs, tags)
