"""Slurm: the driver (:mod:`.driver`), what it reads (:mod:`.parse`) and what it writes
(:mod:`.render`); :mod:`.plugin` is what the ``lxr.schedulers`` entry point names."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "JOB_NAME_PREFIX",
    "SACCT_FIELDS",
    "SQUEUE_FIELDS",
    "SQUEUE_FORMAT",
    "STATES",
    "SlurmDriver",
    "SlurmRow",
    "compress_indexes",
    "exit_status",
    "expand_indexes",
    "observation",
    "parse_config",
    "parse_sacct",
    "parse_squeue",
    "sbatch_options",
]

# names -> the module that defines them, imported on first use: the entry point names
# this package's plugin module, and importing the package must not import the driver
# (a `get` or the schema would pay for the driver, its transport and SSH)
_WHERE = {
    "JOB_NAME_PREFIX": "lxr.schedulers.batch",
    "SlurmDriver": "lxr.schedulers.slurm.driver",
    "SACCT_FIELDS": "lxr.schedulers.slurm.parse",
    "SQUEUE_FIELDS": "lxr.schedulers.slurm.parse",
    "SQUEUE_FORMAT": "lxr.schedulers.slurm.parse",
    "STATES": "lxr.schedulers.slurm.parse",
    "SlurmRow": "lxr.schedulers.slurm.parse",
    "compress_indexes": "lxr.schedulers.slurm.parse",
    "exit_status": "lxr.schedulers.slurm.parse",
    "expand_indexes": "lxr.schedulers.slurm.parse",
    "observation": "lxr.schedulers.slurm.parse",
    "parse_config": "lxr.schedulers.slurm.parse",
    "parse_sacct": "lxr.schedulers.slurm.parse",
    "parse_squeue": "lxr.schedulers.slurm.parse",
    "sbatch_options": "lxr.schedulers.slurm.render",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
