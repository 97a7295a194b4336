"""Waiting for experiments to converge: by watching a running controller, or by reconciling here."""

from __future__ import annotations

from lxr.cli.console import EXIT_FAILED, EXIT_OK, error, note, rich_console

__all__ = ["reconcile_until_submitted", "wait_converged", "wake_controller"]


def wake_controller(store) -> str | None:
    """Notify a running controller; returns its holder id, or None when none runs."""
    from lxr.reconciler.wakeup import wake_controller as wake

    return wake(store)


def wait_converged(store, names: list[str], timeout: float | None, gone: bool = False) -> int:
    """Reconcile (here, or by watching a running controller) until ``names`` converge."""
    from lxr.cli.progress import Progress

    if not names:
        return EXIT_OK
    progress = Progress(rich_console(), store, names, gone=gone)
    try:
        ok = _reconcile_here(store, progress.refresh, timeout, follow=True)
    except KeyboardInterrupt:
        progress.stop()
        note("interrupted; tasks keep running and are picked up by the next controller")
        return 130
    progress.stop()
    if not ok:
        error(f"timed out after {timeout:.0f}s; work continues under a controller")
        return EXIT_FAILED
    return progress.final_report()


def _reconcile_here(store, until, timeout: float | None, follow: bool = False) -> bool:
    """The reconciler's one in-process loop (imported here: `lxr --help` stays fast)."""
    from lxr.reconciler.inprocess import reconcile_until

    return reconcile_until(store, until, timeout=timeout, follow=follow)


def reconcile_until_submitted(store, names: list[str], timeout: float | None) -> int:
    """Run the reconciler here until every work unit of ``names`` reached the scheduler."""

    def submitted() -> bool:
        for name in names:
            st = store.get_experiment(name).status
            conds = {c.type: c.status.value for c in (st.conditions if st else [])}
            if conds.get("Submitted") != "True" and conds.get("Finished") != "True":
                return False
        return True

    if not _reconcile_here(store, submitted, timeout) and not submitted():
        error("timed out before every work unit was submitted")
        return EXIT_FAILED
    note(
        "submitted; no controller is running: start one with `lxr controller run` to "
        "follow the work units (retries, preemption), or launch with --wait",
        dim=True,
    )
    return EXIT_OK
