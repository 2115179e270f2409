"""Raw-token SSE, plain-text and NDJSON streams, and prompt echoes: the decoders alone, fuzzed.

The decoders are the inlined copies inside the built Flask pipe, loaded as Open WebUI loads it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.support.built import load_function

SSE_FIELD_NAMES = ("data", "event", "id", "retry")


@pytest.fixture(scope="module")
def built(built_dir: Path):
    return load_function(built_dir / "r1relay_flask.py")


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(raw)) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def raw_decode(module, chunks: list[bytes], style: str = "auto") -> str:
    decoder = module.RawTokenSSEDecoder(style)
    events = [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.close()
    return "".join(e.data for e in events)


def looks_like_a_field(line: str) -> bool:
    return line.startswith(":") or line.partition(":")[0] in SSE_FIELD_NAMES


# Tokens as TextIteratorStreamer makes them: words, spaces, punctuation, non-ASCII, and newlines anywhere.
_token = st.lists(st.sampled_from([*"ab Z.:,{}[]-é🤔<>/", "\n", "\n", "data", "id", "think"]), max_size=8).map("".join)


def fieldless(token: str) -> bool:
    """Inside a token, a line after a newline that reads as an SSE field cannot be told from framing."""
    return not any(looks_like_a_field(line) for line in token.split("\n")[1:])


@given(st.lists(_token, max_size=30), st.lists(st.integers(min_value=0, max_value=600), max_size=10))
@settings(max_examples=400, deadline=None)
def test_raw_tokens_come_back_exactly(built, tokens: list[str], cuts: list[int]) -> None:
    """`yield f"data: {token}\\n\\n"` for any tokens, any newlines, any network split: nothing lost or invented."""
    assume(all(fieldless(t) for t in tokens))
    raw = "".join(f"data: {t}\n\n" for t in tokens).encode()
    # `auto` reads a stream whose first event is a JSON object as a well-formed JSON server (raw_sse.py), so a
    # first token such as "{}\n" loses its newline there by design; `raw-tokens` is for such servers.
    json_first = bool(tokens) and built._is_json_object(tokens[0].rstrip("\n"))
    for style in ("raw-tokens",) if json_first else ("auto", "raw-tokens"):
        assert raw_decode(built, split_at(raw, cuts), style) == "".join(tokens)
        assert raw_decode(built, [raw[i : i + 1] for i in range(len(raw))], style) == "".join(tokens)


@given(st.lists(_token, max_size=20), st.lists(st.integers(min_value=0, max_value=400), max_size=6))
@settings(max_examples=300, deadline=None)
def test_well_formed_multiline_data_decodes_as_the_spec_says(built, pieces: list[str], cuts: list[int]) -> None:
    """One `data:` line per line of a piece (examples/flask_r1_server.py): auto, raw and strict agree with the spec."""
    raw = "".join("".join(f"data: {line}\n" for line in piece.split("\n")) + "\n" for piece in pieces).encode()
    spec = built.SSEDecoder(json_lines=False)
    expected = [e.data for e in spec.feed(raw) + spec.close()]
    assert expected == pieces
    for style in ("auto", "raw-tokens", "strict"):
        assert raw_decode(built, split_at(raw, cuts), style) == "".join(pieces)


def test_strict_loses_what_raw_tokens_keeps(built) -> None:
    """The issue's examples: paragraph breaks and the text after an inner newline."""
    raw = b"data: \xe2\x9c\x85.\n\n\n\ndata: Second paragraph\n\ndata: foo.\nBar \n\ndata: baz\n\n"
    assert raw_decode(built, [raw], "strict") == "✅.Second paragraphfoo.baz"
    assert raw_decode(built, [raw], "auto") == "✅.\n\nSecond paragraphfoo.\nBar baz"


def test_auto_reads_json_events_by_the_spec(built) -> None:
    """JSON escapes newlines: extra blank lines between JSON events are padding, not text."""
    raw = b'data: {"token": "a\\n"}\n\n\n\ndata: {"token": "b"}\n\n'
    assert raw_decode(built, [raw], "auto") == '{"token": "a\\n"}{"token": "b"}'
    assert raw_decode(built, [raw], "raw-tokens") == '{"token": "a\\n"}\n\n{"token": "b"}'


async def _pieces(module, body: bytes, content_type: str, cuts: list[int]) -> list:
    async def chunks():
        for chunk in split_at(body, cuts):
            yield chunk

    return [p async for p in module.stream_pieces(chunks(), content_type)]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", "The user\nwants.\n</think>\n\nHi {there}."),
        ("", "The user\nwants.\n</think>\n\nHi {there}."),
        ("application/x-ndjson", None),
        ("", None),
        ("text/event-stream", "raw-sse"),
        ("text/html", "raw-sse"),
    ],
    ids=["plain", "plain-no-type", "ndjson", "ndjson-no-type", "sse", "sse-as-html"],
)
@pytest.mark.parametrize("cuts", [[], [1, 2, 3, 5, 8, 13, 21, 34]], ids=["whole", "split"])
def test_stream_shapes_give_the_same_text(built, content_type: str, body: str | None, cuts: list[int]) -> None:
    tokens = ["The ", "user\n", "wants.\n", "</think>\n", "\n", "Hi {there}", "."]
    if body is None:
        raw = "".join(json.dumps({"token": t}) + "\n" for t in tokens).encode()
    elif body == "raw-sse":
        raw = "".join(f"data: {t}\n\n" for t in tokens).encode()
    else:
        raw = body.encode()
    pieces = asyncio.run(_pieces(built, raw, content_type, cuts))
    assert not any(p.error for p in pieces)
    assert "".join(p.text for p in pieces) == "".join(tokens)


def test_ollama_like_ndjson_ends_at_done(built) -> None:
    lines = [{"response": "Hi", "done": False}, {"response": " there", "done": False}, {"response": "", "done": True, "done_reason": "length"}]
    raw = "".join(json.dumps(x) + "\n" for x in lines).encode() + b'{"response": "after done"}\n'
    pieces = asyncio.run(_pieces(built, raw, "application/x-ndjson", []))
    assert "".join(p.text for p in pieces) == "Hi there"
    assert pieces[-1].done and pieces[-1].finish == "length"


def test_ndjson_error_line_and_garbage_are_reported(built) -> None:
    pieces = asyncio.run(_pieces(built, b'{"token": "a"}\n{"error": "CUDA out of memory"}\n', "application/x-ndjson", []))
    assert pieces[-1].error == "CUDA out of memory"
    pieces = asyncio.run(_pieces(built, b'{"token": "a"}\nnot json\n', "application/x-ndjson", []))
    assert pieces[-1].error and "not JSON" in pieces[-1].error


R1_PROMPT = "<｜begin▁of▁sentence｜>You are kind.<｜User｜>Hello there<｜Assistant｜>\n\nHi!<｜end▁of▁sentence｜><｜User｜>Again<｜Assistant｜><think>\n"
COMPLETION = "The user wants an answer.\n</think>\n\nHello from tiny R1."


def strip_echo(module, prompt: str, reply: str, mode: str = "auto", step: int = 0, specials: tuple = ()) -> str:
    echo = module.EchoStripper(prompt, specials, mode)
    step = step or len(reply) or 1
    return "".join(echo.feed(reply[i : i + step]) for i in range(0, len(reply), step)) + echo.flush()


@pytest.mark.parametrize("step", [0, 1, 7])
@pytest.mark.parametrize(
    "echoed",
    [
        "You are kind.Hello there\n\nHi!Again<think>\n",  # skip_special_tokens=True
        R1_PROMPT,  # skip_special_tokens=False
        "<｜begin▁of▁sentence｜>" + R1_PROMPT,  # the tokenizer added a second BOS
        "You are kind. Hello there \n\n Hi! Again <think>\n",  # decoding moved spaces
    ],
    ids=["without-specials", "with-specials", "double-bos", "spaces"],
)
def test_echoed_prompt_is_stripped(built, echoed: str, step: int) -> None:
    assert strip_echo(built, R1_PROMPT, echoed + COMPLETION, step=step) == COMPLETION


@pytest.mark.parametrize("step", [0, 1])
def test_echo_cut_by_max_length(built, step: int) -> None:
    echoed = "You are kind.Hello there\n\nHi!Again<think>\n"
    assert strip_echo(built, R1_PROMPT, echoed + COMPLETION[:9], step=step) == COMPLETION[:9]
    assert strip_echo(built, R1_PROMPT, echoed, step=step) == ""  # max_length no longer than the prompt
    # generate never cuts its input, so only `strip` trusts a reply that ends inside the prompt
    assert strip_echo(built, R1_PROMPT, echoed[:-12], "strip", step=step) == ""
    assert strip_echo(built, R1_PROMPT, echoed[:-12], step=step) == echoed[:-12]


def test_echo_modes(built) -> None:
    echoed = "You are kind.Hello there\n\nHi!Again<think>\n"
    assert strip_echo(built, R1_PROMPT, COMPLETION) == COMPLETION  # auto: no echo, nothing touched
    assert strip_echo(built, R1_PROMPT, "You are kind." + COMPLETION) == "You are kind." + COMPLETION
    assert strip_echo(built, R1_PROMPT, echoed + COMPLETION, "keep") == echoed + COMPLETION
    changed = "You are kind.Hello, there\n\nHi!Again<think>\n"  # an echo that differs: auto keeps, strip cuts after <think>
    assert strip_echo(built, R1_PROMPT, changed + COMPLETION) == changed + COMPLETION
    assert strip_echo(built, R1_PROMPT, changed + COMPLETION, "strip") == COMPLETION
    assert strip_echo(built, R1_PROMPT, "You are kind.Hel", "strip") == ""


def test_echo_special_tokens_from_the_model(built) -> None:
    """Special tokens the generic patterns do not know come from the model's tokenizer_config.json."""
    prompt = "<s>[INST] Hi [/INST]"
    assert strip_echo(built, prompt, "Hi Hello", specials=("<s>", "[INST]", "[/INST]")) == " Hello"
    assert strip_echo(built, prompt, "<s>[INST] Hi [/INST] Hello", specials=("<s>", "[INST]", "[/INST]")) == " Hello"


@given(st.text(max_size=80), st.integers(min_value=1, max_value=9))
@settings(max_examples=200, deadline=None)
def test_echo_stripping_is_chunking_invariant_and_never_invents(built, answer: str, step: int) -> None:
    whole = strip_echo(built, R1_PROMPT, answer)
    assert strip_echo(built, R1_PROMPT, answer, step=step) == whole
    assert answer.endswith(whole)


@pytest.mark.parametrize("first", [b"The user ", b"identity ", b"{not json}\n"], ids=["text", "field-like-word", "brace-line"])
def test_plain_text_is_not_held_for_a_line_end(built, first: bytes) -> None:
    """The first piece of a plain-text stream is passed on before the server sends its next one
    (a line starting with `{` may be NDJSON, so that one is judged at its line end)."""

    async def scenario() -> str:
        passed_on = asyncio.Event()

        async def chunks():
            yield first
            await asyncio.wait_for(passed_on.wait(), timeout=10)  # bounded: a held piece fails here, not hangs
            yield b"more\n"

        out = ""
        async for piece in built.stream_pieces(chunks(), "text/plain"):
            out += piece.text
            passed_on.set()
        return out

    assert asyncio.run(scenario()) == first.decode() + "more\n"
