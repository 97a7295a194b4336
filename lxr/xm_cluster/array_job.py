"""lxm3's ``ArrayJob``: one executable, one executor, a list of per-task args and env vars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attr
from xmanager import xm

__all__ = ["ArrayJob"]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    return list(value)


@attr.s(auto_attribs=True)
class ArrayJob(xm.JobConfig):
    """``ArrayJob(executable, executor, args=[{...}, ...], env_vars=[{...}, ...])``: one work
    unit per task. When one of ``args``/``env_vars`` has a single entry (or is empty), it is
    used for every task; otherwise both must have the same length.

    lxm3's ``work_list=[{"args": ..., "env_vars": ...}, ...]`` is accepted too.
    """

    executable: xm.Executable
    executor: xm.Executor
    name: str | None = None
    args: list[Any] = attr.ib(converter=_as_list, factory=list)
    env_vars: list[Mapping[str, Any]] = attr.ib(converter=_as_list, factory=list)
    work_list: Sequence[Mapping[str, Any]] = attr.ib(factory=list)

    def tasks(self) -> list[tuple[Any, dict[str, str]]]:
        """``(args, env)`` of every task, broadcast as documented."""
        if self.work_list:
            if self.args or self.env_vars:
                raise ValueError("ArrayJob: give work_list, or args/env_vars, not both")
            return [
                (item.get("args", {}), {k: str(v) for k, v in item.get("env_vars", {}).items()})
                for item in self.work_list
            ]
        args = self.args or [{}]
        envs = self.env_vars or [{}]
        if len(args) != len(envs) and 1 not in (len(args), len(envs)):
            raise ValueError(
                f"ArrayJob: {len(args)} args and {len(envs)} env_vars entries: "
                "give the same number, or one of either to use for every task"
            )
        n = max(len(args), len(envs))
        return [
            (
                args[i if len(args) > 1 else 0],
                {k: str(v) for k, v in envs[i if len(envs) > 1 else 0].items()},
            )
            for i in range(n)
        ]
