"""Tools and tool turns written as plain messages, for servers that take `content: str` and apply their own template.

The oracle for hermes is Qwen3's real template: the plain messages it renders without `tools`
must give the very prompt it renders from the structured chat with `tools`.
"""

from __future__ import annotations

import pytest

from backend_adapters.tool_prompts import calls_as_text, tool_turns_as_text, with_tool_section
from tests.test_chat_templates import TOOL_CHAT, reference_prompt

TOOLS = [
    {"type": "function", "function": {"name": "weather", "description": "Weather in a city, °C.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "time", "parameters": {"type": "object", "properties": {}}}},
]


@pytest.mark.parametrize("cut", [2, 4, 5, 7], ids=["question", "after-tool", "after-tools", "after-user"])
@pytest.mark.parametrize("system", [True, False], ids=["with-system", "no-system"])
def test_plain_messages_render_like_qwen3_renders_the_tool_chat(cut: int, system: bool) -> None:
    chat = [{**m, "content": m["content"] or ""} for m in TOOL_CHAT[:cut]]
    if not system:
        chat = chat[1:]
    plain = with_tool_section(tool_turns_as_text(chat, "hermes"), "hermes", TOOLS)
    assert all(isinstance(m["content"], str) and "tool_calls" not in m and m["role"] != "tool" for m in plain)
    assert reference_prompt(plain, "qwen3") == reference_prompt(chat, "qwen3", TOOLS)


def test_r1_tool_turns_become_markup_the_parser_reads_back() -> None:
    plain = tool_turns_as_text(TOOL_CHAT[:5], "deepseek")
    assert [m["role"] for m in plain] == ["system", "user", "assistant", "user"]
    assert plain[2]["content"] == calls_as_text("deepseek", TOOL_CHAT[2]["tool_calls"])
    assert plain[2]["content"].startswith("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>weather\n```json\n")
    assert plain[3]["content"] == (
        "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>3°C<｜tool▁output▁end｜>\n"
        "<｜tool▁output▁begin｜>12:00<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"
    )


def test_the_tool_section_joins_an_existing_system_prompt_or_makes_one() -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    joined = with_tool_section(chat, "deepseek", TOOLS)
    assert joined[0]["content"].startswith("Be brief.\n\nYou are a helpful assistant with tool calling capabilities.")
    assert '"name": "weather"' in joined[0]["content"] and len(joined) == 2
    made = with_tool_section(chat[1:], "hermes", TOOLS)
    assert made[0]["role"] == "system" and made[0]["content"].startswith("# Tools\n\n") and made[1] == chat[1]
