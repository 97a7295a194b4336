"""Waiting for experiments to converge: by watching a running controller, or by reconciling here."""

from __future__ import annotations

from collections.abc import Callable

from lxr.cli.console import EXIT_FAILED, EXIT_OK, error, note, rich_console, warn

__all__ = [
    "WAIT_STOPPED",
    "no_controller_message",
    "reconcile_until_submitted",
    "start_background_controller",
    "wait_converged",
    "wake_controller",
    "who_continues",
]


def wake_controller(store) -> str | None:
    """Notify a running controller; returns its holder id, or None when none runs."""
    from lxr.reconciler.wakeup import wake_controller as wake

    return wake(store)


#: what :func:`wait_converged` returns when its ``stop_when`` said to stop (not an exit code)
WAIT_STOPPED = -1


def wait_converged(
    store,
    names: list[str],
    timeout: float | None,
    gone: bool = False,
    stop_when: Callable[[], bool] | None = None,
) -> int:
    """Wait until ``names`` converge, showing progress, or until ``stop_when()`` (asked after
    each pass or look) is true: :data:`WAIT_STOPPED`. A controller runs in this process all
    along: while another one leads, it only watches; when that one stops renewing its lease
    (it exited or hangs), this one takes over, so a wait never outlives the controller."""
    from lxr.cli.progress import Progress

    if not names:
        return EXIT_OK
    progress = Progress(rich_console(), store, names, gone=gone)
    stopped = {"yes": False}

    def until() -> bool:
        if progress.refresh():
            return True
        stopped["yes"] = stop_when is not None and stop_when()
        return stopped["yes"]

    try:
        ok = _reconcile_here(store, until, timeout, follow=True)
    except KeyboardInterrupt:
        progress.stop()
        note("interrupted; tasks keep running and are picked up by the next controller")
        return 130
    progress.stop()
    if stopped["yes"]:
        return WAIT_STOPPED
    if not ok:
        error(f"timed out after {timeout:.0f}s; {who_continues(store)}")
        return EXIT_FAILED
    return progress.final_report()


def who_continues(store) -> str:
    """What happens to the work after this process stops waiting, in words."""
    lease = store.lease()
    if lease is not None:
        return f"work continues under the controller {lease[0]}"
    return (
        "no controller is running: submitted tasks keep running, but nothing follows them "
        "(retries, status) until one starts: `lxr controller run`"
    )


def no_controller_message(store) -> str:
    """Why no controller was woken: none runs, or one stopped renewing its lease."""
    import time

    info = store.lease_info()
    if info is not None and info.renewed_at > 0:
        ago = time.time() - info.renewed_at
        return (
            f"the controller {info.holder} has not renewed its lease for {ago:.0f}s (it "
            "stopped or is stalled): start one with `lxr controller run`, "
            "or apply with --wait to run it here"
        )
    return (
        "no controller is running: start one with `lxr controller run`, "
        "or apply with --wait to run it here"
    )


def _reconcile_here(store, until, timeout: float | None, follow: bool = False) -> bool:
    """The reconciler's one in-process loop (imported here: `lxr --help` stays fast)."""
    from lxr.reconciler.inprocess import reconcile_until

    return reconcile_until(store, until, timeout=timeout, follow=follow)


def reconcile_until_submitted(store, names: list[str], timeout: float | None) -> int:
    """Run the reconciler here until every work unit of ``names`` reached the scheduler, or
    waits for a dependency (the controller submits it when that is met), or the controller held
    it because a program it needs is missing (a warning naming it: the desired state is
    written, and a controller submits it once the program is there)."""
    held: list[str] = []

    def submitted() -> bool:
        held.clear()
        waiting = False
        for name in names:
            st = store.get_experiment(name).status
            conds = {c.type: c for c in (st.conditions if st else [])}
            runtime = conds.get("RuntimeReady")
            if runtime is not None and runtime.status.value == "False":
                held.append(
                    f"experiment/{name}: nothing submitted: {runtime.reason}: {runtime.message}"
                )
            elif not any(
                conds.get(t) is not None and conds[t].status.value == "True"
                for t in ("Submitted", "Finished")
            ):
                waiting = True
        return not waiting or store.not_yet_submitted(names) == 0

    if not _reconcile_here(store, submitted, timeout) and not submitted():
        error("timed out before every work unit was submitted")
        return EXIT_FAILED
    for line in held:
        warn(line)
    if held:
        return EXIT_OK
    waiting = sum(
        (store.get_experiment(n).status.work_units or {}).get("Waiting", 0) for n in names
    )
    what = f"submitted, {waiting} waiting for dependencies" if waiting else "submitted"
    note(
        f"{what}; no controller is running: start one with `lxr controller run` to "
        "follow the work units (retries, preemption, dependencies), or launch with --wait",
        dim=True,
    )
    return EXIT_OK


def start_background_controller(store, no_daemon: bool) -> None:
    """No controller leads: start this store's background controller (it exits when idle),
    unless asked not to."""
    from lxr.cli.daemon import daemon_files, daemon_wanted, start_daemon, started_note

    if not daemon_wanted(no_daemon):
        note(no_controller_message(store), dim=True)
        return
    pid, started = start_daemon(store.url)
    if started:
        note(started_note(pid, daemon_files(store.url)), dim=True)
    else:
        note(f"the background controller (pid {pid or 'starting'}) will pick this up", dim=True)
