"""A connection's send queue: bounded, one consumer (the writer), and nearly free while empty.

An idle session's queue is empty almost all the time, and the server holds ten thousand of them
(the idle-session target in ``docs/benchmarks.md``). ``asyncio.Queue`` keeps three deques and an
``asyncio.Event`` (with a fourth) from the start: about 3.7 KiB per connection on CPython 3.11,
for nothing. This one keeps a deque only while it holds items, and a future only while the writer
waits. It raises ``asyncio.QueueFull`` and ``asyncio.QueueEmpty`` as ``asyncio.Queue`` does.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    __slots__ = ("_items", "_maxsize", "_waiter")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("an outbox holds at least one item")
        self._maxsize = maxsize
        self._items: collections.deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def qsize(self) -> int:
        return len(self._items) if self._items is not None else 0

    def empty(self) -> bool:
        return self._items is None

    def put_nowait(self, item: T) -> None:
        items = self._items
        if items is None:
            items = self._items = collections.deque()
        elif len(items) >= self._maxsize:
            raise asyncio.QueueFull
        items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> T:
        items = self._items
        if items is None:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None  # drained: the deque goes back to the allocator
        return item

    async def get(self) -> T:
        """The next item, waiting for one. One consumer only: a second waiter would replace
        the first's future and leave it waiting."""
        while self._items is None:
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("an outbox has one consumer")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()
