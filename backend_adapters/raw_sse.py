"""Server-Sent Events from servers that write model tokens raw: `yield f"data: {token}\\n\\n"`.

Tutorial servers stream `TextIteratorStreamer` pieces this way, and those pieces end in or
contain newlines. A spec decoder then loses text: the newline that ends a token becomes an
extra blank line (ignored), and the text after a newline inside a token becomes a line with
no field name (discarded). This decoder rebuilds what the server meant:

- each extra blank line after an event is a newline that belonged to the token;
- a line that is not a known field (`data`, `event`, `id`, `retry`, or a `:` comment) is text
  that came after a newline;
- consecutive `data:` lines still join with `\\n`, as the spec says, so well-formed streams
  (one `data:` line per line of a piece, like examples/flask_r1_server.py) decode the same.

What stays ambiguous is only a line inside a token that itself looks like a field
(`id: 3`, `data`, `: note`): no decoder can tell it from framing. A carriage return is a
line end in SSE, so it comes back as `\\n`.

Styles: `strict` is the spec (sse.SSEDecoder); `raw-tokens` always rebuilds; `auto` rebuilds
unless the first event's data is a JSON object (JSON escapes newlines, so such a server is
well-formed and its extra blank lines mean nothing). Until a stream shows a raw habit, both
readings give the same text, which is what makes deciding on the fly safe.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Literal

from backend_adapters.sse import ServerSentEvent, SSEDecoder

SSEStyle = Literal["auto", "strict", "raw-tokens"]
SSE_STYLES: tuple[str, ...] = ("auto", "strict", "raw-tokens")
SSE_FIELDS = frozenset({"data", "event", "id", "retry"})

# Where the decoder is within the stream: before any data, inside an event's data lines,
# after an event's blank line (one newline held: framing, unless more text follows), or
# after field lines that have no data yet.
_START, _DATA, _HELD, _HEADER = "start", "data", "held", "header"


def is_field_line(line: str) -> bool:
    """Whether an SSE decoder reads `line` as a field or a comment (never as text)."""
    return line.startswith(":") or line.partition(":")[0] in SSE_FIELDS


def _is_json_object(data: str) -> bool:
    text = data.strip()
    if not text.startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class RawTokenSSEDecoder(SSEDecoder):
    """Bytes in, events out, with raw-token framing understood; the events' data concatenate to the text.

    Pieces after an event (held newlines, text lines) come out as events of their own with
    the event type of the event they continue.
    """

    def __init__(self, style: SSEStyle = "auto") -> None:
        super().__init__(json_lines=False)
        self._raw = style != "strict"
        self._deciding = style == "auto"
        self._state = _START
        self._last_type = "message"

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._blank()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if name not in SSE_FIELDS:
            return self._text_line(line)
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            if self._state != _DATA:
                self._state = _DATA  # a held newline was the previous event's framing
            self._data.append(value)
            return None
        if self._state in (_START, _HELD):
            self._state = _HEADER
        return super()._line(line)

    def _blank(self) -> ServerSentEvent | None:
        if self._state == _DATA:
            self._state = _HELD
            event = self._dispatch()
            if event is not None:
                self._last_type = event.event
                if self._deciding:
                    self._deciding = False
                    self._raw = not _is_json_object(event.data)
            return event
        if self._state == _HELD:
            return self._piece("\n") if self._raw else None
        if self._state == _HEADER:
            self._state = _START
            self._data, self._event = [], ""
        return None

    def _text_line(self, line: str) -> ServerSentEvent | None:
        if not self._raw:
            return None  # the spec ignores unknown fields
        if self._state == _DATA:
            self._data.append(line)
        elif self._state == _HELD:
            self._state = _DATA
            self._event = self._last_type if self._last_type != "message" else ""
            # Text after the blank line: the event's two line ends were the token's, not framing.
            self._data.append("\n\n" + line)
        return None

    def _piece(self, text: str) -> ServerSentEvent:
        return ServerSentEvent(text, self._last_type, self._last_id, self._retry)

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a raw server's last piece may lack its blank line; it is text all the same."""
        events = self._feed_text(self._text.decode(b"", final=True))
        rest = "".join(self._partial)
        self._partial = []
        if rest:
            event = self._line(rest)
            if event is not None:
                events.append(event)
        if self._raw and self._state == _DATA:
            event = self._dispatch()
            if event is not None:
                events.append(event)
        self._data, self._event = [], ""
        return events


async def aiter_sse_pieces(chunks: AsyncIterable[bytes], style: SSEStyle = "auto") -> AsyncIterator[ServerSentEvent]:
    """The events of a byte stream, read in the given SSE style."""
    decoder: SSEDecoder = SSEDecoder(json_lines=False) if style == "strict" else RawTokenSSEDecoder(style)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event
