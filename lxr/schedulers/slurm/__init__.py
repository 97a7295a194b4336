"""Slurm: the driver (:mod:`.driver`), what it reads (:mod:`.parse`) and what it writes
(:mod:`.render`); :mod:`.plugin` is what the ``lxr.schedulers`` entry point names."""

from __future__ import annotations

from lxr.schedulers.batch import JOB_NAME_PREFIX
from lxr.schedulers.slurm.driver import SlurmDriver
from lxr.schedulers.slurm.parse import (
    SACCT_FIELDS,
    SQUEUE_FIELDS,
    SQUEUE_FORMAT,
    STATES,
    SlurmRow,
    compress_indexes,
    exit_status,
    expand_indexes,
    observation,
    parse_config,
    parse_sacct,
    parse_squeue,
)
from lxr.schedulers.slurm.render import sbatch_options

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
