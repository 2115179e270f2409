"""Normalized events → what Open WebUI 0.12 consumes from a pipe.

Thinking goes out as `delta.reasoning_content` the moment it arrives (Open
WebUI times the "Thought for …" block from the first reasoning delta to the
first content delta, so buffering would show "0 seconds"); the answer as
`delta.content`; faults as an `error` chunk, which Open WebUI shows as an
error under whatever already streamed; progress as status events, as few as
status_line.py allows (on a saved chat every status is a database write). No
"Thinking…"/"Answering…" statuses: the Thought block already shows both.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

from backend_adapters.coalesce import coalesced
from backend_adapters.events import Content, Error, Event, Finish, Reasoning, Status, ToolCall, Usage
from backend_adapters.status_line import Emitter, StatusLine
from backend_adapters.tool_call_reply import completion_with_tool_calls


class _LeadingWhitespace:
    """Drops whitespace before a stream's first word.

    A whitespace-only content delta would close Open WebUI's reasoning block
    early, and R1 pads both its thinking and its answer with newlines.
    """

    def __init__(self) -> None:
        self.started = False

    def __call__(self, text: str) -> str:
        if self.started:
            return text
        text = text.lstrip()
        self.started = bool(text)
        return text


@dataclass
class StreamStats:
    """Timing of one answer, for the status line users asked for."""

    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    last_token: float | None = None
    pieces: int = 0
    completion_tokens: int | None = None

    def saw_tokens(self, pieces: int) -> None:
        now = time.monotonic()
        if self.first_token is None:
            self.first_token = now
        self.last_token = now
        self.pieces += pieces

    def summary(self) -> str:
        if self.first_token is None or self.last_token is None:
            return "No tokens received"
        tokens = self.completion_tokens if self.completion_tokens is not None else self.pieces
        span = self.last_token - self.first_token
        rate = f"{tokens / span:.1f} tokens/s" if span > 0 and tokens > 1 else "– tokens/s"
        return f"{tokens} tokens · {rate} · first token after {self.first_token - self.started:.2f} s"


def tool_call_delta(call: ToolCall) -> dict:
    """One piece of a tool call as OpenAI streams it (`choices[0].delta.tool_calls[0]`)."""
    delta: dict = {"index": call.index}
    if call.id is not None:
        delta["id"] = call.id
        delta["type"] = "function"
    function: dict = {"arguments": call.arguments}
    if call.name is not None:
        function["name"] = call.name
    delta["function"] = function
    return delta


def _chunk(chunk_id: str, model: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


async def render_stream(
    events: AsyncIterator[Event],
    *,
    model: str,
    emit: Emitter | None = None,
    show_stats: bool = True,
    batch_window: float = 0.0,
) -> AsyncIterator[dict]:
    """Yield OpenAI chunk dicts for Open WebUI; send statuses through `emit`; `batch_window`: coalesce.py."""
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    stats = StreamStats()
    trim_reasoning, trim_content = _LeadingWhitespace(), _LeadingWhitespace()
    line = StatusLine(emit)
    usage: dict | None = None
    failed: str | None = None
    finish_reason: str | None = None

    async with aclosing(coalesced(events, max_window=batch_window)) as merged:
        async for event, pieces in merged:
            if isinstance(event, Reasoning):
                text = trim_reasoning(event.text)
                if not text:
                    continue
                stats.saw_tokens(pieces)
                yield _chunk(chunk_id, model, {"reasoning_content": text})
            elif isinstance(event, Content):
                text = trim_content(event.text)
                if not text:
                    continue
                stats.saw_tokens(pieces)
                yield _chunk(chunk_id, model, {"content": text})
            elif isinstance(event, ToolCall):
                yield _chunk(chunk_id, model, {"tool_calls": [tool_call_delta(event)]})
            elif isinstance(event, Usage):
                stats.completion_tokens = event.completion_tokens
                usage = {
                    "prompt_tokens": event.prompt_tokens,
                    "completion_tokens": event.completion_tokens,
                    "total_tokens": (event.prompt_tokens or 0) + (event.completion_tokens or 0),
                }
            elif isinstance(event, Finish):
                finish_reason = event.reason
            elif isinstance(event, Status):
                if event.progress:
                    await line.progress(event.description)
                else:
                    await line.show(event.description, event.done)
            elif isinstance(event, Error):
                failed = event.message
                break

    if failed is not None:
        await line.show(failed, done=True)
        yield {"error": failed}
        return
    if usage is not None:
        yield {**_chunk(chunk_id, model, {}, finish_reason or "stop"), "usage": usage}
    elif finish_reason is not None:
        yield _chunk(chunk_id, model, {}, finish_reason)
    if show_stats:
        await line.show(stats.summary(), done=True)
    else:
        await line.show("", done=True, hidden=True)


async def collect_answer(events: AsyncIterable[Event], model: str = "") -> str | dict:
    """The answer alone, for Open WebUI's non-streamed calls (titles, tags, API users); a completion
    dict with `tool_calls` when the model asked for tools, which a plain string would lose."""
    parts: list[str] = []
    calls: list[ToolCall] = []
    async for event in events:
        if isinstance(event, Content):
            parts.append(event.text)
        elif isinstance(event, ToolCall):
            calls.append(event)
        elif isinstance(event, Error):
            if not parts and not calls:
                raise RuntimeError(event.message)
            break
    answer = "".join(parts).strip()
    return completion_with_tool_calls(model, answer, calls) if calls else answer
