"""Building a cluster's driver and transport from its spec."""

from __future__ import annotations

import importlib

from lxr.api.resources import ClusterSpec
from lxr.paths import state_dir
from lxr.schedulers.base import Driver
from lxr.schedulers.local import LocalDriver
from lxr.schedulers.ratelimit import TokenBucket
from lxr.schedulers.transport import CommandObserver, LocalTransport, Transport

__all__ = ["DRIVERS", "default_staging_dir", "make_driver", "make_transport"]

#: scheduler name -> "module:Class" of its driver (imported on first use)
DRIVERS = {
    "local": "lxr.schedulers.local:LocalDriver",
    "slurm": "lxr.schedulers.slurm:SlurmDriver",
    "sge": "lxr.schedulers.sge:SGEDriver",
}


def default_staging_dir(cluster: str, spec: ClusterSpec) -> str:
    """Where job files go: ``spec.stagingDir``, else a per-cluster directory of lxr's state
    here, or ``.lxr/staging`` under the remote home over SSH."""
    if spec.staging_dir:
        return spec.staging_dir
    if spec.ssh is not None:
        return ".lxr/staging"
    return str(state_dir() / "clusters" / cluster)


def make_transport(spec: ClusterSpec, observer: CommandObserver | None = None) -> Transport:
    """SSH when the spec names a login node, else this machine; rate-limited either way."""
    bucket = TokenBucket(spec.rate_limit.commands_per_second, spec.rate_limit.burst)
    if spec.ssh is not None:
        from lxr.schedulers.ssh import SSHTransport

        return SSHTransport(spec.ssh, bucket=bucket, observer=observer)
    return LocalTransport(bucket=bucket, observer=observer)


def make_driver(cluster: str, spec: ClusterSpec, observer: CommandObserver | None = None) -> Driver:
    """The driver for ``cluster``."""
    transport = make_transport(spec, observer)
    staging = default_staging_dir(cluster, spec)
    if spec.scheduler == "local":
        return LocalDriver(cluster, transport, staging, spec.max_parallel)
    module, _, name = DRIVERS[spec.scheduler].partition(":")
    driver_cls = getattr(importlib.import_module(module), name)
    return driver_cls(cluster, transport, staging, spec)
