"""lxr: a Kubernetes-style reconciler for ML experiments on HPC clusters."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("lxr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
