"""Reading ahead: an iterator driven by a thread of its own, a bounded number of items ahead.

A network source spends most of its time waiting for answers, and the pipeline spends most
of its time on the CPU. Driving the source from a thread lets the requests go on while the
pipeline normalises and validates what came before (waiting on a socket releases the GIL).
At most `ahead` items wait in the queue, so memory stays bounded whatever the store's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")
_POLL_S = 0.1  # how often a blocked producer checks whether the consumer went away


class _End:
    """The producer's last item: the iterator ended, or raised `error`."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """`items` consumed by a daemon thread into a queue of at most `ahead` items.

    Used as a context manager: leaving it (normally or by an exception) stops the thread at
    its next item. An exception raised by `items` is raised again in the consumer, after the
    items that came before it."""

    def __init__(self, items: Iterator[T], ahead: int, name: str = "magsync-prefetch") -> None:
        self._items = items
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        end = _End()
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001 (raised again in the consumer)
            end = _End(error)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
        self._put(end)

    def _put(self, item: T | _End) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def groups(self, limit: int, least: int = 1) -> Iterator[list[T]]:
        """The items in groups: each waits for `least` items (fewer only at the end), then
        takes those already waiting, up to `limit` items. A slow consumer gets bigger
        groups, a fast one smaller groups, never fewer than `least` items but the last."""
        least = max(1, min(least, limit))
        end: _End | None = None
        while end is None:
            group: list[T] = []
            while len(group) < limit:
                try:
                    item = self._queue.get() if len(group) < least else \
                        self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _End):
                    end = item
                    break
                group.append(item)
            if group:
                yield group
        if end.error is not None:
            raise end.error
