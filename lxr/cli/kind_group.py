"""The typer group whose subcommands are kinds (``lxr get``, ``lxr describe``)."""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

from lxr.cli.kinds import kind_of

__all__ = ["KindGroup"]


class KindGroup(TyperGroup):
    """A command group whose subcommands are kinds: any word for a kind finds its command,
    and ``kind/name`` becomes ``kind name``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and not args[0].startswith("-"):
            word, sep, name = args[0].partition("/")
            kind = kind_of(word)
            target = next((c for c in self.commands if kind and kind_of(c) == kind), None)
            if target is not None:
                args = [target, *([name] if sep else []), *args[1:]]
        return super().resolve_command(ctx, args)
