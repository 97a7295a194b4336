"""The base of lxr's resource models: the API version, the camelCase model classes, object
metadata and conditions, memory quantities and home-relative paths (used by the Cluster and
Experiment schemas).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "API_VERSION",
    "Condition",
    "ConditionStatus",
    "ObjectMeta",
    "SpecModel",
    "StatusModel",
    "no_tilde_user",
    "parse_memory_mib",
]

API_VERSION: Final = "lxr.dev/v1alpha1"

_NAME_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_MEMORY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEMORY_FACTORS_MIB = {
    None: 1 / (1024 * 1024),  # a bare number is bytes, as in Kubernetes
    "Ki": 1 / 1024,
    "Mi": 1,
    "Gi": 1024,
    "Ti": 1024 * 1024,
    "K": 1000 / (1024 * 1024),
    "M": 1000**2 / (1024 * 1024),
    "G": 1000**3 / (1024 * 1024),
    "T": 1000**4 / (1024 * 1024),
}


def parse_memory_mib(quantity: str) -> int:
    """A Kubernetes-style memory quantity (``512Mi``, ``4Gi``, ``2G``) in MiB, rounded up."""
    match = _MEMORY_RE.match(quantity)
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r} (expected e.g. 512Mi, 4Gi, 2G)")
    value = float(match.group(1)) * _MEMORY_FACTORS_MIB[match.group(2)]
    return max(1, int(-(-value // 1)))


def no_tilde_user(path: str | None) -> str | None:
    """``~`` and ``~/x`` are the home directory on the cluster; ``~user`` is refused rather
    than read as a directory named ``~user``."""
    if path and path.startswith("~") and not (path == "~" or path.startswith("~/")):
        raise ValueError(
            f"{path!r}: ~user is not supported; write the absolute path, or ~/ for your home"
        )
    return path


class SpecModel(BaseModel):
    """camelCase model; unknown fields are errors. Files are validated in strict JSON mode."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )


class StatusModel(BaseModel):
    """Controller-written models: camelCase, lenient on read (they come from our own store)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# --------------------------------------------------------------------------- metadata


class ObjectMeta(SpecModel):
    """Name, labels and annotations set by the user; the rest is set by the server."""

    name: Annotated[str, Field(pattern=_NAME_RE, max_length=63)]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    finalizers: list[str] = Field(default_factory=list)

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$", key) or len(key) > 253:
                raise ValueError(f"invalid label key {key!r}")
            if len(value) > 63 or not re.match(
                r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", value
            ):
                raise ValueError(f"invalid label value {value!r} for key {key!r}")
        return labels


class ConditionStatus(str, Enum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One observation about an object; ``lastTransitionTime`` moves only when ``status`` does."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
