"""Sun / Son of Grid Engine: the driver (:mod:`.driver`), what it reads (:mod:`.parse`) and what
it writes (:mod:`.render`); :mod:`.plugin` is what the ``lxr.schedulers`` entry point names."""

from __future__ import annotations

from lxr.schedulers.batch import JOB_NAME_PREFIX
from lxr.schedulers.sge.driver import SGEDriver
from lxr.schedulers.sge.parse import (
    FAILED_CODES,
    QACCT_FIELDS,
    RERUN_DECLINED_EXIT,
    STATES,
    QacctRecord,
    QstatTask,
    accounting_observation,
    parse_qacct,
    parse_qstat_errors,
    parse_qstat_xml,
    qstat_observation,
    state_phase,
)
from lxr.schedulers.sge.plugin import SGEOptions, SGEResources
from lxr.schedulers.sge.render import parse_qsub, qdel_targets, qsub_options

__all__ = [
    "FAILED_CODES",
    "JOB_NAME_PREFIX",
    "QACCT_FIELDS",
    "RERUN_DECLINED_EXIT",
    "STATES",
    "QacctRecord",
    "QstatTask",
    "SGEDriver",
    "SGEOptions",
    "SGEResources",
    "accounting_observation",
    "parse_qacct",
    "parse_qstat_errors",
    "parse_qstat_xml",
    "parse_qsub",
    "qdel_targets",
    "qstat_observation",
    "qsub_options",
    "state_phase",
]
