"""``lxr controller run``: the reconcile loop (also as the background controller that
``lxr apply`` starts, ``--daemon``)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, die, note
from lxr.cli.options import open_store
from lxr.redaction import redact

__all__ = ["controller_app", "controller_run", "register"]

controller_app = typer.Typer(
    help="Run, inspect and stop the controller (the reconcile loop).", no_args_is_help=True
)


@controller_app.command("run")
def controller_run(
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between cycles for Slurm/SGE clusters.")
    ] = 2.0,
    metrics_addr: Annotated[
        str | None,
        typer.Option(
            "--metrics-addr", help="Serve Prometheus metrics at HOST:PORT, e.g. 127.0.0.1:9464."
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Run one pass over the clusters and exit: 1 if a cycle of it failed."
        ),
    ] = False,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(
            "--exit-when-idle",
            metavar="SECONDS",
            help="Exit once no experiment had work for this long.",
        ),
    ] = None,
    daemon: Annotated[
        bool,
        typer.Option(
            "--daemon",
            help="Run as this store's background controller (what `lxr apply` starts): at "
            "most one per store and user (a lock on its pid file), exits when idle for "
            "LXR_DAEMON_IDLE seconds (default 300) unless --exit-when-idle says otherwise.",
        ),
    ] = False,
) -> None:
    """Run the reconcile loop until interrupted. One controller leads at a time (a lease in
    the database); `lxr apply` wakes it at once, and on this host hands it the file to apply
    (a socket beside the wake-up socket). Store and cluster errors are retried: the loop
    never exits on them."""
    import os

    import anyio

    from lxr.cli.applyserve import serve_apply
    from lxr.cli.daemon import DEFAULT_IDLE_SECONDS, daemon_files, daemon_pid, hold_daemon_lock
    from lxr.reconciler.controller import Controller

    metrics = None
    server = None
    if metrics_addr:
        from lxr.metrics import Metrics, parse_metrics_addr, serve

        metrics = Metrics()
        host, port = parse_metrics_addr(metrics_addr)
        try:
            server = serve(metrics, host, port)
        except OSError as exc:
            die(f"--metrics-addr {metrics_addr}: {exc}", EXIT_FAILED)
        note(f"serving metrics on http://{host}:{port}/metrics")
    store = open_store()
    lock = None
    if daemon:
        files = daemon_files(store.url)
        lock = hold_daemon_lock(files)
        if lock is None:
            note(f"the controller daemon of this store runs already (pid {daemon_pid(files)})")
            return
        if exit_when_idle is None:
            exit_when_idle = float(os.environ.get("LXR_DAEMON_IDLE") or DEFAULT_IDLE_SECONDS)

    def new_controller() -> Controller:
        return Controller(
            store,
            interval=interval,
            metrics=metrics,
            idle_exit=exit_when_idle,
            requests=serve_apply,  # `lxr apply -f` hands its file over (lxr.cli.applyclient)
        )

    controller = new_controller()
    logging.getLogger("lxr").setLevel(
        min(logging.getLogger("lxr").getEffectiveLevel(), logging.INFO)
    )
    note(f"controller {controller.holder} on {redact(store.url)}")
    outcome = {"ok": True}

    async def main() -> None:
        import signal

        nonlocal controller
        # SIGTERM (systemctl stop, docker stop) stops like Ctrl-C: cancelling the loop lets
        # Controller.run close the drivers and release the lease; the default action would
        # kill the process on the spot.
        async with anyio.create_task_group() as tg:

            async def stop_on_sigterm() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                    async for _ in signals:
                        note("SIGTERM: stopping")
                        tg.cancel_scope.cancel()

            tg.start_soon(stop_on_sigterm)
            if once:
                try:
                    await controller.run_once()
                    outcome["ok"] = controller.last_pass_ok
                finally:
                    with anyio.CancelScope(shield=True):
                        await controller.close()
            else:
                await controller.run()
            # idle: the lease is given up first, then work is looked for once more, so an
            # apply that saw this controller's lease a moment ago is never left without one
            while not once and exit_when_idle is not None and store.clusters_with_work():
                controller = new_controller()
                await controller.run()
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        note("controller stopped")
    finally:
        if server is not None:
            server.shutdown()
        if lock is not None:
            os.close(lock)
    if not outcome["ok"]:
        die("the pass failed (see the warnings above)", EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add the ``controller`` group to ``app``; its subcommands register on ``controller_app``."""
    app.add_typer(controller_app, name="controller")
