"""``lxr check cluster``: can lxr work with this cluster? One check per thing it needs.

In order: the connection (SSH, with the cause when it fails), the scheduler's commands, the
driver's own preparation (remote home, configuration), the staging directory (created,
written, read back), accounting, and the array size limit. A check that cannot run because an
earlier one failed is reported as skipped. Only read-only commands are run, plus one file
written and removed in the staging directory.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from lxr.api.resources import ClusterSpec
from lxr.schedulers.base import Driver, SchedulerError
from lxr.schedulers.registry import make_driver
from lxr.schedulers.transport import ConnectError, Transport, TransportError

__all__ = ["SCHEDULER_COMMANDS", "Check", "preflight"]

#: what each scheduler's driver runs (all of them must be on the login node's PATH)
SCHEDULER_COMMANDS: dict[str, tuple[str, ...]] = {
    "slurm": ("sbatch", "squeue", "scancel", "sacct", "scontrol"),
    "sge": ("qsub", "qstat", "qdel", "qacct", "qconf", "qmod"),
}


@dataclass(frozen=True)
class Check:
    """One preflight check: ``status`` is ``ok``, ``warn``, ``FAIL`` or ``skip``."""

    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        """True for ``FAIL``."""
        return self.status == "FAIL"


async def preflight(
    cluster: str, spec: ClusterSpec, on_check: Callable[[Check], None] | None = None
) -> list[Check]:
    """Run every check against ``cluster``; ``on_check`` sees each one as it finishes."""
    checks: list[Check] = []

    def add(name: str, status: str, detail: str) -> None:
        check = Check(name, status, detail)
        checks.append(check)
        if on_check is not None:
            on_check(check)

    driver = make_driver(cluster, spec)
    transport: Transport = driver.transport
    try:
        if not await _connect(spec, transport, add):
            for name in ("scheduler commands", "array size", "staging dir", "accounting"):
                add(name, "skip", "the cluster cannot be reached")
            return checks
        if spec.scheduler == "local":
            add("scheduler commands", "ok", "local: tasks run as processes of this machine")
        elif not await _commands(spec.scheduler, transport, add):
            return checks
        try:
            await driver.prepare()
        except (TransportError, SchedulerError, OSError) as exc:
            add("configuration", "FAIL", str(exc))
            return checks
        add("array size", "ok", _array_size(spec, driver))
        await _staging(driver, transport, add)
        await _accounting(spec, driver, transport, add)
        return checks
    finally:
        await driver.close()


async def _connect(spec: ClusterSpec, transport: Transport, add: Callable) -> bool:
    if spec.ssh is None:
        add("connection", "ok", "this machine (no ssh)")
        return True
    ssh = spec.ssh
    target = f"{ssh.user + '@' if ssh.user else ''}{ssh.host}:{ssh.port}"
    try:
        res = await transport.run(["id", "-un"], rate_limited=False, timeout=30)
    except ConnectError as exc:
        add("connection", "FAIL", f"{exc.reason}: {exc.message}")
        return False
    except TransportError as exc:
        add("connection", "FAIL", str(exc))
        return False
    keys = ssh.identity_file or "default keys"
    add(
        "connection",
        "ok",
        f"ssh {target} as {res.stdout.strip() or '?'} ({keys}; host key checked)",
    )
    return True


async def _commands(scheduler: str, transport: Transport, add: Callable) -> bool:
    names = SCHEDULER_COMMANDS[scheduler]
    script = "for c in " + " ".join(names) + '; do command -v "$c" >/dev/null || echo "$c"; done'
    res = await transport.run(["sh", "-c", script], rate_limited=False)
    missing = res.stdout.split()
    if not res.ok or missing:
        add(
            "scheduler commands",
            "FAIL",
            f"not on the login node's PATH: {', '.join(missing) or res.describe()}",
        )
        return False
    version = (
        ["sbatch", "--version"] if scheduler == "slurm" else ["sh", "-c", "qstat -help | head -1"]
    )
    res = await transport.run(version, rate_limited=False)
    what = (
        res.stdout.strip().splitlines()[0] if res.ok and res.stdout.strip() else "version unknown"
    )
    add("scheduler commands", "ok", f"{', '.join(names)} ({what})")
    return True


def _array_size(spec: ClusterSpec, driver: Driver) -> str:
    if spec.scheduler == "local":
        return f"local: no arrays; up to {spec.max_parallel or 'any number of'} tasks at once"
    if spec.scheduler == "slurm":
        limit = f"MaxArraySize={driver.max_array_size}"
    else:
        limit = f"max_aj_tasks={driver.max_array_size}"
    return f"{limit}: larger sweeps are split into several arrays"


async def _staging(driver: Driver, transport: Transport, add: Callable) -> None:
    staging = str(getattr(driver, "staging_dir", "") or getattr(driver, "root", ""))
    probe = f"{staging}/.lxr-check-{secrets.token_hex(4)}"
    script = (
        f"mkdir -p -m 700 {shlex.quote(staging)} && echo ok > {shlex.quote(probe)} "
        f"&& cat {shlex.quote(probe)} && rm -f {shlex.quote(probe)}"
    )
    res = await transport.run(["sh", "-c", script], rate_limited=False)
    if res.ok and res.stdout.strip() == "ok":
        add("staging dir", "ok", f"{staging} is writable")
    else:
        add("staging dir", "FAIL", f"{staging}: {res.describe()}")


async def _accounting(
    spec: ClusterSpec, driver: Driver, transport: Transport, add: Callable
) -> None:
    if spec.scheduler == "local":
        add("accounting", "ok", "local: exit codes come from lxr's exit files")
        return
    if spec.scheduler == "slurm":
        if not getattr(driver, "accounting", False):
            add(
                "accounting",
                "warn",
                "AccountingStorageType=accounting_storage/none: exit codes come from lxr's "
                "exit files only (no sacct)",
            )
            return
        res = await transport.run(
            ["sacct", "-n", "-X", "-P", "-S", "now-1minutes", "-o", "JobID"], rate_limited=False
        )
        if res.ok:
            add("accounting", "ok", "sacct answers (slurmdbd)")
        else:
            add(
                "accounting", "warn", f"sacct fails, lxr falls back to exit files: {res.describe()}"
            )
        return
    res = await transport.run(["qconf", "-sconf", "global"], rate_limited=False)
    params = next(
        (line for line in res.stdout.splitlines() if line.startswith("reporting_params")), ""
    )
    if "accounting=true" in params:
        add("accounting", "ok", "qacct: accounting=true in reporting_params")
    else:
        add(
            "accounting",
            "warn",
            "accounting is off (reporting_params): exit codes come from lxr's exit files only",
        )
