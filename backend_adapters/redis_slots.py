"""The backend's queue held in Redis, so that it holds across Open WebUI replicas.

Open WebUI scales out as replicas sharing a Redis (`REDIS_URL`); a queue kept
in one process's memory would let three replicas send three requests to a
one-slot KTransformers server at once. Tickets live in a sorted set by arrival:
the first `size` hold the slots, the rest wait and learn their rank. Each
ticket's owner refreshes a heartbeat, so the tickets of a replica that died are
dropped after `lease` seconds instead of blocking the line for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

# Drops tickets whose heartbeat is older than the lease (and stale beats of tickets already gone, which a beat
# in flight during a release can leave), refreshes ours, returns our rank (nil if gone).
_RANK_SCRIPT = """
local now = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local beat = tonumber(redis.call('HGET', KEYS[2], member) or '0')
  if member ~= ARGV[1] and now - beat > lease then
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
  end
end
for _, member in ipairs(redis.call('HKEYS', KEYS[2])) do
  local beat = tonumber(redis.call('HGET', KEYS[2], member) or '0')
  if now - beat > lease and redis.call('ZSCORE', KEYS[1], member) == false then
    redis.call('HDEL', KEYS[2], member)
  end
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return nil end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('ZRANK', KEYS[1], ARGV[1])
"""


class RedisSlotQueue:
    """At most `size` holders across every process sharing `client`; the rest wait in arrival order."""

    def __init__(self, client: Any, name: str, size: int, lease: float = 15.0, poll: float = 0.25) -> None:
        self.client = client
        self.size = max(1, size)
        self.lease = lease
        self.poll = poll
        self.queue_key = f"r1relay:slots:{name}"
        self.beats_key = f"{self.queue_key}:beats"

    def turn(self) -> RedisTurn:
        return RedisTurn(self)


class RedisTurn:
    """One request's place in a RedisSlotQueue."""

    def __init__(self, queue: RedisSlotQueue) -> None:
        self.queue = queue
        self.ticket = uuid.uuid4().hex
        self._heartbeat: asyncio.Task | None = None
        self._released = False
        self._in_flight: asyncio.Future | None = None  # the last Redis command sent

    async def _command(self, call: Awaitable[Any]) -> Any:
        """One Redis command in a task of its own, awaited through a shield.

        redis-py swallows a cancel that lands mid-command (about 1 in 7 in
        tests/test_redis_slots.py); awaited directly, a user's Stop would be
        lost and a released slot's heartbeat would beat on. This way the
        caller's cancel always reaches the caller; the command lands on its
        own, and `_remove` waits for it so that nothing it adds outlives us.
        """
        task = self._in_flight = asyncio.ensure_future(call)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its error is the caller's, if anyone's
        return await asyncio.shield(task)

    async def _rank(self) -> int | None:
        q = self.queue
        rank = await self._command(q.client.eval(_RANK_SCRIPT, 2, q.queue_key, q.beats_key, self.ticket, time.time(), q.lease))
        return None if rank is None else int(rank)

    async def _join(self) -> None:
        q = self.queue
        await self._command(q.client.hset(q.beats_key, self.ticket, time.time()))
        await self._command(q.client.zadd(q.queue_key, {self.ticket: time.time()}, nx=True))

    async def wait(self) -> AsyncIterator[int]:
        """Yields how many requests are ahead whenever that changes; ends holding a slot."""
        last: int | None = None
        try:
            await self._join()
            while True:
                rank = await self._rank()
                if rank is None:  # dropped as stale after a long pause of this process: queue again
                    await self._join()
                    continue
                if rank < self.queue.size:
                    self._heartbeat = asyncio.create_task(self._beat())
                    return
                if rank != last:
                    last = rank
                    yield rank
                await asyncio.sleep(self.queue.poll)
        except BaseException:
            await asyncio.shield(self._remove())
            raise

    async def _beat(self) -> None:
        """Refresh our heartbeat until released; a Redis hiccup skips one beat instead of ending them all."""
        q = self.queue
        while not self._released:
            await asyncio.sleep(q.lease / 3)
            if self._released:
                return
            with contextlib.suppress(Exception):
                await self._command(q.client.hset(q.beats_key, self.ticket, time.time()))

    async def _remove(self) -> None:
        q = self.queue
        if self._in_flight is not None and not self._in_flight.done():  # a join or beat still landing: after it
            await asyncio.wait({self._in_flight}, timeout=q.lease / 3)
        await self._command(q.client.zrem(q.queue_key, self.ticket))
        await self._command(q.client.hdel(q.beats_key, self.ticket))

    async def release(self) -> None:
        """Give the slot back. Never waits on the heartbeat for long: redis-py swallows a cancel that lands
        mid-command (about 1 in 7 in tests/test_redis_slots.py), so the flag, not the cancel, ends the loop."""
        self._released = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait({self._heartbeat}, timeout=self.queue.lease / 3)
        await asyncio.shield(self._remove())
