"""Waiting for experiments to converge: by watching a running controller, or by reconciling here."""

from __future__ import annotations

import time

from lxr.cli.console import EXIT_FAILED, EXIT_OK, console, err

__all__ = ["reconcile_until_submitted", "wait_converged", "wake_controller"]


def wake_controller(store) -> str | None:  # noqa: ANN001
    """Notify a running controller; returns its holder id, or None when none runs."""
    from lxr.reconciler.wakeup import wake_controller as wake

    return wake(store)


def wait_converged(store, names: list[str], timeout: float | None, gone: bool = False) -> int:  # noqa: ANN001
    """Reconcile (here, or by watching a running controller) until ``names`` converge."""
    from lxr.cli.progress import Progress

    if not names:
        return EXIT_OK
    progress = Progress(console, store, names, gone=gone)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if store.lease() is None:
            ok = _run_in_process(store, progress, deadline)
        else:
            ok = _watch(progress, deadline)
    except KeyboardInterrupt:
        progress.stop()
        err.print("interrupted; tasks keep running and are picked up by the next controller")
        return 130
    progress.stop()
    if not ok:
        err.print(f"[red]timed out[/] after {timeout:.0f}s; work continues under a controller")
        return EXIT_FAILED
    return progress.final_report()


def _watch(progress, deadline: float | None) -> bool:  # noqa: ANN001
    while not progress.refresh():
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _run_in_process(store, progress, deadline: float | None) -> bool:  # noqa: ANN001
    import anyio

    from lxr.reconciler.controller import Controller

    controller = Controller(store)
    result = {"done": False}

    def until() -> bool:
        result["done"] = progress.refresh()
        return result["done"]

    async def main() -> None:
        with anyio.move_on_after(
            None if deadline is None else max(0.0, deadline - time.monotonic())
        ):
            await controller.run(until=until)

    anyio.run(main)
    return result["done"]


def reconcile_until_submitted(store, names: list[str], timeout: float | None) -> int:  # noqa: ANN001
    """Run the reconciler here until every work unit of ``names`` reached the scheduler."""
    import anyio

    from lxr.reconciler.controller import Controller

    def submitted() -> bool:
        for name in names:
            st = store.get_experiment(name).status
            conds = {c.type: c.status.value for c in (st.conditions if st else [])}
            if conds.get("Submitted") != "True" and conds.get("Finished") != "True":
                return False
        return True

    async def main() -> None:
        with anyio.move_on_after(timeout):
            await Controller(store).run(until=submitted)

    anyio.run(main)
    if not submitted():
        err.print("[red]timed out[/] before every work unit was submitted")
        return EXIT_FAILED
    err.print(
        "[dim]submitted; no controller is running: start one with `lxr controller run` to "
        "follow the work units (retries, preemption), or launch with --wait[/]"
    )
    return EXIT_OK
