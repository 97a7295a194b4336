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
- :mod:`~lxr.store.dependencies`: upstream work units for the plan, apply's dependency checks,
  dependents and waiting work units
- :mod:`~lxr.store.blobs`: artifacts' bytes (files beside SQLite, chunks in PostgreSQL)
- :mod:`~lxr.store.codecs`: rows to records and API objects, patches to rows

Apart from :class:`Store`, :mod:`~lxr.store.reads` reads what ``lxr get`` and ``describe``
show in plain SQL on the database driver, without SQLAlchemy's ORM or pydantic.

This package imports its parts when a name is first used (``from lxr.store import Store``
works as usual): ``from lxr.store.reads import Reader`` or ``from lxr.store import NotFound``
must not cost SQLAlchemy's import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lxr.paths import default_database_url, state_dir
from lxr.store.errors import Conflict, Invalid, LeaseLost, NotFound

if TYPE_CHECKING:
    from lxr.store.admission import IMMUTABLE_SPEC_FIELDS, ApplyResult
    from lxr.store.blobs import StagedArtifact
    from lxr.store.clusters import ForgottenExperiment
    from lxr.store.codecs import ts
    from lxr.store.desired import SubmissionInfo
    from lxr.store.events import EventInfo
    from lxr.store.leases import LeaseInfo
    from lxr.store.store import Store
    from lxr.store.views import LOCAL_CLUSTER

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
    "StagedArtifact",
    "Store",
    "SubmissionInfo",
    "default_database_url",
    "state_dir",
    "ts",
]

# the names imported on first use, and the module that holds each
_LAZY = {
    "IMMUTABLE_SPEC_FIELDS": "admission",
    "ApplyResult": "admission",
    "StagedArtifact": "blobs",
    "ForgottenExperiment": "clusters",
    "ts": "codecs",
    "SubmissionInfo": "desired",
    "EventInfo": "events",
    "LeaseInfo": "leases",
    "Store": "store",
    "LOCAL_CLUSTER": "views",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
