"""lxr: a Kubernetes-style reconciler for ML experiments on HPC clusters."""

__all__ = ["__version__"]

# the one place the version is written (hatchling reads it from here); a literal, because
# importlib.metadata costs ~35 ms at every `lxr` start
__version__ = "0.1.0"
