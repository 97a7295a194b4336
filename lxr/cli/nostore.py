"""What read-only commands see when the store does not exist yet: nothing, said once.

``lxr get``, ``describe``, ``logs``, ``wait``, ``stop`` and ``delete`` never create a
database: on a SQLite file that is not there they read from :class:`NoStore`, which holds
only the ``local`` cluster and names the URL it looked at.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["NoStore", "missing_store_url"]


def missing_store_url(url: str) -> bool:
    """True when ``url`` is a SQLite file that does not exist (reading must not create it)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # opening it says what is wrong, in lxr's words
        return False
    if parsed.get_backend_name() != "sqlite":
        return False
    db = parsed.database
    return db is not None and db not in ("", ":memory:") and not Path(db).exists()


class NoStore:
    """An empty, read-only stand-in for :class:`~lxr.store.Store`."""

    def __init__(self, url: str) -> None:
        from lxr.store.reads import missing_why

        self.url = url
        self.raised = False
        self.why = missing_why(url)

    def _missing(self, what: str) -> Exception:
        from lxr.store import NotFound

        self.raised = True
        return NotFound(f"{what} not found ({self.why})")

    def lease(self, name: str = "controller") -> None:
        """Nobody leads a store that does not exist."""
        return None

    def lease_info(self, name: str = "controller") -> None:
        """No lease was ever taken on a store that does not exist."""
        return None

    def list_experiments(self, selector: Any = None) -> list[Any]:
        """None yet."""
        return []

    def get_experiment(self, name: str) -> Any:
        """Raises NotFound naming the URL."""
        raise self._missing(f"experiment {name!r}")

    def experiment_uid(self, name: str) -> str:
        """Raises NotFound naming the URL."""
        raise self._missing(f"experiment {name!r}")

    def delete_experiment(self, name: str) -> bool:
        """Raises NotFound naming the URL."""
        raise self._missing(f"experiment {name!r}")

    def stop_work_units(self, experiment: str, indexes: Any) -> list[int]:
        """Raises NotFound naming the URL."""
        raise self._missing(f"experiment {experiment!r}")

    def iter_work_units(self, experiment: str, **_: Any) -> Iterator[dict[str, Any]]:
        """Raises NotFound naming the URL."""
        raise self._missing(f"experiment {experiment!r}")

    def list_work_units(self, experiment: str | None = None, **_: Any) -> list[Any]:
        """Raises NotFound naming the URL (an empty list without an experiment)."""
        if experiment:
            raise self._missing(f"experiment {experiment!r}")
        return []

    def work_units_needing_attention(self, experiment: str, limit: int = 50) -> Any:
        """Raises NotFound naming the URL."""
        raise self._missing(f"experiment {experiment!r}")

    def find_attempt(self, experiment: str, *_: Any) -> Any:
        """Raises NotFound naming the URL."""
        raise self._missing(f"experiment {experiment!r}")

    def list_clusters(self) -> list[Any]:
        """Only ``local``, which always exists."""
        from lxr.store import LOCAL_CLUSTER

        return [LOCAL_CLUSTER]

    def get_cluster(self, name: str) -> Any:
        """``local``; any other raises NotFound naming the URL."""
        from lxr.store import LOCAL_CLUSTER

        if name == "local":
            return LOCAL_CLUSTER
        raise self._missing(f"cluster {name!r}")

    def list_events(self, experiment: str | None = None, **_: Any) -> list[Any]:
        """None yet (NotFound for an experiment's)."""
        if experiment:
            raise self._missing(f"experiment {experiment!r}")
        return []

    def cluster_status(self, name: str) -> Any:
        """Nothing observed yet."""
        from lxr.api.resources import ClusterStatus

        return ClusterStatus()

    def cluster_events(self, name: str, limit: int = 25) -> list[Any]:
        """None yet."""
        return []

    def experiments_on(self, cluster: str) -> list[str]:
        """None yet."""
        return []

    def delete_cluster(self, name: str) -> None:
        """Raises NotFound naming the URL (Invalid for ``local``, which always exists)."""
        from lxr.store import Invalid

        if name == "local":
            raise Invalid("cluster 'local' always exists; it cannot be deleted")
        raise self._missing(f"cluster {name!r}")

    def close(self) -> None:
        """Nothing to release."""
