"""``lxr controller run``: the reconcile loop."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from lxr.cli.console import EXIT_FAILED, die, note
from lxr.cli.options import open_store
from lxr.redaction import redact

__all__ = ["controller_app", "controller_run", "register"]

controller_app = typer.Typer(help="Run the reconcile loop.", no_args_is_help=True)


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
) -> None:
    """Run the reconcile loop until interrupted. One controller leads at a time (a lease in
    the database); `lxr apply` wakes it at once. Store and cluster errors are retried: the
    loop never exits on them."""
    import anyio

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
    controller = Controller(store, interval=interval, metrics=metrics)
    logging.getLogger("lxr").setLevel(
        min(logging.getLogger("lxr").getEffectiveLevel(), logging.INFO)
    )
    note(f"controller {controller.holder} on {redact(store.url)}")
    outcome = {"ok": True}

    async def main() -> None:
        import signal

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
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        note("controller stopped")
    finally:
        if server is not None:
            server.shutdown()
    if not outcome["ok"]:
        die("the pass failed (see the warnings above)", EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add the ``controller`` group to ``app``; its subcommands register on ``controller_app``."""
    app.add_typer(controller_app, name="controller")
