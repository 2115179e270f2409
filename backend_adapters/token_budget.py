"""Fitting a chat into a model's context window by dropping its oldest turns.

vLLM and KTransformers answer a prompt longer than their context with an
error and leave the client to cope. Here the chat is cut before it is sent:
the system prompt and the latest user message always stay, older turns go
whole (a user message with the replies that followed it), oldest first, and
as few as possible.

Counting is pluggable: a backend's own tokenizer when it offers one, else
`estimate_tokens`, which is tokenizer-free and deliberately high, because
guessing low means the backend rejects the chat, guessing high only drops
a turn more than needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

ESTIMATE_PER_MESSAGE = 8  # role markers and separators of a chat template
ESTIMATE_PER_PROMPT = 16  # BOS and the generation prompt

# Letter runs, digits one by one, whitespace runs, any other character alone.
_BUDGET_PIECES = re.compile(r"[A-Za-z]+|\s+|.", re.DOTALL)


def message_text(message: dict) -> str:
    """The text of a message, whether `content` is a string or OpenAI content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def estimate_text_tokens(text: str) -> int:
    """An upper-leaning token count for BPE tokenizers of R1, its Qwen/Llama distills and QwQ.

    Byte-level BPE never gives more tokens than bytes, and merges letters
    into pieces of three or more characters; digits may be one token each
    (Qwen), non-ASCII characters up to two. Whitespace is counted apart
    although real tokenizers merge it into the next word, which keeps the
    estimate high on prose.
    """
    total = 0
    for piece in _BUDGET_PIECES.findall(text):
        first = piece[0]
        if first.isascii() and first.isalpha():
            total += math.ceil(len(piece) / 3)
        elif first.isspace() or first.isascii():
            total += 1
        else:
            total += 1 if len(first.encode("utf-8")) <= 2 else 2
    return total


def estimate_message_tokens(message: dict) -> int:
    return estimate_text_tokens(message_text(message)) + ESTIMATE_PER_MESSAGE


def estimate_tokens(messages: Sequence[dict]) -> int:
    """The estimate for a whole chat prompt."""
    return ESTIMATE_PER_PROMPT + sum(estimate_message_tokens(m) for m in messages)


@dataclass(frozen=True)
class ChatTurns:
    """A chat cut into what must stay and what may go.

    `turns` are groups of message indices, oldest first: each starts at a
    user message and holds the replies after it. System messages and
    everything from the latest user message on are never in a turn.
    """

    size: int
    turns: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, messages: Sequence[dict]) -> ChatTurns:
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        turns: list[list[int]] = []
        for i in range(max(last_user, 0)):
            role = messages[i].get("role")
            if role == "system":
                continue
            if role == "user" or not turns:
                turns.append([])
            turns[-1].append(i)
        return cls(len(messages), tuple(tuple(t) for t in turns))

    def kept(self, dropped_turns: int) -> list[int]:
        """Indices of the messages left when the oldest `dropped_turns` turns go."""
        gone = {i for turn in self.turns[:dropped_turns] for i in turn}
        return [i for i in range(self.size) if i not in gone]


class ContextOverflow(Exception):
    """Even the system prompt and the latest message alone do not fit; the text is for the user."""


@dataclass(frozen=True)
class ContextFit:
    messages: list[dict]
    dropped_turns: int
    prompt_tokens: int


CountTokens = Callable[[list[dict]], Awaitable[int]]


async def fit_to_context(messages: list[dict], limit: int, reserve: int, count: CountTokens) -> ContextFit:
    """The chat with the fewest oldest turns dropped so that prompt + `reserve` ≤ `limit`.

    Dropping a turn never makes a prompt longer, so a binary search over the
    number of dropped turns needs about log2(turns) counts, which matters
    when each count is a request to the backend's tokenizer.
    """
    turns = ChatTurns.of(messages)
    seen: dict[int, tuple[list[dict], int]] = {}

    async def without(dropped: int) -> int:
        kept = [messages[i] for i in turns.kept(dropped)]
        seen[dropped] = (kept, await count(kept))
        return seen[dropped][1]

    if await without(0) + reserve <= limit:
        return ContextFit(seen[0][0], 0, seen[0][1])
    everything = len(turns.turns)
    least_tokens = await without(everything)
    if least_tokens + reserve > limit:
        room = max(limit - reserve, 0)
        raise ContextOverflow(
            f"This message is too long for the model: with the system prompt it needs about {least_tokens} tokens, "
            f"but the model's context window holds {limit} and {reserve} of them are kept for the answer, "
            f"leaving {room}; shorten the message, lower max_tokens, or use a model with a larger context."
        )
    low, high = 1, everything  # dropping `high` turns is known to fit
    while low < high:
        middle = (low + high) // 2
        if await without(middle) + reserve <= limit:
            high = middle
        else:
            low = middle + 1
    kept, tokens = seen[high]
    return ContextFit(kept, high, tokens)
