"""Sun / Son of Grid Engine: the driver (:mod:`.driver`), what it reads (:mod:`.parse`) and what
it writes (:mod:`.render`); :mod:`.plugin` is what the ``lxr.schedulers`` entry point names."""

from __future__ import annotations

import importlib
from typing import Any

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

# names -> the module that defines them, imported on first use: the entry point names
# this package's plugin module, and importing the package must not import the driver
# (a `get` or the schema would pay for the driver, its transport and SSH)
_WHERE = {
    "JOB_NAME_PREFIX": "lxr.schedulers.batch",
    "SGEDriver": "lxr.schedulers.sge.driver",
    "FAILED_CODES": "lxr.schedulers.sge.parse",
    "QACCT_FIELDS": "lxr.schedulers.sge.parse",
    "RERUN_DECLINED_EXIT": "lxr.schedulers.sge.parse",
    "STATES": "lxr.schedulers.sge.parse",
    "QacctRecord": "lxr.schedulers.sge.parse",
    "QstatTask": "lxr.schedulers.sge.parse",
    "accounting_observation": "lxr.schedulers.sge.parse",
    "parse_qacct": "lxr.schedulers.sge.parse",
    "parse_qstat_errors": "lxr.schedulers.sge.parse",
    "parse_qstat_xml": "lxr.schedulers.sge.parse",
    "qstat_observation": "lxr.schedulers.sge.parse",
    "state_phase": "lxr.schedulers.sge.parse",
    "SGEOptions": "lxr.schedulers.sge.plugin",
    "SGEResources": "lxr.schedulers.sge.plugin",
    "parse_qsub": "lxr.schedulers.sge.render",
    "qdel_targets": "lxr.schedulers.sge.render",
    "qsub_options": "lxr.schedulers.sge.render",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
