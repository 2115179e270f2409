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

from backend_adapters.chat_templates import (
    CHAT_TEMPLATES_PREFILLING_THINK,
    CHAT_TEMPLATES_THINKING_OFF,
    TEMPLATES,
    render_prompt,
)
from examples.make_tiny_r1 import BOS, DEEPSEEK_R1_CHAT_TEMPLATE, EOS
from tests.support.reference_chat_templates import (
    LLAMA3_INSTRUCT_CHAT_TEMPLATE,
    QWEN3_CHAT_TEMPLATE,
    QWQ_32B_CHAT_TEMPLATE,
    R1_VLLM_TOOL_SECTION,
)

# R1's own template with the tool section vLLM/SGLang put in front of its system prompt.
DEEPSEEK_R1_WITH_TOOLS = DEEPSEEK_R1_CHAT_TEMPLATE.replace("{{ bos_token }}", R1_VLLM_TOOL_SECTION + "{{ bos_token }}", 1)
assert DEEPSEEK_R1_WITH_TOOLS != DEEPSEEK_R1_CHAT_TEMPLATE

REFERENCE = {
    "deepseek-r1": (DEEPSEEK_R1_CHAT_TEMPLATE, BOS, EOS),
    "deepseek-r1+tools": (DEEPSEEK_R1_WITH_TOOLS, BOS, EOS),
    "qwen3": (QWEN3_CHAT_TEMPLATE, None, "<|im_end|>"),
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


def reference_prompt(messages: list[dict[str, Any]], template: str, tools: list[dict] | None = None, **kwargs: Any) -> str:
    return _tokenizer(template).apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=True, **kwargs
    )


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


# OpenAI-shaped tool definitions, like the ones Open WebUI sends (its built-in time tool among them),
# with descriptions holding the characters that break naive JSON rendering.
@st.composite
def tool_lists(draw: st.DrawFn) -> list[dict]:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_current_timestamp",
                "description": "Get the current Unix timestamp in seconds.",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    for index in range(draw(st.integers(0, 2))):
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": f"tool_{index}",
                    "description": draw(_TEXT),
                    "parameters": {"type": "object", "properties": {draw(_TEXT): {"type": "string"}}, "required": []},
                },
            }
        )
    return tools


@PARITY
@given(messages=conversations(), tools=tool_lists())
def test_deepseek_r1_with_tools_matches_r1_template_with_vllms_tool_section(messages: list[dict], tools: list[dict]) -> None:
    assert render_prompt(messages, "deepseek-r1", tools=tools) == reference_prompt(messages, "deepseek-r1+tools", tools)


@PARITY
@given(messages=conversations(), tools=tool_lists())
def test_qwq_with_tools_matches_real_template(messages: list[dict], tools: list[dict]) -> None:
    assert render_prompt(messages, "qwq", tools=tools) == reference_prompt(messages, "qwq", tools)


@pytest.mark.parametrize("template", ["deepseek-r1", "qwq"])
@pytest.mark.parametrize("cut", [4, 5, 7], ids=["after-tool", "after-tools", "after-user"])
def test_tool_turns_with_tool_list_match_real_template(template: str, cut: int) -> None:
    messages = TOOL_CHAT[:cut]
    if template == "qwq":
        messages = [{**m, "content": m["content"] or ""} for m in messages]
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
    reference = "deepseek-r1+tools" if template == "deepseek-r1" else template
    assert render_prompt(messages, template, tools=tools) == reference_prompt(messages, reference, tools)


@st.composite
def one_turn(draw: st.DrawFn) -> list[dict[str, str]]:
    """A first question, with or without a system prompt: where ChatML's and Qwen3's templates agree."""
    system = [{"role": "system", "content": draw(_TEXT)}] if draw(st.booleans()) else []
    return [*system, {"role": "user", "content": draw(_TEXT)}]


@PARITY
@given(messages=one_turn(), tools=st.one_of(st.none(), tool_lists()))
def test_chatml_thinking_off_matches_qwen3_enable_thinking_false(messages: list[dict], tools: list[dict] | None) -> None:
    reference = reference_prompt(messages, "qwen3", tools, enable_thinking=False)
    assert render_prompt(messages, "chatml", thinking_off=True, tools=tools) == reference
    assert reference.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@PARITY
@given(messages=one_turn(), tools=tool_lists())
def test_chatml_tool_block_matches_qwen3(messages: list[dict], tools: list[dict]) -> None:
    assert render_prompt(messages, "chatml", tools=tools) == reference_prompt(messages, "qwen3", tools)


@pytest.mark.parametrize("template", TEMPLATES)
def test_thinking_off_closes_an_empty_thinking_block_where_the_model_thinks(template: str) -> None:
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    on, off = render_prompt(chat, template), render_prompt(chat, template, thinking_off=True)
    if template not in CHAT_TEMPLATES_THINKING_OFF:
        assert off == on
    elif template in CHAT_TEMPLATES_PREFILLING_THINK:  # `<think>\n` was already there: close it empty
        assert off == on + "\n</think>\n\n"
    else:
        assert off == on + "<think>\n\n</think>\n\n"


@pytest.mark.parametrize("template", ["llama3", "plain"])
def test_templates_without_a_tool_format_render_no_tools(template: str) -> None:
    chat = [{"role": "user", "content": "Q"}]
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert render_prompt(chat, template, tools=tools) == render_prompt(chat, template)


@PARITY
@given(messages=conversations(), tools=st.one_of(st.none(), tool_lists()), thinking_off=st.booleans())
def test_qwen3_matches_real_template(messages: list[dict], tools: list[dict] | None, thinking_off: bool) -> None:
    kwargs = {"enable_thinking": False} if thinking_off else {}
    assert render_prompt(messages, "qwen3", tools=tools, thinking_off=thinking_off) == reference_prompt(messages, "qwen3", tools, **kwargs)


@pytest.mark.parametrize("cut", [3, 4, 5, 6, 7], ids=["after-call", "after-tool", "after-tools", "after-answer", "after-user"])
def test_qwen3_tool_turns_match_real_template(cut: int) -> None:
    """Qwen3 keeps string arguments as they are (QwQ re-encodes them) and thinks anew after tool results."""
    messages = [{**m, "content": m["content"] or ""} for m in TOOL_CHAT[:cut]]
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
    assert render_prompt(messages, "qwen3", tools=tools) == reference_prompt(messages, "qwen3", tools)
    assert render_prompt(messages, "qwen3") == reference_prompt(messages, "qwen3")
