"""A bounded FIFO between one reader task and one taker, whose waits never hold an item.

asyncio.Queue waits with a timeout through a pending `get()` task; mixed with
`get_nowait()`, such a task can take an item while the taker drains the rest,
and hand it over later, out of order (at 256 production chats a queued chat's
first token was saved after its seventh). Here waiting and taking are apart:
`wait` only says that something is there, and only `take` removes it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Inbox(Generic[T]):
    def __init__(self, limit: int) -> None:
        self._items: deque[T] = deque()
        self._limit = limit  # the reader waits while this many are held: memory stays bounded
        self._arrived: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        while len(self._items) >= self._limit:
            self._room = asyncio.get_running_loop().create_future()
            await self._room
        self._items.append(item)
        _wake(self._arrived)

    def take(self) -> T:
        item = self._items.popleft()
        _wake(self._room)
        return item

    async def wait(self, at_most: float | None = None) -> bool:
        """Until an item is there (True), or `at_most` s have passed without one (False)."""
        if not self._items:
            self._arrived = asyncio.get_running_loop().create_future()
            if at_most is None:
                await self._arrived
            else:
                await asyncio.wait({self._arrived}, timeout=at_most)
            self._arrived = None
        return bool(self._items)
