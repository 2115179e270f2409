"""The SSE decoder: the spec's examples, the servers' quirks, and chunking invariance."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st

from backend_adapters.sse import ServerSentEvent, SSEDecoder, aiter_sse


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def test_spec_examples_fields_comments_and_multiline_data() -> None:
    stream = (
        b": this is a comment\n\n"
        b"data: first\ndata: second\n\n"
        b"event: add\nid: 7\ndata:no space\n\n"
        b"data\n\n"  # a field with no colon: empty data, still dispatched
        b"retry: 1500\ndata: after retry\n\n"
        b"id: bad\0id\ndata: id unchanged\n\n"
        b"unknown: ignored\n\n"
    )
    assert decode([stream]) == [
        ServerSentEvent("first\nsecond"),
        ServerSentEvent("no space", "add", "7"),
        ServerSentEvent("", id="7"),
        ServerSentEvent("after retry", id="7", retry=1500),
        ServerSentEvent("id unchanged", id="7", retry=1500),
    ]


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert decode([b"data:  two spaces\n\n"]) == [ServerSentEvent(" two spaces")]


def test_line_ends_cr_lf_and_crlf_mixed() -> None:
    assert decode([b"data: a\r\ndata: b\rdata: c\n\r\n\rdata: d\r\r"]) == [
        ServerSentEvent("a\nb\nc"),
        ServerSentEvent("d"),
    ]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    assert decode([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [ServerSentEvent("a\nb")]


def test_utf8_split_across_reads() -> None:
    raw = "data: naïve 思考 🤔\n\n".encode()
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == [ServerSentEvent("naïve 思考 🤔")]


def test_bom_dropped_only_at_start() -> None:
    assert decode([b"\xef\xbb", b"\xbfdata: x\n\n"]) == [ServerSentEvent("x")]


def test_incomplete_event_at_end_is_discarded() -> None:
    assert decode([b"data: whole\n\ndata: cut mid-str"]) == [ServerSentEvent("whole")]


def test_ktransformers_ndjson_under_event_stream() -> None:
    lines = b'{"model":"m","response":"Hi","done":false}\n{"model":"m","response":"","done":true}'
    assert [e.data for e in decode([lines])] == [
        '{"model":"m","response":"Hi","done":false}',
        '{"model":"m","response":"","done":true}',
    ]


def test_json_lines_tolerance_can_be_turned_off() -> None:
    decoder = SSEDecoder(json_lines=False)
    assert decoder.feed(b'{"a":1}\n\ndata: x\n\n') == [ServerSentEvent("x")]


async def test_async_helper_reads_an_async_byte_stream() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b"data: one\n", b"\ndata: t", b"wo\n\ndata: [DONE]\n\n"):
            yield piece

    assert [e.data async for e in aiter_sse(chunks())] == ["one", "two", "[DONE]"]


_line_text = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)
_field_line = st.one_of(
    st.builds(lambda v: f"data: {v}", _line_text),
    st.builds(lambda v: f"data:{v}", _line_text),
    st.builds(lambda v: f"event: {v}", _line_text),
    st.builds(lambda v: f"id: {v}", _line_text),
    st.builds(lambda v: f": {v}", _line_text),
    st.just("retry: 10"),
    st.just(""),
    st.builds(lambda v: '{"response": ' + repr(v.replace('"', '')) + '}', _line_text),
)
_stream = st.tuples(st.lists(_field_line, max_size=25), st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=25, max_size=25))


@given(_stream, st.lists(st.integers(min_value=0, max_value=400), max_size=12))
@settings(max_examples=300, deadline=None)
def test_any_chunking_gives_the_same_events(stream: tuple[list[str], list[str]], cuts: list[int]) -> None:
    lines, ends = stream
    # CR then an empty line's LF would read as one CRLF; the byte stream is the same either way, which is the point.
    raw = "".join(line + end for line, end in zip(lines, ends, strict=False)).encode()
    assert decode(split_at(raw, cuts)) == decode([raw])
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == decode([raw])


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=8))
@settings(max_examples=300, deadline=None)
def test_fuzzed_bytes_never_crash_and_chunking_does_not_matter(raw: bytes, cuts: list[int]) -> None:
    events = decode(split_at(raw, cuts))
    assert events == decode([raw])
    assert all(isinstance(e.data, str) for e in events)
