"""Resource kinds and the words for them, as kubectl takes them: plural, singular, short
(``experiments``, ``experiment``, ``exp``), any case, and ``kind/name``."""

from __future__ import annotations

__all__ = ["KINDS", "kind_of", "names_for"]

KINDS: dict[str, tuple[str, ...]] = {
    "Experiment": ("experiments", "experiment", "exp", "exps"),
    "WorkUnit": ("workunits", "workunit", "wu", "wus"),
    "Cluster": ("clusters", "cluster"),
    "Event": ("events", "event", "ev"),
}
_WORDS = {w: kind for kind, words in KINDS.items() for w in (*words, kind.lower())}


def kind_of(word: str) -> str | None:
    """The kind a word names (``exp`` -> ``Experiment``), or None."""
    return _WORDS.get(word.lower().removesuffix(".lxr.dev"))


def names_for(kind: str, words: list[str] | None) -> list[str]:
    """Names given after a kind; each may also be ``kind/name`` of that same kind."""
    from lxr.cli.console import die

    out = []
    for word in words or []:
        prefix, sep, name = word.partition("/")
        named = kind_of(prefix) if sep else None
        if named is not None:
            if named != kind:
                die(f"{word}: expected a {kind} name (one kind per command)")
            word = name
        if not word:
            die(f"empty {kind} name")
        out.append(word)
    return out
