"""``lxr logs``: a task's output, like ``kubectl logs``.

``logs workunit NAME``, ``logs experiment NAME --wu INDEX|NAME``, ``logs -l SELECTOR``
(several work units, each line prefixed with its name); ``--tail N``, ``--since 10m``,
``--previous`` (the attempt before the latest), ``-f`` (ends when the task ends).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer

from lxr.cli.completion import experiment_names, work_unit_names
from lxr.cli.console import EXIT_FAILED, EXIT_USAGE, die, warn
from lxr.cli.kinds import kind_of
from lxr.cli.options import LabelOpt, open_store, selector_of

__all__ = ["LogSource", "logs", "parse_duration", "register", "tail_lines"]

# after the task ended, -f keeps reading this long for the output still being written
FOLLOW_GRACE = 1.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``10m``, ``1h30m`` in seconds (kubectl's --since)."""
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r}: expected a duration such as 30s, 10m, 1h or 1h30m")
    return total


def tail_lines(data: bytes, n: int | None) -> bytes:
    """The last ``n`` lines of ``data`` (all when ``n`` is None or negative)."""
    if n is None or n < 0:
        return data
    if n == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:])


@dataclass
class LogSource:
    """One work unit's chosen attempt and where its output is."""

    experiment: str
    index: int
    name: str
    attempt: int
    cluster: str
    tag: str
    array_index: int


def _units(store: Any, kind: str | None, name: str | None, wu: list[str], selector: Any) -> list:
    from lxr.cli.commands.get import iter_work_units

    if kind is None:
        if not selector:
            die(
                "which work unit? lxr logs workunit NAME, lxr logs experiment NAME --wu INDEX, "
                "or lxr logs -l SELECTOR"
            )
        return list(iter_work_units(store, [], selector, None))
    if kind == "WorkUnit":
        if not name:
            die("lxr logs workunit NAME: which work unit? (EXPERIMENT-INDEX)")
        if wu:
            die("--wu goes with `logs experiment NAME`, not with a work unit")
        return list(iter_work_units(store, [name], selector, None))
    if kind != "Experiment":
        die(f"cannot show logs of a {kind}: logs are per work unit")
    if not name:
        die("lxr logs experiment NAME: which experiment?")
    if wu and all(w.isdigit() for w in wu):
        # by index: read just those work units, not the whole experiment
        store.experiment_uid(name)
        units = list(iter_work_units(store, [f"{name}-{w}" for w in wu], selector, None))
        found = {str(u["spec"]["index"]) for u in units}
        missing = [w for w in wu if str(int(w)) not in found]
        if missing:
            die(f"experiment {name} has no work unit {missing[0]}", EXIT_FAILED)
        return units
    units = list(iter_work_units(store, [name], selector, None))
    if wu:
        wanted = []
        for w in wu:
            hit = [
                u
                for u in units
                if str(u["spec"]["index"]) == w
                or u["metadata"]["name"] == w
                or u["metadata"]["labels"].get("name") == w
            ]
            if not hit:
                die(f"experiment {name} has no work unit {w!r}", EXIT_FAILED)
            wanted.extend(hit)
        return wanted
    if len(units) > 1 and not selector:
        die(
            f"experiment {name} has {len(units)} work units: pick one with --wu INDEX, or "
            f"several with -l, e.g. -l 'index in (0,1)'"
        )
    return units


def _choose(store: Any, unit: dict, attempt: int | None, previous: bool) -> LogSource:
    from lxr.store import NotFound

    name = unit["metadata"]["name"]
    exp = unit["metadata"]["labels"]["experiment"]
    attempts = unit["status"].get("attempts") or []
    phase = unit["status"]["phase"]
    if not attempts:
        raise NotFound(f"work unit {name} has no attempt yet (it is {phase})")
    numbers = [a["attempt"] for a in attempts]
    if attempt is not None:
        if attempt not in numbers:
            raise NotFound(
                f"work unit {name} has no attempt {attempt} "
                f"(attempts so far: {', '.join(map(str, numbers))})"
            )
        number = attempt
    elif previous:
        if len(numbers) < 2:
            raise NotFound(f"work unit {name} has no previous attempt (only attempt {numbers[-1]})")
        number = numbers[-2]
    else:
        number = numbers[-1]
    cluster, tag, array_index, _job = store.find_attempt(exp, unit["spec"]["index"], number)
    return LogSource(exp, unit["spec"]["index"], name, number, cluster, tag, array_index)


def _recent(unit: dict, since: float) -> bool:
    """Whether the work unit's latest attempt was running within the last ``since`` seconds."""
    attempts = unit["status"].get("attempts") or []
    if not attempts:
        return False
    end = attempts[-1].get("endTime")
    if end is None:
        return True
    return datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp() >= time.time() - since


def _ended(store: Any, src: LogSource) -> bool:
    from lxr.api.phases import ATTEMPT_TERMINAL

    units = store.list_work_units(src.experiment, index=src.index)
    if not units:
        return True
    for a in units[0].status.attempts:
        if a.attempt == src.attempt:
            return a.end_time is not None or a.phase in ATTEMPT_TERMINAL
    return True


class _Writer:
    """Writes output, with ``[workunit/NAME] `` before each line when there are several."""

    def __init__(self, prefix: str | None) -> None:
        self.prefix = prefix.encode() if prefix else None
        self.partial = b""

    def write(self, data: bytes) -> None:
        out = sys.stdout.buffer
        if self.prefix is None:
            out.write(data)
        else:
            data = self.partial + data
            lines = data.split(b"\n")
            self.partial = lines.pop()
            out.write(b"".join(self.prefix + line + b"\n" for line in lines))
        out.flush()

    def close(self) -> None:
        if self.partial:
            sys.stdout.buffer.write(self.prefix + self.partial + b"\n")  # type: ignore[operator]
            sys.stdout.buffer.flush()
            self.partial = b""


def _names(ctx: typer.Context, incomplete: str) -> list[str]:
    kind = kind_of(ctx.params.get("kind") or "")
    if kind == "WorkUnit":
        return work_unit_names(incomplete)
    return experiment_names(incomplete)


def logs(
    kind: Annotated[
        str | None,
        typer.Argument(help="workunit (wu) or experiment (exp); KIND/NAME works too."),
    ] = None,
    name: Annotated[str | None, typer.Argument(help="Its name.", autocompletion=_names)] = None,
    wu: Annotated[
        list[str] | None,
        typer.Option("--wu", help="With an experiment: a work unit's index or name (repeatable)."),
    ] = None,
    selector: LabelOpt = None,
    attempt: Annotated[
        int | None, typer.Option("--attempt", help="Attempt number (default: the latest).")
    ] = None,
    previous: Annotated[
        bool, typer.Option("--previous", "-p", help="The attempt before the latest.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new output until the task ends."),
    ] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", help="Only the last N lines (then new ones with -f).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only work units whose attempt ran within this long, e.g. 10m, 1h "
            "(task output has no time per line).",
        ),
    ] = None,
    stderr: Annotated[
        bool, typer.Option("--stderr", help="Show standard error instead of output.")
    ] = False,
    rank: Annotated[
        int | None,
        typer.Option(
            "--rank",
            min=0,
            help="A work unit of several ranks (nodes, tasksPerNode): this rank's output "
            "(without it: the launcher's own lines, such as which rank failed first).",
        ),
    ] = None,
    component: Annotated[
        str | None,
        typer.Option(
            "--component",
            help="A work unit of components (spec.components): that component's output "
            "(its rank 0 unless --rank is given).",
        ),
    ] = None,
    prefix: Annotated[
        bool | None,
        typer.Option(
            "--prefix/--no-prefix",
            help="Start each line with [workunit/NAME] (default: when several work units).",
        ),
    ] = None,
) -> None:
    """Print a task's output, from wherever the cluster keeps it (over SSH if remote).

    \b
    Examples:
      lxr logs workunit quickstart-3 -f
      lxr logs experiment quickstart --wu 3 --tail 20
      lxr logs experiment ddp --wu 0 --rank 3
      lxr logs experiment serve --wu 0 --component server
      lxr logs -l experiment=quickstart --previous
    """
    import anyio

    from lxr.schedulers.registry import make_driver
    from lxr.store import NotFound

    if kind is not None and "/" in kind and name is None:
        kind, _, name = kind.partition("/")
    resolved = None if kind is None else kind_of(kind)
    if kind is not None and resolved is None:
        die(f"logs of {kind!r}: expected workunit (wu) or experiment (exp)")
    if attempt is not None and previous:
        die("--attempt and --previous: give one of them")
    try:
        since_s = None if since is None else parse_duration(since)
    except ValueError as exc:
        die(f"--since {exc}", EXIT_USAGE)
    sel = selector_of(selector)
    store = open_store(read_only=True)
    try:
        units = _units(store, resolved, name, wu or [], sel)
    except NotFound as exc:
        die(str(exc), EXIT_FAILED)
    if since_s is not None:
        units = [u for u in units if _recent(u, since_s)]
    if not units:
        die("no work units match", EXIT_FAILED)
    sources: list[LogSource] = []
    for unit in units:
        try:
            sources.append(_choose(store, unit, attempt, previous))
        except NotFound as exc:
            if len(units) == 1:
                die(str(exc), EXIT_FAILED)
            warn(str(exc))
    if not sources:
        die("none of these work units has an attempt to show", EXIT_FAILED)
    several = prefix if prefix is not None else len(sources) > 1
    drivers: dict[str, Any] = {}
    failed: list[str] = []

    def driver_for(cluster: str) -> Any:
        if cluster not in drivers:
            drivers[cluster] = make_driver(cluster, store.get_cluster(cluster).spec)
        return drivers[cluster]

    async def show(src: LogSource) -> None:
        driver = driver_for(src.cluster)
        paths = driver.log_paths(src.tag, src.array_index, rank, component)
        path = paths.stderr if stderr else paths.stdout
        writer = _Writer(f"[workunit/{src.name}] " if several else None)
        try:
            if not follow:
                writer.write(tail_lines(await driver.transport.read_file(path), tail))
                return
            async with anyio.create_task_group() as tg:

                async def until_ended() -> None:
                    # the store is polled: a task's end is recorded there, not signalled
                    while not _ended(store, src):  # noqa: ASYNC110
                        await anyio.sleep(1.0)
                    await anyio.sleep(FOLLOW_GRACE)
                    tg.cancel_scope.cancel()

                tg.start_soon(until_ended)
                first = True
                async for chunk in driver.transport.follow(path):
                    writer.write(tail_lines(chunk, tail) if first else chunk)
                    first = False
        except FileNotFoundError:
            failed.append(f"{src.name}: no output yet at {path} (the task may not have started)")
        except Exception as exc:
            failed.append(f"{src.name}: cannot read {path} on cluster {src.cluster}: {exc}")
        finally:
            writer.close()

    async def main() -> None:
        try:
            async with anyio.create_task_group() as tg:
                for src in sources:
                    tg.start_soon(show, src)
        finally:
            for driver in drivers.values():
                await driver.close()

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        pass
    for problem in failed:
        if len(sources) == 1:
            die(problem.split(": ", 1)[1], EXIT_FAILED)
        warn(problem)
    if failed and len(failed) == len(sources):
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add ``logs`` to ``app``."""
    app.command()(logs)
