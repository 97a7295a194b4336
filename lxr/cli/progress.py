"""Live progress of experiments converging, for ``apply --wait`` and ``delete``.

On a terminal: a live display. Piped: one line when the state changes, at most one a second
(the last state is always printed before the final report).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lxr.api.phases import EXPERIMENT_INITIAL, WORK_UNIT_TERMINAL, ExperimentPhase, WorkUnitPhase
from lxr.api.resources import Experiment
from lxr.cli.console import out
from lxr.store import NotFound, Store

__all__ = ["Progress", "failure_cause"]

#: the order phases are listed in: active ones first, in the enum's order
_ORDER = tuple(p.value for p in sorted(WorkUnitPhase, key=lambda p: p in WORK_UNIT_TERMINAL))
_W = WorkUnitPhase
_STYLES = {
    _W.SUCCEEDED.value: "green",
    _W.FAILED.value: "red",
    _W.RUNNING.value: "cyan",
    _W.QUEUED.value: "blue",
    _W.BACKOFF.value: "yellow",
    _W.PENDING.value: "dim",
    _W.STOPPED.value: "magenta",
    _W.UNKNOWN.value: "yellow",
}
# piped progress: at most one line per this many seconds
LINE_INTERVAL = 1.0


class Progress:
    """Tracks experiments until each has finished (or is gone, when deleting)."""

    def __init__(
        self, console: Console, store: Store, names: list[str], gone: bool = False
    ) -> None:
        self.console = console
        self.store = store
        self.names = names
        self.gone = gone
        self.exps: dict[str, Experiment | None] = {}
        self.live: Live | None = None
        if console.is_terminal:
            self.live = Live(console=console, refresh_per_second=4, transient=True)
            self.live.start()
        self._last_line = ""
        self._pending_line = ""
        self._last_time = 0.0

    def _done(self, exp: Experiment | None) -> bool:
        if exp is None:
            return True
        if self.gone:
            return False
        st = exp.status
        if st is None or st.observed_generation != exp.metadata.generation:
            return False
        return any(c.type == "Finished" and c.status.value == "True" for c in st.conditions)

    def refresh(self) -> bool:
        """Re-read the experiments and redraw; True when all are done."""
        for name in self.names:
            try:
                self.exps[name] = self.store.get_experiment(name)
            except NotFound:
                self.exps[name] = None
        done = all(self._done(e) for e in self.exps.values())
        if self.live is not None:
            self.live.update(self._render())
        else:
            line = " | ".join(self._summary(n, e) for n, e in self.exps.items())
            if line != self._last_line:
                self._pending_line = line
            now = time.monotonic()
            if self._pending_line and (done or now - self._last_time >= LINE_INTERVAL):
                self._flush_line(now)
        return done

    def _flush_line(self, now: float) -> None:
        out(self._pending_line)
        self._last_line, self._pending_line, self._last_time = self._pending_line, "", now

    @staticmethod
    def _summary(name: str, exp: Experiment | None) -> str:
        if exp is None:
            return f"{name}: deleted"
        counts = exp.status.work_units if exp.status else {}
        parts = [f"{counts[p]} {p}" for p in _ORDER if counts.get(p)]
        phase = exp.status.phase.value if exp.status else EXPERIMENT_INITIAL.value
        return f"{name}: {phase} ({', '.join(parts) or 'starting'})"

    def _render(self) -> Group:
        rows: list[Any] = []
        for name, exp in self.exps.items():
            if exp is None:
                rows.append(Text(f"{name}: deleted"))
                continue
            counts = exp.status.work_units if exp.status else {}
            total = counts.get("total", 0) or 1
            finished = sum(counts.get(p, 0) for p in WORK_UNIT_TERMINAL)
            grid = Table.grid(padding=(0, 1))
            states = Text("  ").join(
                Text(f"{counts[p]} {p}", style=_STYLES.get(p, "")) for p in _ORDER if counts.get(p)
            )
            grid.add_row(
                Text(name, style="bold"),
                ProgressBar(total=total, completed=finished, width=30),
                Text(f"{finished}/{total}"),
                states,
            )
            rows.append(grid)
        return Group(*rows)

    def stop(self) -> None:
        """Remove the live display (piped: print the last state if it was held back)."""
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self._pending_line:
            self._flush_line(time.monotonic())

    def final_report(self) -> int:
        """Print each experiment's work units; 0 when all succeeded (or are gone), else 1."""
        from lxr.cli.formats import OutputSpec
        from lxr.cli.printing import print_items

        code = 0
        for name, exp in self.exps.items():
            if exp is None:
                continue
            units = self.store.list_work_units(name)
            print_items("WorkUnit", units, OutputSpec("table"))
            st = exp.status
            ok = next((c for c in (st.conditions if st else []) if c.type == "Succeeded"), None)
            phase = st.phase.value if st else EXPERIMENT_INITIAL.value
            msg = f": {ok.message}" if ok and ok.message else ""
            if phase == ExperimentPhase.FAILED:
                cause = failure_cause(units)
                msg += f" ({cause})" if cause else ""
            out(f"experiment/{name} {phase}{msg}")
            if phase != ExperimentPhase.SUCCEEDED:
                code = 1
        return code


def failure_cause(units: list[Any]) -> str:
    """The first failed work unit and why, e.g. ``first: quickstart-2: Error, exit code 1``."""
    for unit in units:
        st = unit.status
        if st.phase != WorkUnitPhase.FAILED:
            continue
        parts = [st.reason or WorkUnitPhase.FAILED.value]
        if st.exit_code is not None:
            parts.append(f"exit code {st.exit_code}")
        if st.message:
            parts.append(st.message)
        return f"first: {unit.metadata['name']}: {', '.join(parts)}"
    return ""
