"""Whole tool calls from streamed pieces, for the replies Open WebUI does not stream.

Open WebUI returns a pipe's non-streamed dict to API callers as is, so a
`stream: false` request with tools still gets OpenAI's `message.tool_calls`
(a plain string answer would lose them). Pieces are gathered by `index`, the
way OpenAI clients and Open WebUI's own middleware gather them.
"""

from __future__ import annotations

import time
import uuid

from backend_adapters.events import ToolCall


def whole_tool_calls(pieces: list[ToolCall]) -> list[dict]:
    """OpenAI `message.tool_calls` from streamed pieces, in the order the calls began."""
    calls: dict[int, dict] = {}
    for piece in pieces:
        call = calls.setdefault(
            piece.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if piece.id and not call["id"]:
            call["id"] = piece.id
        if piece.name:
            call["function"]["name"] = piece.name
        call["function"]["arguments"] += piece.arguments
    for call in calls.values():
        call["id"] = call["id"] or f"call_{uuid.uuid4().hex[:24]}"
    return list(calls.values())


def completion_with_tool_calls(model: str, content: str, pieces: list[ToolCall]) -> dict:
    """A `chat.completion` whose message asks for tool calls (`finish_reason: "tool_calls"`)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content or None, "tool_calls": whole_tool_calls(pieces)},
                "finish_reason": "tool_calls",
            }
        ],
    }
