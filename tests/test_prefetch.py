"""Reading ahead (extract/prefetch.py): order kept, groups as the consumer lags, errors
after the items that came before them, the producer stopped when the consumer leaves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from magsync.extract.prefetch import Prefetch


def counting(n: int, produced: list[int]) -> Iterator[int]:
    for i in range(n):
        produced.append(i)
        yield i


def test_every_item_in_order_and_grouped_when_the_consumer_lags() -> None:
    produced: list[int] = []
    seen: list[list[int]] = []
    with Prefetch(counting(50, produced), ahead=8) as items:
        for group in items.groups(limit=8):
            seen.append(group)
            time.sleep(0.02)  # a slow consumer: the producer fills the queue meanwhile
    assert [i for group in seen for i in group] == list(range(50))
    assert max(len(group) for group in seen) > 1  # taken together once they wait
    assert all(len(group) <= 8 for group in seen)


def test_the_producer_stays_at_most_ahead_items_in_front() -> None:
    produced: list[int] = []
    with Prefetch(counting(100, produced), ahead=3) as items:
        groups = items.groups(limit=1)
        assert next(groups) == [0]
        time.sleep(0.3)
        # one taken, three queued, one more held by the blocked producer
        assert len(produced) <= 5
    assert len(produced) <= 6  # leaving stopped it


def test_an_error_comes_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("the store went away")

    got: list[int] = []
    with pytest.raises(ValueError, match="the store went away"), \
            Prefetch(failing(), ahead=4) as items:
        time.sleep(0.1)  # everything, error included, is queued before the first take
        for group in items.groups(limit=4):
            got.extend(group)
    assert got == [1, 2]


def test_leaving_early_stops_and_closes_the_producer() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with Prefetch(endless(), ahead=2) as items:
        for _ in items.groups(limit=2):
            break
    assert closed.is_set()
    assert not any(t.name == "magsync-prefetch" and t.is_alive()
                   for t in threading.enumerate())


def test_groups_wait_for_least_items_but_the_last() -> None:
    def slow(n: int) -> Iterator[int]:
        for i in range(n):
            time.sleep(0.005)  # a fast consumer would otherwise take them one by one
            yield i

    with Prefetch(slow(22), ahead=8) as items:
        seen = list(items.groups(limit=8, least=5))
    assert [i for group in seen for i in group] == list(range(22))
    assert all(5 <= len(group) <= 8 for group in seen[:-1])
    assert 1 <= len(seen[-1]) <= 8
