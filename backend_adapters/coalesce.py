"""Merges the events that pile up while Open WebUI is busy: a slow consumer gets fewer, larger chunks.

Open WebUI spends more on each chunk (a JSON dump, a filter pass, a socket
send) than the relay does; when it falls behind a fast backend, or hundreds of
users stream at once, one chunk per token makes it fall further behind. A
reader task pulls events ahead into a bounded queue, and each time Open WebUI
asks for the next chunk everything already waiting goes out merged. While
Open WebUI keeps up the queue holds one event at a time and nothing waits.
Progress notes wait until the wait they report is PROGRESS_DELAY old: on a
saved chat each status is a database write, and "Connecting…" replaced by the
answer 20 ms later was only that. After that they go out as they come (the
status line throttles them to one a second).
Under load the window is applied to the socket reads themselves where the
transport can hold them (read_pacing.py): a batch then arrives as one read
and the coalescer only merges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from contextlib import aclosing

from backend_adapters.batch_window import LiveStreams, Pace, batch_window
from backend_adapters.events import Content, Error, Event, Reasoning, Status, ToolCall
from backend_adapters.inbox import Inbox
from backend_adapters.read_pacing import READ_PACE, ReadPace

READ_AHEAD = 512  # events held at most while the consumer is busy; bounds memory per stream
PROGRESS_DELAY = 1.0  # s a wait must last before its progress notes ("Connecting…", "Queued: 2 ahead") show
_END = object()


def _continues_call(previous: Event, event: Event) -> bool:
    """More arguments of the same call: never a piece of another call, never one naming a new call."""
    return (
        isinstance(previous, ToolCall)
        and isinstance(event, ToolCall)
        and event.index == previous.index
        and event.id is None
        and event.name is None
    )


def _joins(previous: object, event: object) -> bool:
    """Does `event` continue `previous`'s run: more thinking, more answer, or more of the same call's arguments?"""
    same_text = isinstance(event, (Reasoning, Content)) and type(event) is type(previous)
    return same_text or _continues_call(previous, event)  # type: ignore[arg-type]


def _merge(batch: list[Event]) -> list[tuple[Event, int]]:
    """Adjacent thinking (or answer, or one call's argument) pieces become one, with how many pieces each stands for."""
    merged: list[tuple[Event, int]] = []
    for event in batch:
        if merged and isinstance(event, (Reasoning, Content)) and type(event) is type(merged[-1][0]):
            previous, count = merged[-1]
            merged[-1] = (type(event)(previous.text + event.text), count + 1)  # type: ignore[union-attr]
        elif merged and _continues_call(merged[-1][0], event):
            previous, count = merged[-1]
            merged[-1] = (ToolCall(previous.index, previous.arguments + event.arguments, previous.id, previous.name), count + 1)  # type: ignore[union-attr]
        else:
            merged.append((event, 1))
    return merged


async def coalesced(
    events: AsyncIterator[Event], read_ahead: int = READ_AHEAD, max_window: float = 0.0
) -> AsyncIterator[tuple[Event, int]]:
    """`events`, merged while the consumer is busy (and, under load, for up to `max_window` s), with piece counts."""
    inbox: Inbox[object] = Inbox(read_ahead)

    async def pull() -> None:
        async with aclosing(events) as source:  # cancelling the reader closes the backend request
            try:
                async for event in source:
                    await inbox.put(event)
            except Exception as exc:  # adapters report faults as Error events; this is the last resort
                await inbox.put(Error(f"Unexpected error while reading the backend ({type(exc).__name__})."))
        await inbox.put(_END)

    async def fill(batch: list[object], window: float) -> object:
        """Add what already waits, and while the window is open what comes, as long as it continues the run.

        Returns the event that broke the run (it starts the next batch), or None."""
        deadline = loop.time() + window
        while True:
            while inbox:
                event = inbox.take()
                if event is not _END and not _joins(batch[-1], event):
                    return event  # a boundary or another kind of event: send this batch now
                batch.append(event)
                if event is _END:
                    return None
                pace.saw(loop.time())
            now = loop.time()
            if now >= deadline or pace.next_misses(now, deadline) or not isinstance(batch[-1], (Reasoning, Content, ToolCall)):
                return None
            if not await inbox.wait(deadline - now):
                return None  # the window closed first

    loop = asyncio.get_running_loop()
    pace = Pace()
    LiveStreams.enter()
    read_pace = ReadPace(batch_window(max_window, LiveStreams.count))
    reader_context = contextvars.copy_context()
    reader_context.run(READ_PACE.set, read_pace)  # the reader's transport, layers below, holds its reads by it
    reader = asyncio.create_task(pull(), context=reader_context)
    carry: object = None
    waiting_since: float | None = None  # when the current run of progress notes began
    try:
        while True:
            if carry is not None:
                first, carry = carry, None
            else:
                await inbox.wait()
                first = inbox.take()
            if isinstance(first, Status) and first.progress:
                waiting_since = waiting_since if waiting_since is not None else loop.time()
                hold = waiting_since + PROGRESS_DELAY - loop.time()
                # The wait is young: show this note only if nothing follows within PROGRESS_DELAY; a note
                # replaced at once, which nobody could read, would only be a database write.
                if hold > 0 and await inbox.wait(hold):
                    continue
            else:
                waiting_since = None
            batch = [first]
            if first is not _END:
                pace.saw(loop.time())
                read_pace.window = batch_window(max_window, LiveStreams.count)
                carry = await fill(batch, 0.0 if read_pace.honoured else read_pace.window)  # held reads batched already
            ended = batch[-1] is _END
            for event, count in _merge([e for e in batch if e is not _END]):  # type: ignore[misc]
                yield event, count
            if ended:
                return
    finally:
        LiveStreams.leave()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
