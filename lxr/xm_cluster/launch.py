"""Running a launch script the way ``python launcher.py`` would, for ``lxr launch``."""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import TextIO

from lxr.xm_cluster.experiment import launched_experiments

__all__ = ["run_script", "script_traceback"]


def script_traceback(
    exc: BaseException, tb: TracebackType | None, script: Path, file: TextIO | None = None
) -> None:
    """Print ``exc`` with the traceback starting at the script's first frame (lxr's own
    frames, which only ran the script, are left out)."""
    target = os.path.realpath(script)
    start = tb
    while start is not None and os.path.realpath(start.tb_frame.f_code.co_filename) != target:
        start = start.tb_next
    traceback.print_exception(type(exc), exc, start or tb, file=file or sys.stderr)


def run_script(script: Path, argv: list[str]) -> tuple[int, list[str]]:
    """Run ``script`` as ``__main__`` with ``argv`` (absl flags pass through).

    Returns ``(exit code, names of the lxr Experiments it wrote)``. A script that raises has
    its traceback printed (its own frames, not lxr's) and exit code 1; whatever it had added
    to an experiment whose ``with`` block it left by the exception was never written.
    """
    before = set(launched_experiments())
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        from xmanager.xm import utils as xm_utils

        xm_utils.find_launch_script_path.cache_clear()  # cached per process by xmanager
        code = 0
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:  # absl's app.run always exits
            if exc.code not in (None, 0):
                code = exc.code if isinstance(exc.code, int) else 1
                if not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
        except KeyboardInterrupt:
            code = 130
        except BaseException as exc:  # the script's error, shown as the script's
            script_traceback(exc, exc.__traceback__, script)
            code = 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return code, [n for n in launched_experiments() if n not in before]
