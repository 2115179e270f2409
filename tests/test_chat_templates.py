"""Prompt rendering for prompt-style servers matches the models' real chat templates, byte for byte.

The oracle is `transformers`' own `apply_chat_template(..., tokenize=False,
add_generation_prompt=True)` run on the real template texts (DeepSeek-R1, QwQ-32B, Llama 3).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend_adapters.chat_templates import CHAT_TEMPLATES_PREFILLING_THINK, TEMPLATES, render_prompt
from examples.make_tiny_r1 import BOS, DEEPSEEK_R1_CHAT_TEMPLATE, EOS
from tests.support.reference_chat_templates import LLAMA3_INSTRUCT_CHAT_TEMPLATE, QWQ_32B_CHAT_TEMPLATE

REFERENCE = {
    "deepseek-r1": (DEEPSEEK_R1_CHAT_TEMPLATE, BOS, EOS),
    "qwq": (QWQ_32B_CHAT_TEMPLATE, None, "<|im_end|>"),
    "llama3": (LLAMA3_INSTRUCT_CHAT_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>"),
}


@cache
def _tokenizer(template: str) -> Any:
    """A throwaway fast tokenizer carrying the real template and the model's BOS/EOS strings."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    text, bos, eos = REFERENCE[template]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
        bos_token=bos,
        eos_token=eos,
        unk_token="[UNK]",
    )
    tokenizer.chat_template = text
    return tokenizer


def reference_prompt(messages: list[dict[str, Any]], template: str) -> str:
    return _tokenizer(template).apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# Text with the characters that break naive renderers: think tags, newlines, R1's fullwidth
# markers, ChatML markers, surrounding whitespace (Llama 3 trims), and any unicode.
_FRAGMENTS = st.sampled_from(
    ["<think>", "</think>", "\n", "\n\n", " ", "<｜User｜>", "<|im_end|>", "答え", "🙂", "\t", "é"]
)
_TEXT = st.lists(st.one_of(st.text(max_size=12), _FRAGMENTS), max_size=6).map("".join)


@st.composite
def _assistant_content(draw: st.DrawFn) -> str:
    answer = draw(_TEXT)
    shape = draw(st.sampled_from(["plain", "tagged", "bare", "tagged-newlines"]))
    reasoning = draw(_TEXT)
    if shape == "tagged":
        return f"<think>{reasoning}</think>{answer}"
    if shape == "bare":
        return f"{reasoning}</think>{answer}"
    if shape == "tagged-newlines":
        return f"<think>\n{reasoning}\n</think>\n\n{answer}"
    return answer


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, str]]:
    """Optional system prompt, 1–5 user turns with answers between, sometimes a later system turn."""
    messages: list[dict[str, str]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_TEXT)})
    turns = draw(st.integers(min_value=1, max_value=5))
    for turn in range(turns):
        if turn and draw(st.integers(0, 9)) == 0:
            messages.append({"role": "system", "content": draw(_TEXT)})
        messages.append({"role": "user", "content": draw(_TEXT)})
        if turn < turns - 1:
            messages.append({"role": "assistant", "content": draw(_assistant_content())})
    return messages


PARITY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PARITY
@given(messages=conversations())
def test_deepseek_r1_matches_real_template(messages: list[dict[str, str]]) -> None:
    assert render_prompt(messages, "deepseek-r1") == reference_prompt(messages, "deepseek-r1")


@PARITY
@given(messages=conversations())
def test_qwq_matches_real_template(messages: list[dict[str, str]]) -> None:
    assert render_prompt(messages, "qwq") == reference_prompt(messages, "qwq")


@PARITY
@given(messages=conversations())
def test_chatml_is_qwq_without_prefilled_think(messages: list[dict[str, str]]) -> None:
    rendered = render_prompt(messages, "chatml")
    assert rendered.endswith("<|im_start|>assistant\n")
    assert rendered + "<think>\n" == reference_prompt(messages, "qwq")


@PARITY
@given(messages=conversations())
def test_llama3_matches_real_template(messages: list[dict[str, str]]) -> None:
    assert render_prompt(messages, "llama3") == reference_prompt(messages, "llama3")


TOOL_CHAT = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "Weather in Oslo?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
            {"type": "function", "function": {"name": "time", "arguments": "{}"}},
        ],
    },
    {"role": "tool", "content": "3°C"},
    {"role": "tool", "content": "12:00"},
    {"role": "assistant", "content": "<think>cold</think>It is 3°C."},
    {"role": "user", "content": "Thanks"},
]


@pytest.mark.parametrize("template", ["deepseek-r1", "qwq"])
@pytest.mark.parametrize("cut", [4, 5, 7], ids=["after-tool", "after-tools", "after-user"])
def test_tool_turns_match_real_template(template: str, cut: int) -> None:
    messages = TOOL_CHAT[:cut]
    if template == "qwq":  # QwQ's template reads `content` as a string even beside tool calls
        messages = [{**m, "content": m["content"] or ""} for m in messages]
    assert render_prompt(messages, template) == reference_prompt(messages, template)


def test_deepseek_r1_prompt_shape() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nThey greet.\n</think>\n\nHello!"},
        {"role": "system", "content": "Use French."},
        {"role": "user", "content": "Again"},
    ]
    assert render_prompt(messages, "deepseek-r1") == (
        f"{BOS}Be brief.\n\nUse French.<｜User｜>Hi<｜Assistant｜>\n\nHello!{EOS}<｜User｜>Again<｜Assistant｜><think>\n"
    )


def test_content_parts_render_like_their_text() -> None:
    parts = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": "x"}}],
        },
    ]
    for template in TEMPLATES:
        assert render_prompt(parts, template) == render_prompt([{"role": "user", "content": "Look:"}], template)
    two_texts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert render_prompt(two_texts, "chatml") == "<|im_start|>user\na\nb<|im_end|>\n<|im_start|>assistant\n"


def test_plain_template_is_readable_and_drops_old_thinking() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>greeting</think>\n\nHello!"},
        {"role": "user", "content": "Bye"},
    ]
    assert render_prompt(messages, "plain") == "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: Bye\nAssistant:"


def test_prefilled_think_templates_end_inside_thinking() -> None:
    chat = [{"role": "user", "content": "Q"}]
    for template in TEMPLATES:
        assert render_prompt(chat, template).endswith("<think>\n") == (template in CHAT_TEMPLATES_PREFILLING_THINK)


def test_unknown_template_names_the_choices() -> None:
    with pytest.raises(ValueError, match="deepseek-r1"):
        render_prompt([{"role": "user", "content": "x"}], "vicuna")
