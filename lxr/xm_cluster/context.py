"""An experiment's XManager context: annotations (title, tags, notes, description) and
artifacts, kept as annotations of its lxr Experiments so ``lxr get experiments -o wide`` and
``lxr describe`` show them.

Changes made after the experiment was written are stored at once (each lxr Experiment of it
gets the new annotations).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, MutableMapping, MutableSet
from typing import Any

from xmanager import xm

__all__ = [
    "ANNOTATION_ARTIFACTS",
    "ANNOTATION_DESCRIPTION",
    "ANNOTATION_NOTES",
    "ANNOTATION_TAGS",
    "ANNOTATION_TITLE",
    "Artifacts",
    "ExperimentAnnotations",
    "ExperimentContext",
    "Tags",
]

#: the keys on each lxr Experiment (shown by `lxr get experiments -o wide` and `describe`)
ANNOTATION_TITLE = "lxr.dev/title"
ANNOTATION_TAGS = "lxr.dev/tags"  # comma-separated
ANNOTATION_NOTES = "lxr.dev/notes"
ANNOTATION_DESCRIPTION = "lxr.dev/description"
ANNOTATION_ARTIFACTS = "lxr.dev/artifacts"  # JSON object: name -> URI


class Tags(MutableSet[str]):
    """The experiment's tags, in the order added."""

    def __init__(self, tags: Iterable[str], changed: Callable[[], None]) -> None:
        self._tags = dict.fromkeys(tags)
        self._changed = changed

    def add(self, value: str) -> None:
        """Add a tag (stored at once if the experiment was written)."""
        if "," in value:
            raise ValueError(f"tag {value!r}: tags cannot contain commas")
        self._tags[value] = None
        self._changed()

    def discard(self, value: str) -> None:
        """Remove a tag if present."""
        if self._tags.pop(value, 0) is None:
            self._changed()

    def __contains__(self, value: object) -> bool:
        return value in self._tags

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._tags))

    def __len__(self) -> int:
        return len(self._tags)

    def __repr__(self) -> str:
        return f"Tags({list(self._tags)})"


class Artifacts(MutableMapping[str, str]):
    """Named URIs of what the experiment produced (checkpoints, dashboards...)."""

    def __init__(self, data: dict[str, str], changed: Callable[[], None]) -> None:
        self._data = dict(data)
        self._changed = changed

    def add(self, name: str, uri: str) -> None:
        """xmanager-slurm's spelling of ``artifacts[name] = uri``."""
        self[name] = uri

    def remove(self, name: str) -> None:
        """xmanager-slurm's spelling of ``del artifacts[name]``."""
        del self[name]

    def __setitem__(self, name: str, uri: str) -> None:
        self._data[name] = str(uri)
        self._changed()

    def __delitem__(self, name: str) -> None:
        del self._data[name]
        self._changed()

    def __getitem__(self, name: str) -> str:
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._data))

    def __len__(self) -> int:
        return len(self._data)


class ExperimentAnnotations(xm.ContextAnnotations):
    """``experiment.context.annotations``: ``title`` (settable), ``tags``, ``notes``/``note``,
    ``description``."""

    def __init__(self, title: str, stored: dict[str, str], changed: Callable[[], None]) -> None:
        self._title = title
        self._changed = changed
        tags = [t for t in stored.get(ANNOTATION_TAGS, "").split(",") if t]
        self._tags = Tags(tags, changed)
        self._notes = stored.get(ANNOTATION_NOTES, "")
        self._description = stored.get(ANNOTATION_DESCRIPTION, "")

    @property
    def title(self) -> str:
        """The experiment's title."""
        return self._title

    @title.setter
    def title(self, value: str) -> None:
        self._title = value
        self._changed()

    def set_title(self, title: str) -> None:
        """XManager's setter."""
        self.title = title

    @property
    def tags(self) -> Tags:
        """A mutable set of tags."""
        return self._tags

    @tags.setter
    def tags(self, tags: Iterable[str]) -> None:
        self._tags = Tags(tags, self._changed)
        self._changed()

    @property
    def notes(self) -> str:
        """Free-form notes."""
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._notes = value
        self._changed()

    # xmanager-slurm's singular spelling
    note = notes

    @property
    def description(self) -> str:
        """A longer description."""
        return self._description

    @description.setter
    def description(self, value: str) -> None:
        self._description = value
        self._changed()

    def as_annotations(self) -> dict[str, str]:
        """The lxr annotations holding these values (empty ones left out)."""
        out = {ANNOTATION_TITLE: self._title}
        if self._tags:
            out[ANNOTATION_TAGS] = ",".join(self._tags)
        if self._notes:
            out[ANNOTATION_NOTES] = self._notes
        if self._description:
            out[ANNOTATION_DESCRIPTION] = self._description
        return out


class ExperimentContext(xm.MetadataContext):
    """``experiment.context``: its annotations and artifacts."""

    def __init__(
        self, creator: str, title: str, stored: dict[str, str], changed: Callable[[], None]
    ) -> None:
        super().__init__(creator=creator, annotations=ExperimentAnnotations(title, stored, changed))
        self.artifacts = Artifacts(json.loads(stored.get(ANNOTATION_ARTIFACTS, "{}")), changed)

    def as_annotations(self) -> dict[str, Any]:
        """Every lxr annotation of the context."""
        out = self.annotations.as_annotations()  # type: ignore[attr-defined]
        if self.artifacts:
            out[ANNOTATION_ARTIFACTS] = json.dumps(dict(self.artifacts), sort_keys=True)
        return out
