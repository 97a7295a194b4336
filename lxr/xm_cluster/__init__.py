"""XManager launch scripts on lxr: ``from xmanager import xm`` + ``from lxr import xm_cluster``.

Mirrors lxm3's ``xm_cluster`` (an lxm3 script migrates by changing its two import lines):
``create_experiment``/``get_experiment``, the executors ``Local``/``Slurm``/``GridEngine``, the
specs ``PythonPackage``/``UniversalPackage``/``Container``/``Fileset`` and ``ArrayJob``. A launch
only writes desired state into lxr's store; the reconciler runs it.

Needs the ``xm`` extra (``pip install 'lxr[xm]'``).
"""

from __future__ import annotations

from xmanager.xm import JobRequirements

from lxr.xm_cluster.array_job import ArrayJob
from lxr.xm_cluster.executors import (
    ClusterExecutor,
    GridEngine,
    Local,
    Slurm,
    executor_resources,
    requirements_to_resources,
)
from lxr.xm_cluster.experiment import (
    ClusterExperiment,
    ClusterWorkUnit,
    WorkUnitStatus,
    create_experiment,
    get_experiment,
    launched_experiments,
)
from lxr.xm_cluster.packaging import ClusterExecutable
from lxr.xm_cluster.specs import (
    CommandList,
    Container,
    Fileset,
    ModuleName,
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
    "Fileset",
    "GridEngine",
    "JobRequirements",
    "Local",
    "ModuleName",
    "PythonPackage",
    "SingularityContainer",
    "Slurm",
    "UniversalPackage",
    "WorkUnitStatus",
    "create_experiment",
    "executor_resources",
    "get_experiment",
    "launched_experiments",
    "requirements_to_resources",
]
