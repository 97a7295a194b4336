"""A token bucket, so lxr never floods a shared cluster's scheduler with commands."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. ``acquire`` waits for a token."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = anyio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self) -> float:
        """Seconds until a token is free (0 when one is)."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Take one token, sleeping until one is free."""
        async with self._lock:
            while (wait := self.delay()) > 0:  # noqa: ASYNC110 - time-based, no event to await
                await anyio.sleep(wait)
            self._tokens -= 1
