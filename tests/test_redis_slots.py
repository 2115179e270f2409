"""The backend queue across Open WebUI replicas, held in a real Redis."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio

from backend_adapters.redis_slots import RedisSlotQueue
from tests.emulators.vllm import VLLMEmulator
from tests.support.built import load_function
from tests.support.pipe_driver import chat_body, make_pipe, run_pipe


def replicas(redis_url: str, size: int, count: int = 2, **kw: float) -> list[RedisSlotQueue]:
    """Queues for one backend as `count` separate processes would make them (one connection each)."""
    name = uuid.uuid4().hex
    return [RedisSlotQueue(redis.asyncio.from_url(redis_url), name, size, **kw) for _ in range(count)]


async def waits(turn) -> list[int]:  # type: ignore[no-untyped-def]
    return [ahead async for ahead in turn.wait()]


async def test_one_slot_holds_across_replicas_in_arrival_order(redis_url: str) -> None:
    a, b = replicas(redis_url, size=1, poll=0.02)
    first = a.turn()
    assert await waits(first) == []  # a free slot: no wait
    second, third = b.turn(), a.turn()
    second_wait = asyncio.create_task(waits(second))
    await asyncio.sleep(0.1)
    third_wait = asyncio.create_task(waits(third))
    await asyncio.sleep(0.1)
    assert not second_wait.done() and not third_wait.done()
    await first.release()
    assert await asyncio.wait_for(second_wait, 5) == [1]
    await asyncio.sleep(0.1)
    assert not third_wait.done()
    await second.release()
    assert await asyncio.wait_for(third_wait, 5) == [2, 1]
    await third.release()
    assert await a.client.zcard(a.queue_key) == 0


async def test_a_cancelled_waiter_leaves_the_line(redis_url: str) -> None:
    a, b = replicas(redis_url, size=1, poll=0.02)
    holder = a.turn()
    await waits(holder)
    waiter = asyncio.create_task(waits(b.turn()))
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await a.client.zcard(a.queue_key) == 1
    await holder.release()


async def test_the_tickets_of_a_dead_replica_expire(redis_url: str) -> None:
    (queue,) = replicas(redis_url, size=1, count=1, lease=0.3, poll=0.02)
    await queue.client.zadd(queue.queue_key, {"dead-replica": time.time() - 60})
    await queue.client.hset(queue.beats_key, "dead-replica", time.time() - 60)
    turn = queue.turn()
    assert await asyncio.wait_for(waits(turn), 5) == []  # the dead ticket was dropped at once
    await turn.release()


async def test_two_replicas_of_the_pipe_share_one_slot(
    redis_url: str, built_dir: Path, vllm_emulator: VLLMEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    vllm_emulator.token_delay = 0.02
    # Two separately loaded modules: nothing in memory is shared, as between two Open WebUI processes.
    replica_a = load_function(built_dir / "r1relay_vllm.py")
    replica_b = load_function(built_dir / "r1relay_vllm.py")
    monkeypatch.setattr(replica_b, "PROGRESS_DELAY", 0.0)  # this wait is short; a real queue's are seconds
    pipes = [make_pipe(m, BASE_URLS=vllm_emulator.base_url, MAX_CONCURRENCY=1) for m in (replica_a, replica_b)]
    body = chat_body("r1relay_vllm.deepseek-ai/DeepSeek-R1")
    first = asyncio.create_task(run_pipe(pipes[0], replica_a, body))
    for _ in range(500):  # the emulator runs in its own thread: poll until the first request holds the slot
        if vllm_emulator.requests:
            break
        await asyncio.sleep(0.01)
    second = await run_pipe(pipes[1], replica_b, body)
    assert (await first).content == second.content == "Hello! How can I help you today?"
    assert "Queued: 1 ahead of you" in [s["description"] for s in second.statuses]


@pytest.mark.timeout(60)  # before the fix this hung: fail instead
async def test_release_returns_and_frees_the_slot_even_when_the_heartbeat_is_mid_command(redis_url: str) -> None:
    """redis-py swallows a cancel that lands inside a command; release once waited on that heartbeat for ever,
    which left chats unfinished and their slots held under load (bench, 128 chats on two replicas)."""
    (queue,) = replicas(redis_url, size=1, count=1, lease=0.006, poll=0.002)  # a beat every 2 ms: cancels land mid-command
    for _ in range(100):
        turn = queue.turn()
        await asyncio.wait_for(waits(turn), 2)  # a slot left held by the last release would block here
        await asyncio.sleep(random.random() * 0.01)
        await asyncio.wait_for(turn.release(), 2)
        assert turn._heartbeat is not None
        await asyncio.wait_for(asyncio.wait({turn._heartbeat}), 2)  # the loop itself ends, not just release
    assert await queue.client.zcard(queue.queue_key) == 0


@pytest.mark.timeout(60)
async def test_a_stop_while_queued_always_cancels_the_waiter_and_frees_its_place(redis_url: str) -> None:
    """A cancel landing inside one of the waiter's Redis polls still cancels it (redis-py alone would swallow it)."""
    (queue,) = replicas(redis_url, size=1, count=1, poll=0.001)
    holder = queue.turn()
    await waits(holder)
    for _ in range(100):
        waiter = asyncio.create_task(waits(queue.turn()))
        await asyncio.sleep(random.random() * 0.01)
        waiter.cancel()
        done, _ = await asyncio.wait({waiter}, timeout=2)
        assert done and waiter.cancelled()
    assert await queue.client.zcard(queue.queue_key) == 1  # the holder's ticket alone
    await holder.release()
