"""``lxr apply -f FILE`` handed to the running controller, as kubectl hands a file to the API
server: with a controller of this store leading on this host, the command reads the file and
sends it over the controller's request socket (:mod:`lxr.reconciler.handoff`); the
controller, which has the models, the store and the schedulers imported already, validates,
resolves and writes it, starts a pass at once and answers with what ``lxr apply`` prints and
its exit code (:mod:`lxr.cli.applyserve`). This module imports only the standard library, so
the command costs little more than starting Python.

Only ``apply -f FILE`` (a file, or ``-`` for stdin) with ``--dry-run``, ``--max-work-units N``
and ``--no-daemon`` is handed over, in the forms ``--opt VALUE`` and ``--opt=VALUE``. When no
controller answers, the command starts this store's background controller first (unless
``--dry-run``, ``--no-daemon`` or ``LXR_NO_DAEMON``) and hands the file to it once it listens.
The command does the work itself, as it always did, for anything else (``--wait``, ``--help``,
a directory, a file it cannot read, an unknown option), when the controller does not lead or
hands it back (a package to build, another version), or when its answer (or a daemon it
started) does not come.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from lxr.cli.argwords import read_words

TYPE_CHECKING = False  # typing is not imported at run time (see lxr.cli.main)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PROTOCOL", "handoff", "parse"]

#: the request's version; a controller of another version hands the work back
PROTOCOL = 1

#: the options handed over: word -> (parameter, kind), as :func:`read_words` reads them
_OPTIONS = {
    "-f": ("filename", "value"),
    "--filename": ("filename", "value"),
    "--dry-run": ("dry_run", "flag"),
    "--max-work-units": ("max_work_units", "int"),
    "--no-daemon": ("no_daemon", "flag"),
}
#: a larger file is left to the command (which refuses one over its limit in its own words)
_MAX_FILE_BYTES = 16 * 1024 * 1024
#: how long a background controller this command started may take to listen before the
#: command applies the file itself (Python's start-up and imports on a busy machine)
_DAEMON_START_SECONDS = 20.0
#: how long to wait for the controller's answer before applying here (a write is one
#: transaction and applying again is idempotent: nothing is done twice)
_ANSWER_SECONDS = 120.0


def parse(argv: list[str]) -> dict[str, Any] | None:
    """The options of ``apply ...`` in ``argv``, or None when the command should read it."""
    if not argv or argv[0] != "apply":
        return None
    # max_work_units None: the command's default (the controller knows it)
    args: dict[str, Any] = {"dry_run": False, "max_work_units": None, "filename": None}
    words = read_words(argv[1:], _OPTIONS, args, dash="filename")
    if words is None or words or args["filename"] is None:
        return None  # --wait, --help, a typo, a word: the command's
    if args["max_work_units"] is not None and args["max_work_units"] < 1:
        return None  # refused by the command, in its words
    return args


def handoff(argv: list[str]) -> int | None:
    """Run ``argv`` through a running controller: its exit code, or None when the command
    must do the work itself (with stdin as it was)."""
    args = parse(argv)
    if args is None:
        return None
    request = _request(args)
    if request is None:
        return None
    from lxr.paths import default_database_url
    from lxr.reconciler.sockets import request_sockets

    url = default_database_url()
    payload = json.dumps(request).encode()
    for path in request_sockets(url):
        answer = _ask(path, payload)
        if answer is None or "fallback" in answer:
            continue
        return _answered(answer)
    if _may_start_daemon(args):
        answer = _ask_new_daemon(url, payload, request["color"])
        if answer is not None:
            return _answered(answer)
    if args["filename"] == "-":  # read already: the command reads it again from here
        import io

        sys.stdin = io.StringIO(request["text"])
    return None


def _answered(answer: dict[str, Any]) -> int:
    """Print what the controller answered; its exit code."""
    sys.stdout.write(answer["stdout"])
    sys.stderr.write(answer["stderr"])
    return int(answer["code"])


def _may_start_daemon(args: dict[str, Any]) -> bool:
    """Whether this apply starts the background controller when none answered (as the
    command would after writing the file: not for --dry-run, --no-daemon, LXR_NO_DAEMON)."""
    from lxr.cli.daemon import daemon_wanted

    return not args["dry_run"] and daemon_wanted(bool(args.get("no_daemon")))


def _ask_new_daemon(url: str, payload: bytes, color: bool) -> dict[str, Any] | None:
    """No controller answered: start this store's background controller now and hand the
    file to it once it listens. It starts while this process would otherwise be importing
    what applying here needs, and submits without a second start-up after the write. None
    (the command applies the file itself, and finds the daemon started) when it does not
    listen within :data:`_DAEMON_START_SECONDS`, exits, or hands the file back."""
    import time

    from lxr.cli.daemon import daemon_files, process_alive, start_daemon, started_note
    from lxr.reconciler.sockets import request_sockets, socket_pid

    pid, started = start_daemon(url)
    if not pid:  # another apply's daemon is starting (its pid not written yet)
        return None
    deadline = time.monotonic() + _DAEMON_START_SECONDS
    while time.monotonic() < deadline and process_alive(pid):
        ours = [p for p in request_sockets(url) if socket_pid(p) == pid]
        answer = _ask(ours[0], payload) if ours else None
        if answer is not None:
            if "fallback" in answer:
                return None
            if started:
                message = started_note(pid, daemon_files(url))
                answer["stderr"] += f"\x1b[2m{message}\x1b[0m\n" if color else message + "\n"
            return answer
        time.sleep(0.01)
    return None


def _request(args: dict[str, Any]) -> dict[str, Any] | None:
    """What the controller needs to apply the file, or None when the command should read it."""
    filename = args["filename"]
    if filename == "-":
        text = sys.stdin.read()
        source, base_dir = "<stdin>", os.getcwd()
    else:
        path = Path(filename)
        try:
            with path.open("rb") as fh:
                if not os.path.isfile(path):
                    return None  # a directory (and whatever else): the command's
                raw = fh.read(_MAX_FILE_BYTES + 1)
            if len(raw) > _MAX_FILE_BYTES:
                return None
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None  # the command says why, in its words
        # as the command names it (typer's Path) and resolves it
        source, base_dir = str(path), os.path.abspath(path.parent)
    return {
        "protocol": PROTOCOL,
        "command": "apply",
        "text": text,
        "source": source,
        "base_dir": base_dir,
        "home": os.environ.get("HOME"),
        "color": not os.environ.get("NO_COLOR") and sys.stderr.isatty(),
        "dry_run": args["dry_run"],
        "max_work_units": args["max_work_units"],
    }


def _ask(path: Path, payload: bytes) -> dict[str, Any] | None:
    """The answer of the controller at ``path``, None when none came (no one listens, or it
    went away)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(_ANSWER_SECONDS)
        sock.connect(os.fspath(path))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
        answer = json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
    return answer if isinstance(answer, dict) else None
