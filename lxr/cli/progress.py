"""Live progress of experiments converging, for ``apply --wait`` and ``delete``."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from lxr.api.phases import EXPERIMENT_INITIAL, WORK_UNIT_TERMINAL, ExperimentPhase, WorkUnitPhase
from lxr.api.resources import Experiment
from lxr.cli.output import PHASE_STYLES, print_table, work_units_table
from lxr.store import NotFound, Store

__all__ = ["Progress"]

#: the order phases are listed in: active ones first, in the enum's order
_ORDER = tuple(p.value for p in sorted(WorkUnitPhase, key=lambda p: p in WORK_UNIT_TERMINAL))


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
                self.console.print(line, highlight=False)
                self._last_line = line
        return done

    @staticmethod
    def _summary(name: str, exp: Experiment | None) -> str:
        if exp is None:
            return f"{name}: deleted"
        counts = exp.status.work_units if exp.status else {}
        parts = [f"{counts[p]} {p}" for p in _ORDER if counts.get(p)]
        phase = exp.status.phase.value if exp.status else EXPERIMENT_INITIAL.value
        return f"{name}: {phase} ({', '.join(parts) or 'starting'})"

    def _render(self) -> Group:
        rows = []
        for name, exp in self.exps.items():
            if exp is None:
                gone = Table.grid()
                gone.add_row(f"{name}: deleted")
                rows.append(gone)
                continue
            counts = exp.status.work_units if exp.status else {}
            total = counts.get("total", 0) or 1
            finished = sum(counts.get(p, 0) for p in WORK_UNIT_TERMINAL)
            grid = Table.grid(padding=(0, 1))
            grid.add_row(
                f"[bold]{name}[/]",
                ProgressBar(total=total, completed=finished, width=30),
                f"{finished}/{total}",
                "  ".join(
                    f"[{PHASE_STYLES.get(p, '')}]{counts[p]} {p}[/]"
                    for p in _ORDER
                    if counts.get(p)
                ),
            )
            rows.append(grid)
        return Group(*rows)

    def stop(self) -> None:
        """Remove the live display."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def final_report(self) -> int:
        """Print each experiment's work units; 0 when all succeeded (or are gone), else 1."""
        code = 0
        for name, exp in self.exps.items():
            if exp is None:
                continue
            units = self.store.list_work_units(name)
            print_table(self.console, work_units_table(units, wide=False))
            st = exp.status
            ok = next((c for c in (st.conditions if st else []) if c.type == "Succeeded"), None)
            phase = st.phase.value if st else EXPERIMENT_INITIAL.value
            style = PHASE_STYLES.get(phase, "")
            msg = f": {ok.message}" if ok and ok.message else ""
            self.console.print(f"experiment/{name} [{style}]{phase}[/]{msg}", highlight=False)
            if phase != ExperimentPhase.SUCCEEDED:
                code = 1
        return code
