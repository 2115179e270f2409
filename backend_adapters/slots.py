"""A first-come, first-served queue in front of a backend with few slots, per process
(`redis_slots.py` holds it across Open WebUI replicas when they share a Redis).

KTransformers serves one request at a time, and a vLLM deployment may be
capped; sending more makes every user wait longer (or time out) without
telling them why. Requests wait here instead, each learning its place in line,
and a request cancelled while waiting simply leaves the line.

asyncio.Semaphore cannot report positions, hence this small class.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from backend_adapters.events import Event, Status
from backend_adapters.redis_slots import RedisSlotQueue


@dataclass(eq=False)
class _Ticket:
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    granted: bool = False


class SlotQueue:
    """At most `size` holders at once; the rest wait in arrival order."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.running = 0
        self._waiting: deque[_Ticket] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def enter(self) -> AsyncIterator[int]:
        """Yields how many requests are ahead whenever that changes; ends holding a slot.

        The caller must call `leave()` once done (use try/finally right after the loop).
        """
        if self.running < self.size and not self._waiting:
            self.running += 1
            return
        ticket = _Ticket()
        self._waiting.append(ticket)
        try:
            while not ticket.granted:
                yield self._waiting.index(ticket) + self.running
                ticket.moved.clear()
                await ticket.moved.wait()
        except BaseException:
            if ticket.granted:
                self.leave()
            else:
                self._waiting.remove(ticket)
                self._tell_waiters()
            raise

    def leave(self) -> None:
        if self._waiting:
            ticket = self._waiting.popleft()
            ticket.granted = True  # the slot passes straight to the next in line
            ticket.moved.set()
            self._tell_waiters()
        else:
            self.running -= 1

    def turn(self) -> MemoryTurn:
        return MemoryTurn(self)

    def _tell_waiters(self) -> None:
        for ticket in self._waiting:
            ticket.moved.set()


class MemoryTurn:
    """One request's place in a SlotQueue."""

    def __init__(self, queue: SlotQueue) -> None:
        self.queue = queue

    def wait(self) -> AsyncIterator[int]:
        return self.queue.enter()

    async def release(self) -> None:
        self.queue.leave()


class Turn(Protocol):
    def wait(self) -> AsyncIterator[int]: ...

    async def release(self) -> None: ...


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def _redis_queue(key: tuple, size: int) -> Any:
    """A queue shared through Open WebUI's own Redis when it runs replicas (REDIS_URL), else None."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    import redis.asyncio  # ships with Open WebUI; only needed when it runs with Redis

    name = hashlib.sha256(repr(key).encode()).hexdigest()[:16]  # no backend URLs in Redis key names
    return RedisSlotQueue(redis.asyncio.from_url(url), name, size)


def shared_queue(key: tuple, size: int) -> SlotQueue | RedisSlotQueue:
    """The queue for one backend, made on first use: in Redis when Open WebUI has one, else in memory.

    Keyed per event loop because asyncio primitives and Redis connections belong to one loop.
    """
    per_loop = _queues.setdefault(asyncio.get_running_loop(), {})
    queue = per_loop.get((key, size))
    if queue is None:
        queue = per_loop[(key, size)] = _redis_queue(key, size) or SlotQueue(size)
    return queue


async def in_turn(queue: SlotQueue | RedisSlotQueue, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """`events`, started only once `queue` grants a slot; the wait is reported as status."""
    turn: Turn = queue.turn()
    async with aclosing(turn.wait()) as waits:
        async for ahead in waits:
            yield Status(f"Queued: {ahead} ahead of you", progress=True)
    try:
        async for event in events:
            yield event
    finally:
        await turn.release()
