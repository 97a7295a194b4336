"""Scheduler sections: the part of a Cluster or of an experiment's resources that belongs to one
scheduler, validated by that scheduler's plugin.

``spec.<scheduler>:`` on a Cluster holds the options of its scheduler (``spec.sge:
{parallelEnvironment: mpi}``); ``resources.<scheduler>:`` holds what only that scheduler
understands (``resources.sge: {queue: all.q}``). Each plugin declares the models
(:class:`~lxr.schedulers.plugins.SchedulerPlugin`), so the shared schema carries no
scheduler's own fields. Older spellings a plugin still reads at the top of the mapping
(``spec.parallelEnvironment``) are moved into its section before validation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from lxr.schedulers.plugins import OptionsModel, SchedulerPlugin, plugin, plugins

__all__ = ["SectionKind", "dump_sections", "section_schemas", "split_sections"]

SectionKind = Literal["cluster", "resources"]


def _model(p: SchedulerPlugin, kind: SectionKind) -> type[OptionsModel] | None:
    return p.options if kind == "cluster" else p.resources


def _legacy(p: SchedulerPlugin, kind: SectionKind) -> tuple[str, ...]:
    return p.legacy_cluster_fields if kind == "cluster" else p.legacy_resource_fields


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def split_sections(
    data: Mapping[str, Any],
    kind: SectionKind,
    *,
    title: str,
    json_mode: bool,
    only: Iterable[str] | None = None,
) -> tuple[dict[str, Any], dict[str, OptionsModel]]:
    """``data`` without its scheduler sections, and those sections validated.

    ``only``: the schedulers whose sections may appear (a Cluster's own scheduler); None means
    every installed one. A section of a scheduler that has no model of this kind stays in the
    data (and is then an unknown field). Raises :class:`ValidationError` with locations inside
    the section (``sge.queue``).
    """
    rest = dict(data)
    allowed = list(plugins()) if only is None else list(only)
    raw: dict[str, dict[str, Any]] = {}
    for name in allowed:
        p = plugin(name)
        if _model(p, kind) is None:
            continue
        section = rest.pop(name, None)
        if section is not None:
            raw[name] = section if isinstance(section, dict) else section
        for legacy in _legacy(p, kind):
            for spelling in (legacy, _snake(legacy)):
                if spelling in rest:
                    moved = dict(raw.get(name) or {})
                    moved.setdefault(legacy, rest.pop(spelling))
                    raw[name] = moved
    sections: dict[str, OptionsModel] = {}
    errors: list[InitErrorDetails] = []
    for name, section in raw.items():
        model = _model(plugin(name), kind)
        assert model is not None
        try:
            if isinstance(section, OptionsModel):
                sections[name] = model.model_validate(section.model_dump(by_alias=True))
            elif json_mode:
                sections[name] = model.model_validate_json(json.dumps(section), strict=True)
            else:
                sections[name] = model.model_validate(section)
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                errors.append(
                    InitErrorDetails(
                        type=e["type"],
                        loc=(name, *e["loc"]),
                        input=e.get("input"),
                        ctx=e.get("ctx", {}),
                    )
                )
    if errors:
        raise ValidationError.from_exception_data(title, errors)
    return rest, sections


def dump_sections(
    sections: Mapping[str, OptionsModel],
    *,
    mode: str,
    by_alias: bool,
    exclude_unset: bool = False,
    exclude_none: bool = False,
    exclude_defaults: bool = False,
) -> dict[str, Any]:
    """The sections as they are written (``{"sge": {"queue": "all.q"}}``)."""
    return {
        name: opts.model_dump(
            mode=mode,
            by_alias=by_alias,
            exclude_unset=exclude_unset,
            exclude_none=exclude_none,
            exclude_defaults=exclude_defaults,
        )
        for name, opts in sorted(sections.items())
    }


def section_schemas(kind: SectionKind) -> dict[str, Any]:
    """JSON schemas of every installed scheduler's section of this kind, by scheduler name."""
    out: dict[str, Any] = {}
    for name, p in plugins().items():
        model = _model(p, kind)
        if model is not None and model.model_fields:
            schema = model.model_json_schema(by_alias=True, mode="validation")
            schema["description"] = (
                f"{p.description or name}: only for clusters with scheduler {name}"
            )
            out[name] = schema
    return out
