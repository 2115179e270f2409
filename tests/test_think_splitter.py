"""The think splitter: chunking-invariant, lossless, and right on R1's real output shapes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_adapters.events import Content, Reasoning
from backend_adapters.model_families import starts_in_thinking
from backend_adapters.think_splitter import ThinkSplitter


def split(chunks: list[str], starts_in_thinking: bool) -> tuple[str, str]:
    splitter = ThinkSplitter(starts_in_thinking)
    events = [e for chunk in chunks for e in splitter.feed(chunk)] + splitter.flush()
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    content = "".join(e.text for e in events if isinstance(e, Content))
    return reasoning, content


def pieces(chunks: list[str], starts_in_thinking: bool) -> list[tuple[str, str]]:
    splitter = ThinkSplitter(starts_in_thinking)
    return [p for chunk in chunks for p in splitter.pieces(chunk)] + splitter.flush_pieces()


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


# Text built from the characters that make tags hard: pieces of both tags, whitespace, letters.
tag_soup = st.lists(
    st.sampled_from(["<think>", "</think>", "<", "/", "think", ">", "<th", "</", "\n", " ", "a", "é", "答", "k>"]),
    max_size=30,
).map("".join)


@settings(max_examples=400)
@given(text=tag_soup, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12), thinking=st.booleans())
def test_any_chunking_gives_the_same_reasoning_and_answer(text: str, cuts: list[int], thinking: bool) -> None:
    assert split(chunked(text, cuts), thinking) == split([text], thinking)


@settings(max_examples=400)
@given(text=tag_soup, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12), thinking=st.booleans())
def test_reasoning_answer_and_tags_rebuild_the_input(text: str, cuts: list[int], thinking: bool) -> None:
    out = pieces(chunked(text, cuts), thinking)
    assert "".join(t for _, t in out) == text
    assert all(t for _, t in out), "no empty pieces"
    tags = [t.strip() for kind, t in out if kind == "tag"]
    assert all(t in ("<think>", "</think>") for t in tags)


@given(reasoning=st.text().filter(lambda s: "</think>" not in s), answer=st.text(), cuts=st.lists(st.integers(0, 300)))
def test_bare_r1_output_splits_at_the_closing_tag(reasoning: str, answer: str, cuts: list[int]) -> None:
    text = f"{reasoning}</think>{answer}"
    assert split(chunked(text, cuts), True) == (reasoning, answer)


@pytest.mark.parametrize(
    ("text", "thinking", "expected"),
    [
        ("<think>\nplan\n</think>\n\nHello", False, ("\nplan\n", "\n\nHello")),
        ("\n<think>plan</think>Hi", False, ("plan", "Hi")),
        ("plan</think>Hi", True, ("plan", "Hi")),
        ("<think>plan</think>Hi", True, ("plan", "Hi")),  # a first <think> is a tag even when expected
        ("<think></think>Hi", False, ("", "Hi")),  # empty thinking
        ("Hello <think>not thinking</think>", False, ("", "Hello <think>not thinking</think>")),
        ("Answer first</think> then", False, ("", "Answer first</think> then")),
        ("never closed", True, ("never closed", "")),  # max_tokens hit inside the thinking
        ("<thin", False, ("", "<thin")),  # a partial tag at the very end is text
        ("a</thi", True, ("a</thi", "")),
        ("plan</think>x<think>y</think>", True, ("plan", "x<think>y</think>")),
    ],
)
def test_known_shapes(text: str, thinking: bool, expected: tuple[str, str]) -> None:
    assert split([text], thinking) == expected
    assert split(list(text), thinking) == expected  # one character per chunk


def test_answer_is_not_held_back_beyond_a_partial_tag() -> None:
    splitter = ThinkSplitter(starts_in_thinking=True)
    assert splitter.feed("step one </th") == [Reasoning("step one ")]
    assert splitter.feed("ink>The answer") == [Content("The answer")]
    assert splitter.feed(" continues") == [Content(" continues")]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("deepseek-ai/DeepSeek-R1", True),
        ("deepseek-r1:671b", True),
        ("DeepSeek-R1-Distill-Qwen-32B", True),
        ("Qwen/QwQ-32B", True),
        ("Qwen/Qwen3-235B-A22B-Thinking-2507", True),
        ("tiny-r1", True),
        ("Qwen/Qwen3-8B", False),
        ("meta-llama/Llama-3.1-8B-Instruct", False),
        ("gpt-oss-r10", False),
    ],
)
def test_model_families(model: str, expected: bool) -> None:
    assert starts_in_thinking(model) is expected
    assert starts_in_thinking(model, "yes") is True
    assert starts_in_thinking(model, "no") is False
