"""Opening the database for a command: the full store, or (``get``, ``describe``) a reader."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxr.cli.console import EXIT_FAILED, die, note

if TYPE_CHECKING:
    from lxr.store.reads import Reader

__all__ = ["open_reader", "open_store"]


def _note_once(missing: Any) -> None:
    """Say at the end why nothing was there, unless an error already named the URL."""
    import atexit

    def said_once() -> None:
        if not missing.raised:
            note(f"note: {missing.why}")

    atexit.register(said_once)


def open_store(*, read_only: bool = False):  # imported lazily (`lxr --help`)
    """The store at the configured URL, or exit 1 naming the URL when it cannot be opened.

    ``read_only``: a SQLite file that does not exist is not created; the command reads an
    empty stand-in (:class:`~lxr.cli.nostore.NoStore`) and says so once on stderr.
    """
    from lxr.paths import default_database_url

    url = default_database_url()
    if read_only:
        from lxr.cli.nostore import NoStore, missing_store_url

        if missing_store_url(url):
            store = NoStore(url)
            _note_once(store)
            return store
    from lxr.store import Store

    try:
        return Store(url)
    except Exception as exc:
        from lxr.redaction import redact

        die(f"cannot open the database {redact(url)}: {exc}", EXIT_FAILED)


def open_reader() -> Reader:
    """A :class:`~lxr.store.reads.Reader` of the configured database (plain SQL, no ORM): what
    ``get`` and ``describe`` read. A database at another schema revision is opened through the
    full store first, which migrates it; a SQLite file that does not exist is not created (the
    reader reads nothing and says so once on stderr), as with ``open_store(read_only=True)``."""
    from lxr.paths import default_database_url
    from lxr.store.reads import Reader

    url = default_database_url()
    reader = Reader.open(url)
    if reader is None:
        from lxr.cli.nostore import missing_store_url

        if missing_store_url(url):  # a URL only SQLAlchemy reads, naming no file yet
            reader = Reader.missing(url)
        else:
            from lxr.store.reads import core_connection

            store = open_store()  # migrates it, or exits naming the URL
            reader = Reader.open(url) or Reader(core_connection(store.engine), url)
    if reader.why:
        _note_once(reader)
    return reader
