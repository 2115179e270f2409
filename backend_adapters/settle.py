"""How every adapter ends a response: held-back text first, then the finish or one sentence.

The think splitter may hold a few characters (a possible partial tag) when a
stream ends or breaks; they belong to the answer the user already sees, so
they go out before the finish, or before the error that ended the stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from backend_adapters.errors import ErrorContext, describe
from backend_adapters.events import Error, Event, Finish
from backend_adapters.think_splitter import ThinkSplitter


async def settled(events: AsyncIterator[Event], splitter: ThinkSplitter, ctx: ErrorContext) -> AsyncIterator[Event]:
    """`events` of one response (which may raise), ended cleanly."""
    finish = Finish(None)
    try:
        async for event in events:
            if isinstance(event, Finish):
                finish = event  # after the held-back text
            else:
                yield event
    except Exception as exc:
        for event in splitter.flush():
            yield event
        yield Error(describe(exc, ctx))
        return
    for event in splitter.flush():
        yield event
    yield finish
