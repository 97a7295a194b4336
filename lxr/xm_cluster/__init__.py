"""XManager launch scripts on lxr: ``from xmanager import xm`` + ``from lxr import xm_cluster``.

Mirrors lxm3's ``xm_cluster`` (an lxm3 script migrates by replacing ``lxm3`` with ``lxr`` in
its imports): ``create_experiment``/``get_experiment``/``get_current_experiment``, the
executors ``Local``/``Slurm``/``GridEngine`` with lxm3's signatures, ``JobRequirements``, the
specs ``PythonPackage``/``PexBinary``/``UniversalPackage``/``PythonContainer``/``PDMProject``,
the containers ``SingularityContainer``/``DockerContainer``, ``Fileset`` and ``ArrayJob``. A launch
only writes desired state into lxr's store; the reconciler runs it.

Needs the ``xm`` extra (``pip install 'lxr[xm]'``).
"""

from __future__ import annotations

import logging as _logging

from lxr.xm_cluster.array_job import ArrayJob
from lxr.xm_cluster.executors import (
    ClusterExecutor,
    DockerOptions,
    GridEngine,
    Local,
    SingularityOptions,
    Slurm,
    executor_resources,
)
from lxr.xm_cluster.experiment import (
    ClusterExperiment,
    ClusterWorkUnit,
    WorkUnitStatus,
    create_experiment,
    launched_experiments,
)
from lxr.xm_cluster.packaging import ClusterExecutable
from lxr.xm_cluster.reattach import get_current_experiment, get_current_work_unit, get_experiment
from lxr.xm_cluster.requirements import JobRequirements, requirements_to_resources
from lxr.xm_cluster.specs import (
    CommandList,
    Container,
    DockerContainer,
    Fileset,
    ModuleName,
    PDMProject,
    PexBinary,
    PythonContainer,
    PythonPackage,
    SingularityContainer,
    UniversalPackage,
)

__all__ = [
    "ArrayJob",
    "ClusterExecutable",
    "ClusterExecutor",
    "ClusterExperiment",
    "ClusterWorkUnit",
    "CommandList",
    "Container",
    "DockerContainer",
    "DockerOptions",
    "Fileset",
    "GridEngine",
    "JobRequirements",
    "Local",
    "ModuleName",
    "PDMProject",
    "PexBinary",
    "PythonContainer",
    "PythonPackage",
    "SingularityContainer",
    "SingularityOptions",
    "Slurm",
    "UniversalPackage",
    "WorkUnitStatus",
    "create_experiment",
    "executor_resources",
    "get_current_experiment",
    "get_current_work_unit",
    "get_experiment",
    "launched_experiments",
    "requirements_to_resources",
]

# absl shows INFO records of every library: asyncssh's connection chatter would drown a
# launch's output. WARNING unless asked for (`lxr -v launch` sets it to INFO first).
if _logging.getLogger("asyncssh").level == _logging.NOTSET:
    _logging.getLogger("asyncssh").setLevel(_logging.WARNING)
