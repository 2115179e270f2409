"""Tool calls for backends that only return text: which tools to offer, and the calls in the reply.

The adapters of prompt servers and KTransformers render the tools into the
prompt themselves (backend_adapters/tool_prompts.py); this wraps their event
stream so the markup in the answer comes out as `ToolCall` events and the
answer ends with finish reason "tool_calls", which tells Open WebUI to run
them and call the model again with the results.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from backend_adapters.chat_request import ChatRequest
from backend_adapters.events import Content, Error, Event, Finish
from backend_adapters.tool_call_parser import ToolCallParser


def tools_to_offer(request: ChatRequest) -> list[dict]:
    """The chat's tools, unless it asked for none (`tool_choice: "none"`)."""
    return [] if request.tool_choice == "none" else list(request.tools)


async def with_tool_calls(events: AsyncIterator[Event], parser: ToolCallParser) -> AsyncIterator[Event]:
    """`events` with the answer's tool markup turned into calls (thinking is left as it is)."""
    flushed = False
    async with aclosing(events) as source:  # Stop closes the backend request at once
        async for event in source:
            if isinstance(event, Content):
                for parsed in parser.feed(event.text):
                    yield parsed
                continue
            if isinstance(event, (Finish, Error)) and not flushed:
                flushed = True
                for parsed in parser.flush():
                    yield parsed
                if isinstance(event, Finish) and parser.calls:
                    event = Finish("tool_calls")
            yield event
    if not flushed:
        for parsed in parser.flush():
            yield parsed
