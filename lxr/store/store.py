"""The whole store: every part's methods on one object."""

from __future__ import annotations

from lxr.store.admission import Admission
from lxr.store.blobs import BlobStore
from lxr.store.clusters import ClusterStatusWrites
from lxr.store.counters import Counters
from lxr.store.dependencies import DependencyViews
from lxr.store.desired import DesiredState
from lxr.store.events import Events
from lxr.store.leases import Leases
from lxr.store.pages import PagedViews
from lxr.store.reruns import Reruns
from lxr.store.status import ExperimentStatusWrites
from lxr.store.views import Views
from lxr.store.writes import ControllerWrites

__all__ = ["Store"]


class Store(
    Admission,
    Reruns,
    Views,
    PagedViews,
    Events,
    DesiredState,
    ControllerWrites,
    ExperimentStatusWrites,
    ClusterStatusWrites,
    Leases,
    Counters,
    DependencyViews,
    BlobStore,
):
    """Access to lxr's database. Cheap to create; one per process is enough."""
