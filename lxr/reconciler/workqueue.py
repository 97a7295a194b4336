"""A work queue of keys (cluster names) with per-key exponential backoff after errors.

The backoff is reset by a success and by a wake-up (:meth:`WorkQueue.reset`): a user who just
applied something wants it tried now, and a daemon that came back is noticed at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["WorkQueue"]


@dataclass
class WorkQueue:
    """Keys are due unless a recent error pushed them back: ``base * 2**(errors-1)``, capped."""

    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    _errors: dict[str, int] = field(default_factory=dict)
    _not_before: dict[str, float] = field(default_factory=dict)

    def due(self, keys: list[str], now: float) -> list[str]:
        """The keys that may be reconciled at ``now``."""
        return [k for k in keys if self._not_before.get(k, 0.0) <= now]

    def failed(self, key: str, now: float, cap: float | None = None) -> float:
        """Record an error for ``key``; returns the delay before it is due again (at most
        ``cap`` seconds when given, else ``cap_seconds``)."""
        errors = self._errors.get(key, 0) + 1
        self._errors[key] = errors
        limit = self.cap_seconds if cap is None else min(cap, self.cap_seconds)
        delay = min(limit, self.base_seconds * 2 ** min(errors - 1, 60))
        self._not_before[key] = now + delay
        return delay

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s errors."""
        self._errors.pop(key, None)
        self._not_before.pop(key, None)

    def reset(self) -> None:
        """Forget every key's errors: all are due now (after a wake-up)."""
        self._errors.clear()
        self._not_before.clear()

    def next_due(self) -> float | None:
        """When the earliest backed-off key becomes due, if any is backed off."""
        return min(self._not_before.values(), default=None)

    def depth(self, keys: list[str], now: float) -> int:
        """Keys waiting, due or backed off."""
        return len(set(keys) | {k for k, t in self._not_before.items() if t > now})

    def errors(self, key: str) -> int:
        """Consecutive errors of ``key``."""
        return self._errors.get(key, 0)
