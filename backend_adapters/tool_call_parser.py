"""Streams tool calls out of a model's raw answer text, for backends that do not parse them.

Prompt servers and KTransformers hand back the model's text as is, so a call
the model makes arrives as markup in the answer; Open WebUI only runs tools
that come as OpenAI's `delta.tool_calls`. This parser takes the answer text
(after the think splitter) and turns the markup into `ToolCall` events; text
around it stays `Content`. Two families' markup, as their servers parse it:

- `deepseek` (DeepSeek-R1-0528, V3): `<｜tool▁calls▁begin｜>` then per call
  `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\nARGS\\n```<｜tool▁call▁end｜>`,
  then `<｜tool▁calls▁end｜>` (vLLM vllm/tool_parsers/deepseekv3_tool_parser.py,
  `tool_call_regex`; the same shape R1's chat template renders for past calls).
- `hermes` (Qwen3, QwQ, Qwen2.5): `<tool_call>{"name": …, "arguments": {…}}</tool_call>`
  per call (vLLM vllm/tool_parsers/hermes_tool_parser.py; Qwen's templates).

Like the think splitter it is chunking-invariant: any split of the same text
gives the same answer text and the same calls, because it only holds back a
possible partial opening tag, a call until its closing tag, and whitespace
that may turn out to sit between a sentence and a call (dropped there, so
calls do not leave blank lines in the answer). Text that merely looks like
the start of a tag is released as soon as it stops matching. A call whose
body cannot be read (bad JSON, no name) is released as the text it was, and
so is a call left open when the stream ends (cut by max_tokens): the user
sees what the model said rather than nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from backend_adapters.events import Content, ToolCall

ToolFormat = Literal["deepseek", "hermes"]
TOOL_FORMATS: tuple[str, ...] = ("deepseek", "hermes")

R1_CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
R1_CALLS_END = "<｜tool▁calls▁end｜>"
R1_CALL_BEGIN = "<｜tool▁call▁begin｜>"
R1_CALL_END = "<｜tool▁call▁end｜>"
R1_TOOL_SEP = "<｜tool▁sep｜>"
HERMES_CALL_BEGIN = "<tool_call>"
HERMES_CALL_END = "</tool_call>"

# vLLM's deepseek_v3 regex, made to span lines inside the arguments and to tolerate a missing fence.
_R1_CALL_BODY = re.compile(r"(?P<type>[^\n]*)" + R1_TOOL_SEP + r"(?P<name>[^\n]*)\n(?:```json\n)?(?P<args>.*?)(?:\n```)?\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class _Markup:
    """The tags of one family: an optional block around the calls, and each call's own tags."""

    block_open: str | None
    block_close: str | None
    call_open: str
    call_close: str


_MARKUP: dict[str, _Markup] = {
    "deepseek": _Markup(R1_CALLS_BEGIN, R1_CALLS_END, R1_CALL_BEGIN, R1_CALL_END),
    "hermes": _Markup(None, None, HERMES_CALL_BEGIN, HERMES_CALL_END),
}


def tool_format_for_model(model_id: str) -> ToolFormat:
    """Qwen-family models (QwQ, Qwen3) speak hermes; DeepSeek and anything else gets R1's markup."""
    return "hermes" if re.search(r"qwen|qwq", model_id, re.IGNORECASE) else "deepseek"


def new_tool_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _partial_suffix(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that could be the start of one of `tags`."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(text)), longest, -1):
            if tag.startswith(text[len(text) - size :]):
                longest = size
                break
    return longest


def _r1_call(body: str) -> tuple[str, str] | None:
    match = _R1_CALL_BODY.match(body)
    if not match or not match.group("name").strip():
        return None
    return match.group("name").strip(), match.group("args").strip()


def _hermes_call(body: str) -> tuple[str, str] | None:
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"].strip():
        return None
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return obj["name"].strip(), arguments


_TEXT, _BLOCK, _CALL = "text", "block", "call"


class ToolCallParser:
    """Splits one answer's text into `Content` and `ToolCall` events as it streams."""

    def __init__(self, tool_format: ToolFormat, new_id: Callable[[], str] = new_tool_call_id) -> None:
        self._markup = _MARKUP[tool_format]
        self._read_call = _r1_call if tool_format == "deepseek" else _hermes_call
        self._new_id = new_id
        self._state = _TEXT
        self._held = ""  # text state: trailing whitespace and a possible partial opening tag
        self._body = ""  # block state: a possible partial tag between calls
        self._call_parts: list[str] = []  # call state: the call's text so far, joined once when it closes
        self._call_tail = ""  # its last characters, where a closing tag may have begun
        self._calls = 0

    @property
    def calls(self) -> int:
        """How many calls were emitted so far."""
        return self._calls

    def _opener(self) -> str:
        return self._markup.block_open or self._markup.call_open

    def feed(self, text: str) -> list[Content | ToolCall]:
        """The events this piece of answer text completes."""
        if self._state == _TEXT and not self._held and text and "<" not in text and not text[-1].isspace():
            return [Content(text)]  # the common token: nothing to hold back
        out: list[Content | ToolCall] = []
        buf = text
        while buf:
            if self._state == _TEXT:
                buf = self._text(buf, out)
            elif self._state == _BLOCK:
                buf = self._block(buf)
            else:
                buf = self._call(buf, out)
        return out

    def flush(self) -> list[Content | ToolCall]:
        """The end of the answer: an open call is read if it can be, else released as text."""
        out: list[Content | ToolCall] = []
        if self._state == _CALL:
            self._finish_call("".join(self._call_parts), out, closed=False)
        elif self._state == _TEXT and self._held.strip():
            out.append(Content(self._held.rstrip()))
        self._state, self._held, self._body, self._call_parts, self._call_tail = _TEXT, "", "", [], ""
        return out

    def _text(self, buf: str, out: list[Content | ToolCall]) -> str:
        buf, self._held = self._held + buf, ""
        opener = self._opener()
        at = buf.find(opener)
        if at >= 0:
            before = buf[:at].rstrip()
            if before:
                out.append(Content(before))
            self._state = _BLOCK if self._markup.block_open else _CALL
            self._body, self._call_parts, self._call_tail = "", [], ""
            return buf[at + len(opener) :]
        keep = _partial_suffix(buf, (opener,))
        ready = buf[: len(buf) - keep]
        shown = ready.rstrip()
        if shown:
            out.append(Content(shown))
        self._held = ready[len(shown) :] + buf[len(buf) - keep :]
        return ""

    def _block(self, buf: str) -> str:
        """Between R1's calls: only a call's start or the block's end matter."""
        buf, self._body = self._body + buf, ""
        m = self._markup
        assert m.block_close is not None
        starts = [(at, tag) for tag in (m.call_open, m.block_close) if (at := buf.find(tag)) >= 0]
        if starts:
            at, tag = min(starts)
            self._state = _CALL if tag == m.call_open else _TEXT
            self._call_parts, self._call_tail = [], ""
            return buf[at + len(tag) :]
        keep = _partial_suffix(buf, (m.call_open, m.block_close))
        self._body = buf[len(buf) - keep :]
        return ""

    def _call(self, buf: str, out: list[Content | ToolCall]) -> str:
        """Inside a call: only its closing tag matters; work per chunk is proportional to the chunk."""
        close = self._markup.call_close
        window = self._call_tail + buf
        at = window.find(close)
        if at < 0:
            self._call_parts.append(buf)
            self._call_tail = window[-(len(close) - 1) :]
            return ""
        before = "".join(self._call_parts)
        body = before[: len(before) - len(self._call_tail)] + window[:at]
        self._call_parts, self._call_tail = [], ""
        self._finish_call(body, out, closed=True)
        self._state = _BLOCK if self._markup.block_open else _TEXT
        return window[at + len(close) :]

    def _finish_call(self, body: str, out: list[Content | ToolCall], *, closed: bool) -> None:
        parsed = self._read_call(body.strip())
        if parsed is None:
            m = self._markup
            out.append(Content(m.call_open + body + (m.call_close if closed else "")))
            return
        name, arguments = parsed
        out.append(ToolCall(self._calls, arguments, self._new_id(), name))
        self._calls += 1
