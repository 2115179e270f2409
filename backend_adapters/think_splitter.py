"""One streaming splitter from raw model text to thinking and answer.

Backends that cannot separate reasoning themselves send it inline: either
wrapped in `<think>…</think>`, or, when the chat template pre-fills
`<think>\\n` in the prompt (DeepSeek-R1, QwQ), as bare `reasoning…</think>answer`.
Open WebUI renders neither reliably, so every adapter routes raw text through
this one class.

It is chunking-invariant: any split of the same text yields the same thinking
and the same answer, because the only text it ever holds back is a possible
partial tag (at most seven characters) or the leading whitespace before the
first word. Per chunk it does work proportional to the chunk, never to the
response so far.
"""

from __future__ import annotations

from typing import Literal

from backend_adapters.events import Content, Reasoning

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

PieceKind = Literal["reasoning", "content", "tag"]
Piece = tuple[PieceKind, str]

_START, _THINKING, _ANSWER = "start", "thinking", "answer"


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could be the start of `tag`.

    Tags hold one `<`, so only the last `<` near the end can start a partial tag.
    """
    start = text.rfind("<", max(0, len(text) - len(tag) + 1))
    return len(text) - start if start >= 0 and tag.startswith(text[start:]) else 0


class ThinkSplitter:
    """Splits one response's raw text into reasoning and answer as it streams.

    `starts_in_thinking` says whether output without an opening tag begins
    inside the thinking (R1-style templates); an opening `<think>` as the
    first word switches thinking on in any case. A `<think>` later in the
    answer is answer text.
    """

    def __init__(self, starts_in_thinking: bool = False) -> None:
        self._starts_in_thinking = starts_in_thinking
        self._state = _START
        self._held = ""

    @property
    def thinking(self) -> bool:
        return self._state == _THINKING

    def feed(self, text: str) -> list[Reasoning | Content]:
        """The events this piece of text completes (tags are dropped)."""
        if not self._held and text:  # fast path for the common token with no tag in sight
            if self._state == _ANSWER:
                return [Content(text)]
            if self._state == _THINKING and "<" not in text:
                return [Reasoning(text)]
        return _to_events(self.pieces(text))

    def flush(self) -> list[Reasoning | Content]:
        """The events still held back, at the end of the response."""
        return _to_events(self.flush_pieces())

    def pieces(self, text: str) -> list[Piece]:
        """Like `feed`, but keeps the tags, so that the pieces rebuild the input."""
        out: list[Piece] = []
        buf, self._held = self._held + text, ""
        while buf:
            if self._state == _START:
                body = buf.lstrip()
                if not body or (len(body) < len(OPEN_TAG) and OPEN_TAG.startswith(body)):
                    self._held = buf
                    break
                if body.startswith(OPEN_TAG):
                    cut = len(buf) - len(body) + len(OPEN_TAG)
                    out.append(("tag", buf[:cut]))
                    buf = buf[cut:]
                    self._state = _THINKING
                else:
                    self._state = _THINKING if self._starts_in_thinking else _ANSWER
            elif self._state == _THINKING:
                end = buf.find(CLOSE_TAG)
                if end >= 0:
                    if end:
                        out.append(("reasoning", buf[:end]))
                    out.append(("tag", CLOSE_TAG))
                    buf = buf[end + len(CLOSE_TAG) :]
                    self._state = _ANSWER
                else:
                    keep = _partial_tag_suffix(buf, CLOSE_TAG)
                    if len(buf) > keep:
                        out.append(("reasoning", buf[: len(buf) - keep]))
                    self._held = buf[len(buf) - keep :]
                    break
            else:
                out.append(("content", buf))
                break
        return out

    def flush_pieces(self) -> list[Piece]:
        held, self._held = self._held, ""
        if not held:
            return []
        if self._state == _THINKING or (self._state == _START and self._starts_in_thinking):
            return [("reasoning", held)]
        return [("content", held)]


def _to_events(pieces: list[Piece]) -> list[Reasoning | Content]:
    return [Reasoning(text) if kind == "reasoning" else Content(text) for kind, text in pieces if kind != "tag"]
