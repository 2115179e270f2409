"""Fuzzing (hypothesis) of the two parsers every byte from a backend goes through: the think splitter and the SSE decoder.

Beyond the chunking-invariance properties in test_think_splitter.py and test_sse.py:
arbitrary Unicode and bytes never crash them, nothing is lost or invented, the
splitter holds back at most a partial tag, thinking never resumes once the
answer has started, and any SSE encoding of any payloads decodes back to exactly
those payloads, however the bytes are cut.
"""

from __future__ import annotations

import asyncio
import itertools
import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backend_adapters.events import Content, Reasoning
from backend_adapters.sse import SSEDecoder, aiter_sse
from backend_adapters.think_splitter import CLOSE_TAG, OPEN_TAG, ThinkSplitter

FUZZ = settings(max_examples=250, deadline=None)

# Arbitrary text, with tag fragments mixed in often enough to matter.
fragments = st.one_of(
    st.text(max_size=12),
    st.sampled_from([OPEN_TAG, CLOSE_TAG, "<", "</", "<th", "</thi", "think>", "\r\n", "\n\n", " ", "\u200b", "🤔"]),
)
raw_text = st.lists(fragments, max_size=25).map("".join)
cuts = st.lists(st.integers(min_value=0, max_value=500), max_size=15)


def chunked(text: str, at: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in at} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


# ---- think splitter ----


@FUZZ
@given(text=raw_text, at=cuts, thinking=st.booleans())
def test_splitter_never_crashes_loses_or_invents_text(text: str, at: list[int], thinking: bool) -> None:
    splitter = ThinkSplitter(thinking)
    pieces = [p for chunk in chunked(text, at) for p in splitter.pieces(chunk)] + splitter.flush_pieces()
    assert "".join(t for _, t in pieces) == text  # reasoning + answer + dropped tags = the input, in order
    assert all(t for _, t in pieces)
    assert all(t.strip() in (OPEN_TAG, CLOSE_TAG) for kind, t in pieces if kind == "tag")


@FUZZ
@given(text=raw_text, at=cuts, thinking=st.booleans())
def test_splitter_events_are_never_empty_and_thinking_never_resumes(text: str, at: list[int], thinking: bool) -> None:
    splitter = ThinkSplitter(thinking)
    events = [e for chunk in chunked(text, at) for e in splitter.feed(chunk)] + splitter.flush()
    assert all(isinstance(e, Reasoning | Content) and e.text for e in events)
    kinds = [type(e) for e in events]
    if Content in kinds:
        assert Reasoning not in kinds[kinds.index(Content) :], "a second thinking block after the answer began"
    assert all(CLOSE_TAG not in e.text for e in events if isinstance(e, Reasoning))


@FUZZ
@given(text=raw_text, at=cuts, thinking=st.booleans())
def test_splitter_holds_back_at_most_a_partial_tag(text: str, at: list[int], thinking: bool) -> None:
    """Streaming stays live: after any read, all but the last few characters (a possible tag, or whitespace
    before the first word) have gone out."""
    splitter = ThinkSplitter(thinking)
    fed = out = 0
    for chunk in chunked(text, at):
        fed += len(chunk)
        out += sum(len(t) for _, t in splitter.pieces(chunk))
        assert len(text[out:fed].strip()) < len(CLOSE_TAG)


# ---- SSE decoder ----


payload = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=40)
line_end = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[str], bool]:
    """Payloads and one valid encoding of them: multi-line data, comments, optional space, any line ends, a BOM."""
    payloads = draw(st.lists(payload, max_size=12))
    parts = ["\ufeff"] if draw(st.booleans()) else []
    for data in payloads:
        if draw(st.booleans()):
            parts.append(f": keep-alive{draw(line_end)}")
        for line in data.split("\n"):
            # Without the optional space, a line that itself starts with a space would lose it: the spec strips one.
            parts.append(f"data:{'' if draw(st.booleans()) and not line.startswith(' ') else ' '}{line}{draw(line_end)}")
        parts.append(draw(line_end))
    # A CR ending one line, then an LF (or CRLF) ending an empty line, reads as one CRLF: that encoding means
    # something else, so such draws are flagged and skipped.
    ambiguous = any(p.endswith("\r") and q.startswith("\n") for p, q in itertools.pairwise(parts))
    return "".join(parts).encode(), payloads, ambiguous


def decode(chunks: list[bytes]) -> list[str]:
    decoder = SSEDecoder(json_lines=False)
    return [e.data for chunk in chunks for e in decoder.feed(chunk)] + [e.data for e in decoder.close()]


def cut_bytes(raw: bytes, at: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in at} | {0, len(raw)})
    return [raw[a:b] for a, b in itertools.pairwise(points)]


@FUZZ
@given(stream=sse_streams(), at=cuts)
def test_any_encoding_of_payloads_decodes_back_to_them(stream: tuple[bytes, list[str], bool], at: list[int]) -> None:
    raw, payloads, ambiguous = stream
    assume(not ambiguous)
    assert decode(cut_bytes(raw, at)) == payloads
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == payloads


@FUZZ
@given(objects=st.lists(st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=20), st.integers()), max_size=4), max_size=8),
       at=cuts)
def test_vllm_style_json_frames_survive_any_cut(objects: list[dict], at: list[int]) -> None:
    raw = "".join(f"data: {json.dumps(o, ensure_ascii=False)}\n\n" for o in objects).encode() + b"data: [DONE]\n\n"

    async def chunks():
        for chunk in cut_bytes(raw, at):
            yield chunk

    async def collect() -> list[str]:
        return [e.data async for e in aiter_sse(chunks())]

    datas = asyncio.run(collect())
    assert datas[-1] == "[DONE]"
    assert [json.loads(d) for d in datas[:-1]] == objects


@FUZZ
@given(raw=st.binary(max_size=2000), at=cuts, json_lines=st.booleans())
def test_arbitrary_bytes_never_crash_the_decoder(raw: bytes, at: list[int], json_lines: bool) -> None:
    decoder = SSEDecoder(json_lines=json_lines)
    events = [e for chunk in cut_bytes(raw, at) for e in decoder.feed(chunk)] + decoder.close()
    for event in events:
        assert isinstance(event.data, str) and isinstance(event.event, str)
        assert "\r" not in event.data  # line ends never leak into data
        assert event.event  # "message" when the stream named none
