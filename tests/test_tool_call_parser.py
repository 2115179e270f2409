"""The tool-call parser: chunking-invariant, never shows markup, right on R1's and hermes' real shapes."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_adapters.events import Content, ToolCall
from backend_adapters.tool_call_parser import (
    HERMES_CALL_BEGIN,
    HERMES_CALL_END,
    R1_CALL_BEGIN,
    R1_CALL_END,
    R1_CALLS_BEGIN,
    R1_CALLS_END,
    R1_TOOL_SEP,
    ToolCallParser,
    tool_format_for_model,
)

OPENERS = {"deepseek": R1_CALLS_BEGIN, "hermes": HERMES_CALL_BEGIN}


def parse(chunks: list[str], tool_format: str) -> tuple[str, list[tuple[int, str, str]]]:
    """(answer text, [(index, name, arguments)]) of a stream; ids are checked separately."""
    parser = ToolCallParser(tool_format)  # type: ignore[arg-type]
    events = [e for chunk in chunks for e in parser.feed(chunk)] + parser.flush()
    assert all(not isinstance(e, Content) or e.text for e in events), "no empty content"
    content = "".join(e.text for e in events if isinstance(e, Content))
    calls = [(e.index, e.name or "", e.arguments) for e in events if isinstance(e, ToolCall)]
    return content, calls


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def r1_block(calls: list[tuple[str, str]]) -> str:
    """R1-0528's markup for calls, as its template renders them and vLLM's deepseek_v3 parser reads them."""
    body = "\n".join(f"{R1_CALL_BEGIN}function{R1_TOOL_SEP}{name}\n```json\n{args}\n```{R1_CALL_END}" for name, args in calls)
    return f"{R1_CALLS_BEGIN}{body}{R1_CALLS_END}"


def hermes_block(calls: list[tuple[str, str]]) -> str:
    """Qwen's markup: one `<tool_call>` element per call, newline-separated."""
    return "\n".join(
        f'{HERMES_CALL_BEGIN}\n{{"name": "{name}", "arguments": {args}}}\n{HERMES_CALL_END}' for name, args in calls
    )


RENDER = {"deepseek": r1_block, "hermes": hermes_block}

# Text made of the characters that make tags hard: pieces of both families' tags, whitespace, JSON.
soup = st.lists(
    st.sampled_from(
        ["<", "<tool", "_call", ">", "</tool_call>", "<tool_call", "<｜", "<｜tool▁calls", "▁begin", "｜>", R1_CALL_END,
         R1_CALLS_END, "\n", " ", "\n\n", "a", "é", "答", "{", "}", '"', "```json", "```"]
    ),
    max_size=25,
).map("".join)
names = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
arguments = st.dictionaries(
    st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8).filter(lambda s: "</tool_call>" not in s)), max_size=3
).map(lambda d: json.dumps(d, ensure_ascii=False))
cuts = st.lists(st.integers(min_value=0, max_value=600), max_size=14)


@st.composite
def answers(draw: st.DrawFn, tool_format: str) -> tuple[str, list[str], list[tuple[str, str]]]:
    """(raw text, its text segments, its calls): text, then call groups alternating with text."""
    opener = OPENERS[tool_format]
    text = soup.filter(lambda s: opener not in s)
    segments = [draw(text)]
    calls: list[tuple[str, str]] = []
    raw = segments[0]
    for _ in range(draw(st.integers(0, 3))):
        group = draw(st.lists(st.tuples(names, arguments), min_size=1, max_size=3))
        segments.append(draw(text))
        # Text right after a block must not extend into an opener with it (`<tool_call>` + `>`... is fine).
        raw += RENDER[tool_format](group) + segments[-1]
        calls += group
    return raw, segments, calls


@pytest.mark.parametrize("tool_format", ["deepseek", "hermes"])
@settings(max_examples=300, deadline=None)
@given(data=st.data(), cut_points=cuts)
def test_any_chunking_gives_the_answer_and_every_call(tool_format: str, data: st.DataObject, cut_points: list[int]) -> None:
    raw, segments, calls = data.draw(answers(tool_format))
    content, got = parse(chunked(raw, cut_points), tool_format)
    assert got == [(i, name, args) for i, (name, args) in enumerate(calls)]
    # The answer is the text around the calls; whitespace left before a call or at the end is dropped.
    assert content == "".join(s.rstrip() for s in segments)


@pytest.mark.parametrize("tool_format", ["deepseek", "hermes"])
@settings(max_examples=400, deadline=None)
@given(text=soup, cut_points=cuts)
def test_any_text_splits_the_same_way_whatever_its_chunking(tool_format: str, text: str, cut_points: list[int]) -> None:
    """Also for malformed and unfinished markup: the result depends on the text alone."""
    assert parse(chunked(text, cut_points), tool_format) == parse([text], tool_format)


@settings(max_examples=200, deadline=None)
@given(text=soup.filter(lambda s: HERMES_CALL_BEGIN not in s), cut_points=cuts)
def test_it_holds_back_only_a_possible_partial_tag_and_trailing_whitespace(text: str, cut_points: list[int]) -> None:
    parser = ToolCallParser("hermes")
    fed = shown = ""
    for chunk in chunked(text, cut_points):
        fed += chunk
        shown += "".join(e.text for e in parser.feed(chunk) if isinstance(e, Content))
        assert fed.startswith(shown), "released text is the input's own beginning"
        held = fed[len(shown) :].lstrip()
        assert held == "" or (len(held) < len(HERMES_CALL_BEGIN) and HERMES_CALL_BEGIN.startswith(held))


def test_text_that_only_looks_like_a_tag_is_released() -> None:
    parser = ToolCallParser("hermes")
    assert parser.feed("It is <tool") == [Content("It is")]
    assert parser.feed("s, not a call.") == [Content(" <tools, not a call.")]
    r1 = ToolCallParser("deepseek")
    assert r1.feed("a <｜tool▁") == [Content("a")]
    assert r1.feed("x") == [Content(" <｜tool▁x")]


def test_real_r1_0528_output_after_thinking() -> None:
    """The answer text R1-0528 streams on vLLM's template once `</think>` has passed."""
    text = (
        "\n\nI'll look up the time.\n\n"
        f"{R1_CALLS_BEGIN}{R1_CALL_BEGIN}function{R1_TOOL_SEP}get_current_timestamp\n```json\n{{}}\n```{R1_CALL_END}\n"
        f'{R1_CALL_BEGIN}function{R1_TOOL_SEP}get_weather\n```json\n{{"city": "Oslo"}}\n```{R1_CALL_END}{R1_CALLS_END}'
    )
    content, calls = parse(list(text), "deepseek")
    assert content == "\n\nI'll look up the time."
    assert calls == [(0, "get_current_timestamp", "{}"), (1, "get_weather", '{"city": "Oslo"}')]


def test_real_hermes_output() -> None:
    text = '<tool_call>\n{"name": "get_current_timestamp", "arguments": {}}\n</tool_call>\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": "二"}}\n</tool_call>'
    assert parse([text], "hermes") == ("", [(0, "get_current_timestamp", "{}"), (1, "add", '{"a": 1, "b": "二"}')])


def test_each_call_gets_its_own_id_and_name_with_full_arguments() -> None:
    ids = iter(["call_a", "call_b"])
    parser = ToolCallParser("hermes", new_id=lambda: next(ids))
    events = parser.feed(hermes_block([("f", "{}"), ("g", '{"x": 1}')])) + parser.flush()
    assert events == [ToolCall(0, "{}", "call_a", "f"), ToolCall(1, '{"x": 1}', "call_b", "g")]
    assert parser.calls == 2


@pytest.mark.parametrize(
    ("text", "tool_format", "expected"),
    [
        # A call whose body cannot be read is shown as the model wrote it, never dropped.
        ("<tool_call>not json</tool_call>", "hermes", ("<tool_call>not json</tool_call>", [])),
        ('<tool_call>{"arguments": {}}</tool_call>', "hermes", ('<tool_call>{"arguments": {}}</tool_call>', [])),
        # An unclosed call at the end (max_tokens): read if complete, else shown.
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n', "hermes", ("", [(0, "f", '{"a": 1}')])),
        ('<tool_call>\n{"name": "f", "argu', "hermes", ('<tool_call>\n{"name": "f", "argu', [])),
        (f"{R1_CALLS_BEGIN}{R1_CALL_BEGIN}function{R1_TOOL_SEP}f\n```json\n{{}}", "deepseek", ("", [(0, "f", "{}")])),
        (f"{R1_CALLS_BEGIN}{R1_CALL_BEGIN}no separator{R1_CALL_END}{R1_CALLS_END}", "deepseek",
         (f"{R1_CALL_BEGIN}no separator{R1_CALL_END}", [])),
        # Arguments given as a string are passed as they are; `parameters` is accepted like `arguments`.
        ('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>', "hermes", ("", [(0, "f", '{"a": 1}')])),
        ('<tool_call>{"name": "f", "parameters": {"a": 1}}</tool_call>', "hermes", ("", [(0, "f", '{"a": 1}')])),
        # Text after the calls is answer; R1's block may hold newlines between calls.
        (f"{hermes_block([('f', '{}')])}\n\nDone.", "hermes", ("\n\nDone.", [(0, "f", "{}")])),
        ("no calls at all\n", "hermes", ("no calls at all", [])),
    ],
)
def test_known_shapes(text: str, tool_format: str, expected: tuple[str, list]) -> None:
    assert parse([text], tool_format) == expected
    assert parse(list(text), tool_format) == expected


def test_tool_format_follows_the_model_family() -> None:
    assert tool_format_for_model("Qwen/Qwen3-235B-A22B") == "hermes"
    assert tool_format_for_model("QwQ-32B") == "hermes"
    assert tool_format_for_model("deepseek-ai/DeepSeek-R1-0528") == "deepseek"
    assert tool_format_for_model("DeepSeek-V3") == "deepseek"
