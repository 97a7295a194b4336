"""The one in-process reconcile loop: what ``lxr apply --wait``, ``lxr wait``, ``lxr launch``
(with and without ``--wait``), an XManager launch script waiting on its work units, and tests
(:func:`lxr.testing.converge`) run when they wait for experiments here.

When no controller leads, a real :class:`~lxr.reconciler.controller.Controller` runs in this
process (it takes the lease like any other, so a second waiter only follows); when one leads,
this process only follows it, polling. Either way the caller's ``until()`` is checked after
each pass, and a deadline ends the wait with ``False``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import anyio

from lxr.reconciler.controller import Controller
from lxr.store import Store

__all__ = ["FOLLOW_POLL_SECONDS", "InProcessReconciler", "reconcile_until"]

#: how often a waiter that follows another controller looks again
FOLLOW_POLL_SECONDS = 0.5


class InProcessReconciler:
    """Reconcile passes in this process, as long as no other controller leads."""

    def __init__(self, store: Store, controller: Controller | None = None) -> None:
        self.store = store
        self.controller = controller

    def _controller(self) -> Controller:
        if self.controller is None:
            self.controller = Controller(self.store)
        return self.controller

    def leads_elsewhere(self) -> bool:
        """True when another controller holds the lease."""
        lease = self.store.lease()
        mine = self.controller is not None and lease is not None
        return lease is not None and not (mine and lease[0] == self.controller.holder)  # type: ignore[union-attr]

    async def step(self, pause: float = FOLLOW_POLL_SECONDS) -> None:
        """One reconcile pass here (unless another controller leads), then ``pause`` seconds."""
        if not self.leads_elsewhere():
            await self._controller().run_once()
        await anyio.sleep(pause)

    async def run(self, until: Callable[[], bool], *, follow: bool = False) -> None:
        """Reconcile until ``until()`` holds (the caller bounds it with a cancel scope). With
        ``follow``, a process that finds another controller leading only watches it (polling
        every :data:`FOLLOW_POLL_SECONDS`); otherwise its controller waits for the lease, and
        takes it over from a controller that died."""
        if follow and self.leads_elsewhere():
            # the store has no event to await here: poll it
            while not until():  # noqa: ASYNC110
                await anyio.sleep(FOLLOW_POLL_SECONDS)
        else:
            await self._controller().run(until=until)

    async def close(self) -> None:
        """Close this process's drivers and give the lease up (after :meth:`step`)."""
        ctl, self.controller = self.controller, None
        if ctl is None:
            return
        for driver, _ in ctl.drivers.values():
            with contextlib.suppress(Exception):  # closing is best effort
                await driver.close()
        self.store.release_lease(ctl.holder)


def reconcile_until(
    store: Store,
    until: Callable[[], bool],
    *,
    timeout: float | None = None,
    controller: Controller | None = None,
    follow: bool = False,
) -> bool:
    """Run the in-process loop until ``until()`` holds (True) or ``timeout`` seconds pass
    (False); ``follow`` as in :meth:`InProcessReconciler.run`. Synchronous: for the CLI and
    tests."""

    done = False

    def check() -> bool:
        nonlocal done
        done = until()
        return done

    async def main() -> None:
        with anyio.move_on_after(timeout):
            await InProcessReconciler(store, controller).run(check, follow=follow)

    anyio.run(main)
    return done
