"""The tool sections and tool turns of a prompt, in the words each model family was trained on.

A backend that renders no tools (a prompt server, KTransformers' own template)
still lets a model call them if the prompt says what tools exist and how to
call them, the way the family's template would have said it, and if earlier
calls and their results come back in the same markup. Two families:

- `deepseek`: the tool section vLLM and SGLang add to DeepSeek-R1's system prompt
  (vLLM examples/tool_chat_template_deepseekr1.jinja, "Adapted from" SGLang's
  examples/chat_template/tool_chat_template_deepseekr1.jinja; R1's own template
  renders calls and results but no tool list), word for word, typo included.
- `hermes`: Qwen3's and QwQ's `# Tools` block with one JSON line per tool inside
  `<tools></tools>` (their tokenizer_config chat templates).

For servers whose messages are plain strings (KTransformers and hand-written
wrappers), `tool_turns_as_text` writes an assistant's `tool_calls` and the
`role: "tool"` results into ordinary assistant and user text, byte for byte as
the family's template would have rendered them where the format allows.
"""

from __future__ import annotations

import json
from typing import Any

from backend_adapters.tool_call_parser import (
    HERMES_CALL_BEGIN,
    HERMES_CALL_END,
    R1_CALL_BEGIN,
    R1_CALL_END,
    R1_CALLS_BEGIN,
    R1_CALLS_END,
    R1_TOOL_SEP,
    ToolFormat,
)

R1_OUTPUTS_BEGIN = "<｜tool▁outputs▁begin｜>"
R1_OUTPUTS_END = "<｜tool▁outputs▁end｜>"
R1_OUTPUT_BEGIN = "<｜tool▁output▁begin｜>"
R1_OUTPUT_END = "<｜tool▁output▁end｜>"

_R1_TOOL_SECTION_HEAD = (
    "You are a helpful assistant with tool calling capabilities. "
    "When a tool call is needed, you MUST use the following format to issue the call:\n"
    f"{R1_CALLS_BEGIN}{R1_CALL_BEGIN}function{R1_TOOL_SEP}FUNCTION_NAME\n"
    '```json\n{"param1": "value1", "param2": "value2"}\n```' + f"{R1_CALL_END}{R1_CALLS_END}\n\n"
    "Make sure the JSON is valid."
    "## Tools\n\n### Function\n\nYou have the following functions available:\n\n"
)
_HERMES_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_HERMES_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def template_json(value: Any) -> str:
    """Jinja's `tojson` as transformers' chat templates define it (non-ASCII kept, default separators)."""
    return json.dumps(value, ensure_ascii=False)


def r1_tool_section(tools: list[dict]) -> str:
    return _R1_TOOL_SECTION_HEAD + "".join(f"\n```json\n{template_json(tool)}\n```\n" for tool in tools)


def hermes_tool_section(tools: list[dict]) -> str:
    return _HERMES_TOOLS_HEAD + "".join("\n" + template_json(tool) for tool in tools) + _HERMES_TOOLS_TAIL


def tool_section(tool_format: ToolFormat, tools: list[dict]) -> str:
    return r1_tool_section(tools) if tool_format == "deepseek" else hermes_tool_section(tools)


def call_arguments(call: dict) -> tuple[str, str]:
    """(name, arguments as a JSON string) of an OpenAI tool call."""
    function = call.get("function") or {}
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = template_json(arguments)
    return str(function.get("name", "")), arguments


def calls_as_text(tool_format: ToolFormat, calls: list[dict]) -> str:
    """An assistant's calls in the markup the model emits (and the parser reads back)."""
    pairs = [call_arguments(call) for call in calls]
    if tool_format == "deepseek":
        body = "\n".join(f"{R1_CALL_BEGIN}function{R1_TOOL_SEP}{name}\n```json\n{args}\n```{R1_CALL_END}" for name, args in pairs)
        return R1_CALLS_BEGIN + body + R1_CALLS_END
    return "\n".join(f'{HERMES_CALL_BEGIN}\n{{"name": "{name}", "arguments": {args}}}\n{HERMES_CALL_END}' for name, args in pairs)


def results_as_text(tool_format: ToolFormat, results: list[str]) -> str:
    """Consecutive tool results, as the family's template renders them after a call."""
    if tool_format == "deepseek":
        return R1_OUTPUTS_BEGIN + "\n".join(f"{R1_OUTPUT_BEGIN}{r}{R1_OUTPUT_END}" for r in results) + R1_OUTPUTS_END
    return "\n".join(f"<tool_response>\n{r}\n</tool_response>" for r in results)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def tool_turns_as_text(messages: list[dict], tool_format: ToolFormat) -> list[dict]:
    """Assistant `tool_calls` become markup in the assistant's text; consecutive tool results one user turn."""
    out: list[dict] = []
    results: list[str] = []
    for message in messages:
        if message.get("role") == "tool":
            results.append(_text_of(message.get("content")))
            continue
        if results:
            out.append({"role": "user", "content": results_as_text(tool_format, results)})
            results = []
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and isinstance(calls, list) and calls:
            text = _text_of(message.get("content"))
            joiner = "\n" if text and tool_format == "hermes" else ""
            out.append({"role": "assistant", "content": text + joiner + calls_as_text(tool_format, calls)})
        else:
            out.append(message)
    if results:
        out.append({"role": "user", "content": results_as_text(tool_format, results)})
    return out


def with_tool_section(messages: list[dict], tool_format: ToolFormat, tools: list[dict]) -> list[dict]:
    """The tool section added to the first system message (one is made when there is none)."""
    section = tool_section(tool_format, tools)
    if messages and messages[0].get("role") == "system":
        system = _text_of(messages[0].get("content"))
        return [{**messages[0], "content": f"{system}\n\n{section}" if system else section}, *messages[1:]]
    return [{"role": "system", "content": section}, *messages]
