"""``lxr controller stop|status|install``: the background controller and the user service."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from lxr.cli.commands.controller import controller_app
from lxr.cli.console import EXIT_FAILED, note, out
from lxr.redaction import redact

__all__ = ["controller_install", "controller_status", "controller_stop", "register", "unit_text"]

UNIT_NAME = "lxr-controller.service"


def _ago(when: float) -> str:
    seconds = max(0.0, time.time() - when)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


@controller_app.command("stop")
def controller_stop() -> None:
    """Stop this store's background controller (the one `lxr apply` started): SIGTERM, so it
    gives its lease up; tasks keep running and the next controller follows them."""
    from lxr.cli.daemon import daemon_files, stop_daemon
    from lxr.paths import default_database_url

    url = default_database_url()
    pid = stop_daemon(daemon_files(url))
    if pid is None:
        note(f"no background controller runs for {redact(url)}")
        return
    out(f"controller daemon (pid {pid}) stopped")


@controller_app.command("status")
def controller_status() -> None:
    """Which controller leads (the lease holder), since when, its pid and host, its last
    cycle; and whether this store's background controller runs. Exit 1 when none leads."""
    import socket

    from lxr.cli.daemon import daemon_files, daemon_pid
    from lxr.cli.options import open_store

    store = open_store(read_only=True)
    info = store.lease_info()
    out(f"store:      {redact(store.url)}")
    leading = info is not None and info.live()
    if info is None:
        out("leader:     none (no controller ever ran on this store)")
    else:
        host, _, rest = info.holder.partition(":")
        pid = rest.partition(":")[0]
        where = "this host" if host == socket.gethostname() else f"host {host}"
        if leading:
            out(
                f"leader:     {info.holder} (pid {pid} on {where}), leading since "
                f"{_utc(info.acquired_at)} ({_ago(info.acquired_at)}), epoch {info.epoch}, "
                f"lease renewed {_ago(info.renewed_at)}"
            )
        elif info.renewed_at > 0:
            out(
                f"leader:     none (the lease of {info.holder} lapsed: last renewed "
                f"{_ago(info.renewed_at)})"
            )
        else:
            out(f"leader:     none ({info.holder}, pid {pid} on {where}, gave the lease up)")
        if info.last_cycle_at is not None:
            out(f"last cycle: {_utc(info.last_cycle_at)} ({_ago(info.last_cycle_at)}): "
                f"{info.last_cycle}")  # fmt: skip
    files = daemon_files(store.url)
    pid_of = daemon_pid(files)
    if pid_of is None:
        out("daemon:     not running (`lxr apply` starts it when no controller leads)")
    else:
        out(f"daemon:     pid {pid_of or '(starting)'}, log {files.log}")
    if not leading:
        raise typer.Exit(EXIT_FAILED)


def unit_text(env_file: Path | None) -> str:
    """The systemd ``--user`` unit that runs ``lxr controller run`` for this user."""
    state = os.environ.get("XDG_STATE_HOME")
    lines = [
        "# lxr's controller for this user (written by `lxr controller install`)",
        "[Unit]",
        "Description=lxr controller (reconciles this user's ML experiments)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        f"ExecStart={sys.executable} -m lxr.cli controller run",
        "Restart=on-failure",
        "RestartSec=5s",
        "# SIGTERM makes it give its lease up; level-triggered, so stopping it anywhere is safe",
        "TimeoutStopSec=30s",
        "# stop the controller only: tasks of the local cluster it started keep running and",
        "# the next controller follows them",
        "KillMode=process",
    ]
    if state:
        lines.append(f"Environment=XDG_STATE_HOME={state}")
    if env_file is not None:
        lines.append(f"EnvironmentFile={env_file}")
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


@controller_app.command("install")
def controller_install(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the unit and where it would go; write nothing.")
    ] = False,
) -> None:
    """Write a systemd --user unit that runs the controller for this user (a login node or a
    workstation), and say how to enable it. LXR_DATABASE_URL, if set, goes to a private
    environment file (mode 0600), never into the unit."""
    from lxr.paths import make_private_dir, make_private_file

    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    unit_path = config / "systemd" / "user" / UNIT_NAME
    url = os.environ.get("LXR_DATABASE_URL")
    env_file = config / "lxr" / "controller.env" if url else None
    text = unit_text(env_file)
    if dry_run:
        out(f"# would write {unit_path}")
        if env_file is not None:
            out(f"# and {env_file} (mode 0600): LXR_DATABASE_URL={redact(url or '')}")
        out(text)
        return
    if env_file is not None:
        make_private_dir(env_file.parent)
        make_private_file(env_file)
        env_file.write_text(f"LXR_DATABASE_URL={url}\n")
    unit_path.parent.mkdir(parents=True, exist_ok=True)
    unit_path.write_text(text)
    out(f"wrote {unit_path}")
    if env_file is not None:
        out(f"wrote {env_file} (LXR_DATABASE_URL, mode 0600)")
    out("enable and start it with:")
    out("  systemctl --user daemon-reload && systemctl --user enable --now lxr-controller")
    out("keep it running after you log out (login nodes):  loginctl enable-linger $USER")
    out("its log:  journalctl --user -u lxr-controller -f")


def register(app: typer.Typer) -> None:
    """The subcommands register on ``controller_app`` (added to ``app`` by ``controller``)."""
    del app
