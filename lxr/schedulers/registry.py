"""Building a cluster's driver and transport from its spec."""

from __future__ import annotations

import os

from lxr.api.resources import ClusterSpec
from lxr.paths import state_dir
from lxr.schedulers.base import Driver
from lxr.schedulers.plugins import plugin
from lxr.schedulers.ratelimit import TokenBucket
from lxr.schedulers.transport import CommandObserver, LocalTransport, Transport

__all__ = [
    "default_staging_dir",
    "local_blobs_root",
    "make_driver",
    "make_transport",
    "poll_interval",
]


def default_staging_dir(cluster: str, spec: ClusterSpec) -> str:
    """Where job files go: ``spec.stagingDir``, else a per-cluster directory of lxr's state
    here, or ``.lxr/staging`` under the remote home over SSH."""
    if spec.staging_dir:
        return spec.staging_dir
    if spec.ssh is not None:
        return ".lxr/staging"
    return str(state_dir() / "clusters" / cluster)


def local_blobs_root(cluster: str, spec: ClusterSpec) -> str | None:
    """Where a cluster on this machine keeps staged blobs (``<stagingDir>/blobs``, absolute);
    None over SSH, where only the controller learns it."""
    if spec.ssh is not None:
        return None
    path = os.path.abspath(os.path.expanduser(default_staging_dir(cluster, spec)))
    return f"{path}/blobs"


def make_transport(spec: ClusterSpec, observer: CommandObserver | None = None) -> Transport:
    """SSH when the spec names a login node, else this machine; rate-limited either way."""
    bucket = TokenBucket(spec.rate_limit.commands_per_second, spec.rate_limit.burst)
    if spec.ssh is not None:
        from lxr.schedulers.ssh import SSHTransport

        return SSHTransport(spec.ssh, bucket=bucket, observer=observer)
    return LocalTransport(bucket=bucket, observer=observer)


def make_driver(cluster: str, spec: ClusterSpec, observer: CommandObserver | None = None) -> Driver:
    """The driver for ``cluster``: its scheduler plugin's, built as
    ``Driver(cluster, transport, staging_dir, spec)``."""
    driver_cls = plugin(spec.scheduler).load_driver()
    transport = make_transport(spec, observer)
    return driver_cls(cluster, transport, default_staging_dir(cluster, spec), spec)


def poll_interval(spec: ClusterSpec) -> float:
    """How often a busy cluster of this kind wants to be observed (its plugin says)."""
    return plugin(spec.scheduler).poll_interval
