"""The read path's own pieces (lxr.store.reads), apart from the commands that use them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from lxr.store.reads import _read_ahead


def _source(n: int, closed: list[bool], fail_at: int | None = None) -> Iterator[int]:
    try:
        for i in range(n):
            if i == fail_at:
                raise RuntimeError(f"page {i} failed")
            yield i
    finally:
        closed.append(threading.current_thread() is not threading.main_thread())


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lxr-read-ahead"]


def test_read_ahead_gives_every_page_in_order_and_closes_its_source() -> None:
    closed: list[bool] = []
    assert list(_read_ahead(_source(50, closed))) == list(range(50))
    assert closed == [True]  # closed by the thread that read it
    assert not _readers()


def test_read_ahead_raises_the_error_of_its_source_where_the_pages_are_taken() -> None:
    closed: list[bool] = []
    pages = _read_ahead(_source(10, closed, fail_at=4))
    assert [next(pages) for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="page 4 failed"):
        next(pages)
    assert closed == [True] and not _readers()


def test_read_ahead_closed_early_stops_its_thread_and_closes_its_source() -> None:
    closed: list[bool] = []
    pages = _read_ahead(_source(10_000, closed), depth=2)
    assert next(pages) == 0
    pages.close()  # what `| head` does to a listing
    assert closed == [True] and not _readers()
