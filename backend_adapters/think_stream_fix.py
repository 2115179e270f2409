"""Repairs raw think tags in OpenAI chunks that reach Open WebUI from someone else's connection.

Models served straight to Open WebUI (an admin OpenAI connection, a user's
direct connection) skip our pipes, so an R1 model there streams
`reasoning…</think>answer` as plain `content`, which Open WebUI shows raw.
A filter's `stream` hook sees every parsed chunk; this module runs the one
`ThinkSplitter` over their `content` and moves the thinking to
`delta.reasoning_content`, which Open WebUI renders as its collapsible block.

Open WebUI shares one filter instance among all users, so splitter state is
kept per stream key (chat and message id) in a bounded store: an entry ends
with the stream's `finish_reason` (or the outlet), and a stream that never
finishes is evicted by age or by count, so nothing leaks.
"""

from __future__ import annotations

import html
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from backend_adapters.events import Reasoning
from backend_adapters.think_splitter import CLOSE_TAG, OPEN_TAG, ThinkSplitter

REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")


@dataclass
class ThinkStreamState:
    """What one streamed answer needs between chunks."""

    splitter: ThinkSplitter
    well_formed: bool = False  # the backend separates reasoning itself: leave the stream alone
    reasoning_started: bool = False
    content_started: bool = False
    touched: float = field(default_factory=time.monotonic)


class ThinkStreamStore:
    """Per-stream states, bounded in count and idle age.

    `clock` is injectable so tests can age entries without sleeping.
    """

    def __init__(
        self, max_streams: int = 512, max_idle: float = 900.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._states: OrderedDict[str, ThinkStreamState] = OrderedDict()
        self._max_streams = max_streams
        self._max_idle = max_idle
        self._clock = clock

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: str, starts_in_thinking: bool) -> ThinkStreamState:
        now = self._clock()
        self._evict(now)
        state = self._states.get(key)
        if state is None:
            state = ThinkStreamState(ThinkSplitter(starts_in_thinking), touched=now)
            self._states[key] = state
        else:
            state.touched = now
            self._states.move_to_end(key)
        return state

    def discard(self, key: str) -> None:
        self._states.pop(key, None)

    def _evict(self, now: float) -> None:
        while self._states:
            oldest_key, oldest = next(iter(self._states.items()))
            if len(self._states) < self._max_streams and now - oldest.touched <= self._max_idle:
                break
            del self._states[oldest_key]


def stream_key(metadata: dict | None, chat_id: str | None, message_id: str | None, chunk: dict) -> str:
    """Which answer a chunk belongs to: Open WebUI's chat and message ids, else the backend's completion id."""
    meta = metadata or {}
    chat = chat_id or meta.get("chat_id") or ""
    message = message_id or meta.get("message_id") or ""
    if message:
        return f"{chat}/{message}"
    return f"completion/{chunk.get('id') or ''}"


def _first_choice(chunk: dict) -> dict | None:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def fix_chunk(chunk: dict, store: ThinkStreamStore, key: str, starts_in_thinking: bool) -> dict:
    """The chunk with raw think text moved to `reasoning_content`; anything else is returned as is.

    Leading whitespace of the thinking and of the answer is dropped: a
    whitespace-only content delta would close Open WebUI's reasoning block early.
    """
    choice = _first_choice(chunk)
    if choice is None:
        return chunk
    delta = choice.get("delta")
    finished = bool(choice.get("finish_reason"))
    if not isinstance(delta, dict):
        if finished:
            store.discard(key)
        return chunk
    state = store.get(key, starts_in_thinking)
    if any(delta.get(name) for name in REASONING_FIELDS):
        state.well_formed = True
    content = delta.get("content")
    if state.well_formed or not (isinstance(content, str) and content or finished):
        if finished:
            store.discard(key)
        return chunk
    events = state.splitter.feed(content) if isinstance(content, str) else []
    if finished:
        events += state.splitter.flush()
        store.discard(key)
    reasoning, answer = [], []
    for event in events:
        text = event.text
        if isinstance(event, Reasoning):
            if not state.reasoning_started:
                text = text.lstrip()
                state.reasoning_started = bool(text)
            reasoning.append(text)
        else:
            if not state.content_started:
                text = text.lstrip()
                state.content_started = bool(text)
            answer.append(text)
    reasoning_text, answer_text = "".join(reasoning), "".join(answer)
    if not reasoning_text and answer_text == content:
        return chunk  # plain answer text: untouched
    new_delta = {k: v for k, v in delta.items() if k != "content"}
    if reasoning_text:
        new_delta["reasoning_content"] = reasoning_text
    if answer_text:
        new_delta["content"] = answer_text
    elif "role" in delta:
        new_delta["content"] = ""
    new_choice = {**choice, "delta": new_delta}
    return {**chunk, "choices": [new_choice, *chunk["choices"][1:]]}


def split_think_text(text: str, starts_in_thinking: bool) -> tuple[str, str]:
    """A whole reply's (reasoning, answer), both stripped, by the same splitter."""
    splitter = ThinkSplitter(starts_in_thinking)
    events = splitter.feed(text) + splitter.flush()
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    answer = "".join(e.text for e in events if not isinstance(e, Reasoning))
    return reasoning.strip(), answer.strip()


def has_raw_think(text: object) -> bool:
    return isinstance(text, str) and (CLOSE_TAG in text or text.lstrip().startswith(OPEN_TAG))


def reasoning_details(reasoning: str) -> str:
    """The thinking as releases before 0.10 keep it in `content`: utils/middleware.py `serialize_output` (0.9.6)."""
    quoted = "\n".join(line if line.startswith(">") else f"> {line}" for line in reasoning.splitlines())
    return (
        '<details type="reasoning" done="true" duration="0">\n<summary>Thought for 0 seconds</summary>\n'
        f"{html.escape(quoted)}\n</details>"
    )


def fix_stored_message(message: dict, starts_in_thinking: bool, reasoning_in_content: bool = False) -> bool:
    """Rewrite one finished assistant message into Open WebUI's stored form; True if changed.

    Open WebUI 0.12 keeps reasoning as a `reasoning` item in the message's
    `output` (shaped as in utils/middleware.py `non_streaming_chat_response_handler`)
    and the answer as `content` plus a `message` item. Releases before 0.10
    (`reasoning_in_content`) show `content`, so the thinking goes there too,
    as the `<details>` block they render as "Thought for …".
    """
    content = message.get("content")
    output = message.get("output") if isinstance(message.get("output"), list) else []
    if message.get("role") != "assistant" or not has_raw_think(content):
        return False
    if any(isinstance(item, dict) and item.get("type") == "reasoning" for item in output):
        return False
    reasoning, answer = split_think_text(content, starts_in_thinking)
    if not reasoning:
        return False
    reasoning_item = {
        "type": "reasoning",
        "id": f"r_{uuid.uuid4().hex}",
        "status": "completed",
        "start_tag": OPEN_TAG,
        "end_tag": CLOSE_TAG,
        "attributes": {"type": "reasoning_content"},
        "content": [{"type": "output_text", "text": reasoning}],
        "summary": None,
    }
    kept = [item for item in output if not (isinstance(item, dict) and item.get("type") == "message")]
    old_message = next((item for item in output if isinstance(item, dict) and item.get("type") == "message"), {})
    message_item = {
        "type": "message",
        "id": old_message.get("id") or f"msg_{uuid.uuid4().hex}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": answer}],
    }
    message["content"] = f"{reasoning_details(reasoning)}\n{answer}" if reasoning_in_content else answer
    message["output"] = [reasoning_item, *kept, message_item]
    return True
