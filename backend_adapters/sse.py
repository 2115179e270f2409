"""An incremental Server-Sent Events decoder (WHATWG HTML, "event stream interpretation").

Network reads split streams anywhere: inside a line, between the CR and LF of
a CRLF, inside a multi-byte UTF-8 character. Line-based readers get those
wrong (a token cut in two, a stray "\\r", U+FFFD in the middle of a word), so
this decoder keeps its own byte → text → line → event state and yields the
same events whatever the chunking. It follows the spec (fields `data`,
`event`, `id`, `retry`; comments; one optional space after the colon, so
KTransformers' `data:{…}` decodes like `data: {…}`) and adds one tolerance:
a line that starts with `{` outside an event is one event of its own, because
KTransformers' Ollama routes send NDJSON under `text/event-stream`.

It imports no HTTP library; `aiter_sse` takes any async iterable of bytes,
such as `httpx.Response.aiter_bytes()`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

_SSE_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event; `id` is the stream's last event id at dispatch time."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Bytes in, events out; feed it every network read, then call `close()` at the end."""

    def __init__(self, json_lines: bool = True) -> None:
        self._json_lines = json_lines
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial: list[str] = []  # pieces of text after the last line end (joined once a line ends)
        self._skip_lf = False  # the last read ended in CR: a leading LF completes that CRLF
        self._at_start = True  # a BOM is dropped only at the very start
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events this read completes."""
        return self._feed_text(self._text.decode(chunk))

    def close(self) -> list[ServerSentEvent]:
        """End of stream: per the spec an event without its blank line is discarded."""
        events = self._feed_text(self._text.decode(b"", final=True))
        rest = "".join(self._partial)
        if rest and self._json_lines and not self._data and rest.lstrip().startswith("{"):
            events.append(ServerSentEvent(rest.strip(), id=self._last_id))
        self._partial = []
        self._data = []
        self._event = ""
        return events

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]
        self._skip_lf = text.endswith("\r")
        if "\n" not in text and "\r" not in text:
            self._partial.append(text)  # no line ends yet: O(1), so a long line costs O(its length) overall
            return []
        text = "".join(self._partial) + text
        events: list[ServerSentEvent] = []
        start = 0
        for end in _SSE_LINE_END.finditer(text):
            event = self._line(text[start : end.start()])
            if event is not None:
                events.append(event)
            start = end.end()
        self._partial = [text[start:]] if start < len(text) else []
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. vLLM's `: keep-alive`
        if self._json_lines and not self._data and line.startswith("{"):
            return ServerSentEvent(line, id=self._last_id)  # NDJSON served as an event stream
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event_type = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event_type or "message", self._last_id, self._retry)


async def aiter_sse(chunks: AsyncIterable[bytes], json_lines: bool = True) -> AsyncIterator[ServerSentEvent]:
    """The events of a byte stream, yielded as soon as each one is complete."""
    decoder = SSEDecoder(json_lines=json_lines)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event
