"""Merges the events that pile up while Open WebUI is busy: a slow consumer gets fewer, larger chunks.

Open WebUI spends more on each chunk (a JSON dump, a filter pass, a socket
send) than the relay does; when it falls behind a fast backend, or hundreds of
users stream at once, one chunk per token makes it fall further behind. A
reader task pulls events ahead into a bounded queue, and each time Open WebUI
asks for the next chunk everything already waiting goes out merged. While
Open WebUI keeps up the queue holds one event at a time and nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import aclosing

from backend_adapters.events import Content, Error, Event, Reasoning, ToolCall

READ_AHEAD = 512  # events held at most while the consumer is busy; bounds memory per stream
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


async def coalesced(events: AsyncIterator[Event], read_ahead: int = READ_AHEAD) -> AsyncIterator[tuple[Event, int]]:
    """`events`, merged while the consumer is busy, each with the number of pieces it holds."""
    queue: asyncio.Queue[object] = asyncio.Queue(read_ahead)

    async def pull() -> None:
        async with aclosing(events) as source:  # cancelling the reader closes the backend request
            try:
                async for event in source:
                    await queue.put(event)
            except Exception as exc:  # adapters report faults as Error events; this is the last resort
                await queue.put(Error(f"Unexpected error while reading the backend ({type(exc).__name__})."))
        await queue.put(_END)

    reader = asyncio.create_task(pull())
    try:
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            ended = batch[-1] is _END
            for event, count in _merge([e for e in batch if e is not _END]):  # type: ignore[misc]
                yield event, count
            if ended:
                return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
