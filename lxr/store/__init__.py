"""The store: desired state written by ``lxr apply`` and launch scripts, status written by the
controller. SQLAlchemy 2 over SQLite (default, WAL) or PostgreSQL, schema by Alembic.

Every write is one transaction. One module per concern, each a part of :class:`Store`:

- :mod:`~lxr.store.engine`: connections, transactions, migrations
- :mod:`~lxr.store.admission`: apply, delete, stop (what users write); sweep edits in
  :mod:`~lxr.store.unit_edits`, ``lxr rerun`` in :mod:`~lxr.store.reruns`
- :mod:`~lxr.store.views`: what ``get`` and ``describe`` read
- :mod:`~lxr.store.pages`: listings read page by page (100k work units), counts in SQL
- :mod:`~lxr.store.events`: events in and out
- :mod:`~lxr.store.desired`: the controller's reads
- :mod:`~lxr.store.writes`, :mod:`~lxr.store.status`: the controller's writes
- :mod:`~lxr.store.clusters`: cluster conditions (``Reachable``), deleting clusters
- :mod:`~lxr.store.leases`: the leader lease
- :mod:`~lxr.store.counters`: totals for metrics
- :mod:`~lxr.store.codecs`: rows to records and API objects, patches to rows
"""

from __future__ import annotations

from lxr.paths import default_database_url, state_dir
from lxr.store.admission import IMMUTABLE_SPEC_FIELDS, Admission, ApplyResult
from lxr.store.clusters import ClusterStatusWrites, ForgottenExperiment
from lxr.store.codecs import ts
from lxr.store.counters import Counters
from lxr.store.desired import DesiredState, SubmissionInfo
from lxr.store.errors import Conflict, Invalid, LeaseLost, NotFound
from lxr.store.events import EventInfo, Events
from lxr.store.leases import LeaseInfo, Leases
from lxr.store.pages import PagedViews
from lxr.store.reruns import Reruns
from lxr.store.status import ExperimentStatusWrites
from lxr.store.views import LOCAL_CLUSTER, Views
from lxr.store.writes import ControllerWrites

__all__ = [
    "IMMUTABLE_SPEC_FIELDS",
    "LOCAL_CLUSTER",
    "ApplyResult",
    "Conflict",
    "EventInfo",
    "ForgottenExperiment",
    "Invalid",
    "LeaseInfo",
    "LeaseLost",
    "NotFound",
    "Store",
    "SubmissionInfo",
    "default_database_url",
    "state_dir",
    "ts",
]


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
):
    """Access to lxr's database. Cheap to create; one per process is enough."""
