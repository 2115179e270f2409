"""The stream shapes hand-written prompt servers use, told apart and read as one sequence of text pieces.

Tutorials stream in three shapes: Server-Sent Events (well-formed, or tokens written raw),
plain text chunks (`Response(gen(), mimetype="text/plain")`) and NDJSON lines (`{"token": …}`,
or Ollama-like `{"response": …, "done": false}`). The content type says which, when the
server sets it honestly; Flask's default is text/html and FastAPI's StreamingResponse sends
none, so the first bytes decide when it does not: an SSE field name, a JSON object line, or
else plain text. Whatever the shape, the pieces concatenate to the model's text, so thinking
and answer come out the same.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Literal

from backend_adapters.raw_sse import SSE_FIELDS, SSEStyle, aiter_sse_pieces, is_field_line

StreamShape = Literal["sse", "ndjson", "text"]

# Keys a JSON piece may carry its text under; the RESPONSE_FIELD valve's name is tried first.
PIECE_KEYS = ("token", "response", "text", "content", "delta", "generated_text")
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/stream+json",
        "application/json",
    }
)
SNIFF_BYTES = 4096  # the first line decides; a first line longer than this is plain text
_MAX_JSON_BUFFER = 1 << 20  # a pretty-printed object spread over lines, held until it parses


@dataclass(frozen=True, slots=True)
class StreamPiece:
    """One step of a stream: text to append, the server's end marker, or an error it reported."""

    text: str = ""
    done: bool = False
    error: str | None = None
    finish: str | None = None


def json_piece(obj: object, response_field: str = "response") -> StreamPiece:
    """The text (or error, or end) a server put in one JSON object."""
    if not isinstance(obj, dict):
        return StreamPiece()
    if obj.get("error"):
        error = obj["error"]
        message = error.get("message") if isinstance(error, dict) else error
        return StreamPiece(error=str(message or "no details"))
    text = ""
    for key in (response_field, *PIECE_KEYS):
        value = obj.get(key)
        if isinstance(value, dict):  # TGI: {"token": {"text": …}}
            value = value.get("text")
        if isinstance(value, str):
            text = value
            break
    else:
        message, choices = obj.get("message"), obj.get("choices")
        if isinstance(message, dict) and isinstance(message.get("content"), str):  # Ollama /api/chat
            text = message["content"]
        elif isinstance(choices, list) and choices and isinstance(choices[0], dict):  # OpenAI-ish chunk
            delta = choices[0].get("delta") or {}
            text = str((delta.get("content") if isinstance(delta, dict) else None) or choices[0].get("text") or "")
    done = obj.get("done") is True
    finish = obj.get("done_reason") or obj.get("finish_reason")
    return StreamPiece(text, done, None, finish if isinstance(finish, str) else None)


def shape_of(content_type: str, head: bytes) -> StreamShape:
    """Which shape a stream has, from its media type and its first bytes."""
    first = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    first_line = first.split("\n", 1)[0].strip()
    if content_type == "text/event-stream":
        return "ndjson" if first.startswith("{") else "sse"
    if content_type in NDJSON_TYPES:
        return "ndjson"
    if first_line and is_field_line(first_line):
        return "sse"
    if first_line.startswith("{"):
        try:
            if isinstance(json.loads(first_line), dict):
                return "ndjson"
        except ValueError:
            pass
    return "text"


def _enough_to_tell(head: bytes) -> bool:
    """Whether the first bytes decide the shape, so plain text is never held waiting for a line end."""
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not first:
        return False
    if b"\n" in first or len(head) >= SNIFF_BYTES:
        return True
    if first.startswith(b"{"):
        return False  # a JSON line is judged whole
    could_be_field = any(f"{name}:".encode().startswith(first) or first.startswith(f"{name}:".encode()) for name in SSE_FIELDS)
    return not (could_be_field or first.startswith(b":"))


async def _sniffed(chunks: AsyncIterable[bytes], content_type: str) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first bytes (enough to tell the shape) and an iterator over the whole stream."""
    source = aiter(chunks)
    head = b""
    while content_type not in NDJSON_TYPES and not _enough_to_tell(head):
        try:
            head += await anext(source)
        except StopAsyncIteration:
            break

    async def whole() -> AsyncIterator[bytes]:
        if head:
            yield head
        async for chunk in source:
            yield chunk

    return head, whole()


async def _text_pieces(chunks: AsyncIterable[bytes]) -> AsyncIterator[StreamPiece]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield StreamPiece(text)
    rest = decoder.decode(b"", final=True)
    if rest:
        yield StreamPiece(rest)


async def _ndjson_pieces(chunks: AsyncIterable[bytes], response_field: str) -> AsyncIterator[StreamPiece]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    partial, pending = "", ""  # text after the last newline; lines of an object not yet complete
    final = False
    source = aiter(chunks)
    while not final:
        try:
            text = decoder.decode(await anext(source))
        except StopAsyncIteration:
            text, final = decoder.decode(b"", final=True) + "\n", True
        *lines, partial = (partial + text).split("\n")
        for line in lines:
            if not line.strip() and not pending:
                continue
            if not pending and not line.lstrip().startswith("{"):
                yield StreamPiece(error="a line of its stream is not JSON")
                return
            pending += line + "\n"
            try:
                obj = json.loads(pending)
            except ValueError:
                if len(pending) > _MAX_JSON_BUFFER:
                    yield StreamPiece(error="a line of its stream is not JSON")
                    return
                continue
            pending = ""
            piece = json_piece(obj, response_field)
            yield piece
            if piece.done or piece.error:
                return
    if pending.strip():
        yield StreamPiece(error="its stream ended inside a JSON object")


async def _sse_pieces(chunks: AsyncIterable[bytes], style: SSEStyle, response_field: str) -> AsyncIterator[StreamPiece]:
    async for sse in aiter_sse_pieces(chunks, style):
        if sse.event == "error":
            yield StreamPiece(error=sse.data or "no details")
            return
        if sse.data == "[DONE]":
            yield StreamPiece(done=True)
            return
        if sse.data.startswith("{"):
            try:
                obj = json.loads(sse.data)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                piece = json_piece(obj, response_field)
                yield piece
                if piece.done or piece.error:
                    return
                continue
        yield StreamPiece(sse.data)


async def stream_pieces(
    chunks: AsyncIterable[bytes], content_type: str, sse_style: SSEStyle = "auto", response_field: str = "response"
) -> AsyncIterator[StreamPiece]:
    """The pieces of a streamed answer, whatever its shape."""
    head, whole = await _sniffed(chunks, content_type)
    shape = shape_of(content_type, head)
    if shape == "sse":
        pieces = _sse_pieces(whole, sse_style, response_field)
    elif shape == "ndjson":
        pieces = _ndjson_pieces(whole, response_field)
    else:
        pieces = _text_pieces(whole)
    async for piece in pieces:
        yield piece
