"""Shell completion: resource names complete (``lxr describe experiment <TAB>``), and
``--install-completion`` says which file it edits and asks first."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

__all__ = [
    "cluster_names",
    "experiment_names",
    "install_completion",
    "rc_file",
    "show_completion",
    "work_unit_names",
]


def _store():  # None when there is no store: completing never creates one
    from lxr.cli.nostore import missing_store_url
    from lxr.paths import default_database_url

    url = default_database_url()
    if missing_store_url(url):
        return None
    from lxr.store import Store

    try:
        return Store(url, migrate=False)
    except Exception:  # no completion is better than a traceback mid-line
        return None


def experiment_names(incomplete: str) -> list[str]:
    """Experiment names starting with ``incomplete``."""
    store = _store()
    if store is None:
        return []
    try:
        return [
            e.metadata.name
            for e in store.list_experiments()
            if e.metadata.name.startswith(incomplete)
        ]
    except Exception:
        return []
    finally:
        store.close()


def work_unit_names(incomplete: str) -> list[str]:
    """``EXPERIMENT-`` for the experiments matching, then that experiment's work units."""
    exps = experiment_names("")
    out = [f"{e}-" for e in exps if f"{e}-".startswith(incomplete) and len(incomplete) <= len(e)]
    for exp in exps:
        if incomplete.startswith(f"{exp}-"):
            store = _store()
            if store is None:
                return out
            try:
                for unit in store.iter_work_units(exp):
                    name = unit["metadata"]["name"]
                    if name.startswith(incomplete):
                        out.append(name)
                    if len(out) >= 200:
                        break
            finally:
                store.close()
    return out


def cluster_names(incomplete: str) -> list[str]:
    """Cluster names starting with ``incomplete`` (``local`` included)."""
    store = _store()
    if store is None:
        return [n for n in ("local",) if n.startswith(incomplete)]
    try:
        return [
            c.metadata.name for c in store.list_clusters() if c.metadata.name.startswith(incomplete)
        ]
    except Exception:  # no completion is better than a traceback mid-line
        return []
    finally:
        store.close()


def rc_file(shell: str) -> Path | None:
    """The dotfile typer's installer edits for ``shell`` (fish gets a file of its own)."""
    home = Path.home()
    return {"bash": home / ".bashrc", "zsh": home / ".zshrc"}.get(shell)


def _shell() -> str | None:
    from typer._completion_shared import _get_shell_name

    return _get_shell_name()


def show_completion(value: bool) -> None:
    """Print the completion script for the current shell (to source or copy by hand)."""
    if not value:
        return
    from typer._completion_shared import get_completion_script

    shell = _shell() or "bash"
    sys.stdout.write(
        get_completion_script(prog_name="lxr", complete_var="_LXR_COMPLETE", shell=shell) + "\n"
    )
    raise typer.Exit()


def install_completion(value: bool) -> None:
    """Install completion for the current shell after saying what is edited and asking."""
    if not value:
        return
    from typer._completion_shared import install

    from lxr.cli.console import EXIT_FAILED, die, out

    shell = _shell()
    if shell is None:
        die("cannot tell which shell this is; use lxr --show-completion", EXIT_FAILED)
    rc = rc_file(shell)
    what = (
        f"append one `source` line to {rc} and write the script next to it"
        if rc
        else (f"write lxr's {shell} completion file")
    )
    if not sys.stdin.isatty():
        die(
            f"--install-completion would {what}; not a terminal, so not asking: run it in "
            "one, or add the output of `lxr --show-completion` yourself",
            EXIT_FAILED,
        )
    if not typer.confirm(f"Install {shell} completion: {what}?", default=False):
        out("nothing changed")
        raise typer.Exit(EXIT_FAILED)
    shell, path = install(shell=shell, prog_name="lxr", complete_var="_LXR_COMPLETE")
    out(f"{shell} completion installed in {path}; it takes effect in a new shell")
    raise typer.Exit()
