"""The one in-process reconcile loop: what ``lxr apply --wait``, ``lxr wait``, ``lxr launch``
(with and without ``--wait``), an XManager launch script waiting on its work units, and tests
(:func:`lxr.testing.converge`) run when they wait for experiments here.

A real :class:`~lxr.reconciler.controller.Controller` runs in this process: it takes the
lease like any other when none leads; while another controller leads, it only follows (a
standby), and it takes over once that one stops renewing its lease. Either way the caller's
``until()`` is checked as the loop goes, and a deadline ends the wait with ``False``.
"""

from __future__ import annotations

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
            # as a standby it looks at the lease (and until()) every FOLLOW_POLL_SECONDS
            self.controller = Controller(self.store, standby_interval=FOLLOW_POLL_SECONDS)
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
        """Reconcile until ``until()`` holds (the caller bounds it with a cancel scope). While
        another controller leads, this one only watches (``until()`` every
        :data:`FOLLOW_POLL_SECONDS`); once that one stops renewing its lease (it exited, died
        or hangs), this one takes over, never before. ``follow`` is accepted for callers that
        only watch; the takeover is the same for them, so a wait never outlives the controller
        it watched."""
        del follow
        await self._controller().run(until=until)

    async def close(self) -> None:
        """Close this process's drivers and give the lease up (after :meth:`step`)."""
        ctl, self.controller = self.controller, None
        if ctl is None:
            return
        await ctl.close()


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
