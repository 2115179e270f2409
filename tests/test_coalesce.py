"""Coalescing: a busy consumer gets fewer, merged chunks; nothing is lost, reordered or left open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from backend_adapters.coalesce import coalesced
from backend_adapters.events import Content, Event, Finish, Reasoning, Status, ToolCall, Usage


async def source(events: list[Event], closed: list[bool] | None = None, pause: float = 0.0) -> AsyncIterator[Event]:
    try:
        for event in events:
            if pause:
                await asyncio.sleep(pause)
            yield event
    finally:
        if closed is not None:
            closed.append(True)


STREAM: list[Event] = (
    [Status("Connecting…")]
    + [Reasoning(f"r{i} ") for i in range(100)]
    + [Content(f"c{i} ") for i in range(100)]
    + [Usage(5, 200), Finish("stop")]
)


async def test_a_busy_consumer_gets_merged_chunks_in_order() -> None:
    stream = coalesced(source(STREAM))
    await asyncio.sleep(0)  # the reader starts
    await asyncio.sleep(0.05)  # ...and reads everything ahead while we are "busy"
    out = [item async for item in stream]
    assert len(out) < len(STREAM)
    assert "".join(e.text for e, _ in out if isinstance(e, Reasoning)) == "".join(f"r{i} " for i in range(100))
    assert "".join(e.text for e, _ in out if isinstance(e, Content)) == "".join(f"c{i} " for i in range(100))
    assert sum(n for e, n in out if isinstance(e, (Reasoning, Content))) == 200
    kinds = [type(e).__name__ for e, _ in out]
    assert kinds == sorted(set(kinds), key=kinds.index)  # each kind in one run: order kept
    assert kinds[0] == "Status" and kinds[-2:] == ["Usage", "Finish"]


async def test_a_consumer_that_keeps_up_gets_every_piece_as_it_comes() -> None:
    out = [item async for item in coalesced(source(STREAM[:20], pause=0.005))]
    assert [e for e, _ in out] == STREAM[:20]
    assert all(n == 1 for _, n in out)


async def test_cancelling_the_consumer_closes_the_source() -> None:
    closed: list[bool] = []
    endless = source([Reasoning("x")] * 100_000, closed, pause=0.001)

    async def consume() -> None:
        async for _ in coalesced(endless, read_ahead=8):
            await asyncio.sleep(0.01)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # the abandoned generator is closed by the loop's finalizer, within a few turns
        if closed:
            break
        await asyncio.sleep(0.01)
    assert closed == [True]


async def test_tool_call_pieces_merge_per_call_never_across_calls_or_out_of_order() -> None:
    calls: list[Event] = [
        Reasoning("I should look up the time."),
        ToolCall(0, "", id="call_a", name="get_time"),
        *[ToolCall(0, piece) for piece in ['{"tz', '": "U', 'TC"}']],
        ToolCall(1, "", id="call_b", name="get_date"),
        *[ToolCall(1, piece) for piece in ["{", "}"]],
        Finish("tool_calls"),
    ]
    stream = coalesced(source(calls))
    await asyncio.sleep(0.05)  # everything waits: the most merging possible
    out = [event for event, _ in [item async for item in stream]]
    tool_calls = [e for e in out if isinstance(e, ToolCall)]
    assert tool_calls == [
        ToolCall(0, '{"tz": "UTC"}', id="call_a", name="get_time"),
        ToolCall(1, "{}", id="call_b", name="get_date"),
    ]
    assert out[-1] == Finish("tool_calls")


async def test_progress_notes_show_once_the_wait_is_old_enough_even_while_they_keep_changing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fast-moving queue ("Queued: 9 ahead", "8 ahead", … every 50 ms) still shows where the user is."""
    monkeypatch.setattr("backend_adapters.coalesce.PROGRESS_DELAY", 0.2)
    notes = [Status(f"Queued: {n} ahead of you", progress=True) for n in range(9, 0, -1)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    shown: list[tuple[str, float]] = []
    async for event, _ in coalesced(source([*notes, Content("answer")], pause=0.05)):
        if isinstance(event, Status):
            shown.append((event.description, loop.time() - started))
    assert shown, "no queue position was shown during a 0.45 s wait"
    assert shown[0][1] >= 0.2  # nothing before the wait was PROGRESS_DELAY old
    assert shown[-1][0] == "Queued: 1 ahead of you"  # once shown, the notes follow the queue


async def test_a_progress_note_replaced_at_once_is_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backend_adapters.coalesce.PROGRESS_DELAY", 0.2)
    out = [event async for event, _ in coalesced(source([Status("Connecting…", progress=True), Content("hi")]))]
    assert out == [Content("hi")]


async def test_a_burst_that_lands_as_a_shown_note_times_out_keeps_its_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The note's wait runs out in the same loop turn as the backend's answer arrives (a busy Open WebUI blocked
    the loop across both): the answer must come out in order, its first piece first.

    Seen at 256 production chats: a queued chat's first token was saved after the seventh."""
    monkeypatch.setattr("backend_adapters.coalesce.PROGRESS_DELAY", 0.05)
    pieces = [Reasoning(f"r{i} ") for i in range(20)]

    async def answer_after_a_wait() -> AsyncIterator[Event]:
        yield Status("Queued: 1 ahead of you", progress=True)
        loop = asyncio.get_running_loop()
        loop.call_later(0.03, time.sleep, 0.05)  # the loop blocks past both the note's wait and the answer's arrival
        await asyncio.sleep(0.045)  # due before the note's wait runs out: runs first in that turn
        for piece in pieces[:10]:  # one network read's worth, all at once
            yield piece
        await asyncio.sleep(0.01)
        for piece in pieces[10:]:  # the next read's
            yield piece

    out = []
    async for event, _ in coalesced(answer_after_a_wait()):
        out.append(event)
        await asyncio.sleep(0)  # Open WebUI awaits its own work (socket events, saves) between chunks
    assert "".join(e.text for e in out if isinstance(e, Reasoning)) == "".join(p.text for p in pieces)
