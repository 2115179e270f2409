"""Render an OpenAI-style chat into one prompt string, for servers that take a prompt, not a chat.

Why: a Flask/FastAPI `/generate` app hands our prompt straight to the model, so the chat must
be rendered exactly as the model's own tokenizer template would render it; any drift (a missing
BOS, a newline too many, thinking left in old turns) degrades a small model's answers. Each
template here mirrors a real Hugging Face chat template, byte for byte, with
`add_generation_prompt=True`; tests/test_chat_templates.py proves it against the Jinja text.

- `deepseek-r1`: DeepSeek-R1 and its distills. BOS, all system prompts first (joined by a blank
  line), `<｜User｜>`/`<｜Assistant｜>` turns, assistant turns cut to what follows `</think>`,
  `<｜end▁of▁sentence｜>` after each assistant turn, and the prompt ends `<｜Assistant｜><think>\\n`,
  so the model's output starts inside its thinking (bare `…</think>answer`).
- `qwq`: QwQ-32B. ChatML; thinking dropped from earlier assistant turns; ends
  `<|im_start|>assistant\\n<think>\\n` (also pre-filled thinking).
- `chatml`: the same ChatML rendering with a plain `<|im_start|>assistant\\n` generation prompt,
  for ChatML models that open `<think>` themselves (its tool block and thinking-off prompt are
  Qwen3's, whose first-turn prompts it matches).
- `qwen3`: Qwen3's own template (hybrid thinking models: they open `<think>` themselves): ChatML,
  thinking of earlier turns dropped, string tool arguments kept as they are, `enable_thinking`.
- `llama3`: Meta-Llama-3-Instruct: `<|begin_of_text|>` then
  `<|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|>` per message (content trimmed).
- `plain`: `System: …\\nUser: …\\nAssistant: …` lines ending `Assistant:`, for base models and
  home-made servers with no template; thinking is dropped from assistant turns.

Tools: with `tools`, `deepseek-r1` adds the tool section vLLM and SGLang give R1 to the system
prompt, `qwq`/`qwen3`/`chatml` Qwen's `# Tools` system block (backend_adapters/tool_prompts.py); earlier
calls and `role: "tool"` results render as each template renders them. `llama3` and `plain` have
no tool format and render no tools.

Thinking off (`thinking_off`): templates that think (`CHAT_TEMPLATES_THINKING_OFF`) end the prompt
with an empty, closed thinking block, as Qwen3's template does for `enable_thinking=False`; the
output is then all answer.

Content may be a string or a list of OpenAI content parts (text parts are kept, joined by a
newline; images are dropped). Names are prefixed so the installer can inline this module.
"""

from __future__ import annotations

import json
from typing import Any

from backend_adapters.tool_call_parser import ToolFormat
from backend_adapters.tool_prompts import hermes_tool_section, r1_tool_section

TEMPLATES: tuple[str, ...] = ("deepseek-r1", "qwq", "qwen3", "chatml", "llama3", "plain")
# Templates whose prompt ends inside an open `<think>` block: the output has `</think>` but no opener.
CHAT_TEMPLATES_PREFILLING_THINK: tuple[str, ...] = ("deepseek-r1", "qwq")
# Templates of thinking models: with thinking off, the prompt ends in an empty thinking block.
CHAT_TEMPLATES_THINKING_OFF: tuple[str, ...] = ("deepseek-r1", "qwq", "qwen3", "chatml")
# The family whose tool markup each template's model speaks; the others render no tools.
CHAT_TEMPLATE_TOOL_FORMATS: dict[str, ToolFormat] = {"deepseek-r1": "deepseek", "qwq": "hermes", "qwen3": "hermes", "chatml": "hermes"}
EMPTY_THINKING = "<think>\n\n</think>\n\n"

_R1_BOS = "<｜begin▁of▁sentence｜>"
_R1_EOS = "<｜end▁of▁sentence｜>"
_R1_USER = "<｜User｜>"
_R1_ASSISTANT = "<｜Assistant｜>"
_R1_CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
_R1_CALLS_END = "<｜tool▁calls▁end｜>"
_R1_CALL_BEGIN = "<｜tool▁call▁begin｜>"
_R1_CALL_END = "<｜tool▁call▁end｜>"
_R1_SEP = "<｜tool▁sep｜>"
_R1_OUTPUTS_BEGIN = "<｜tool▁outputs▁begin｜>"
_R1_OUTPUTS_END = "<｜tool▁outputs▁end｜>"
_R1_OUTPUT_BEGIN = "<｜tool▁output▁begin｜>"
_R1_OUTPUT_END = "<｜tool▁output▁end｜>"
_CT_THINK_CLOSE = "</think>"


def chat_template_text(content: Any) -> str:
    """The text of a message's content: a string as is, text parts of a list joined, else ''."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return str(content)


def _ct_after_thinking(text: str) -> str:
    """What R1/QwQ templates keep of an old assistant turn: everything after the last `</think>`."""
    return text.split(_CT_THINK_CLOSE)[-1] if _CT_THINK_CLOSE in text else text


def _ct_tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def _ct_call_parts(call: dict[str, Any]) -> tuple[str, str, str]:
    """(type, name, arguments-as-string) of an OpenAI tool call."""
    function = call.get("function") or {}
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return str(call.get("type", "function")), str(function.get("name", "")), arguments


def _render_deepseek_r1(
    messages: list[dict[str, Any]], add_generation_prompt: bool, tools: list[dict], thinking_off: bool
) -> str:
    """DeepSeek-R1's tokenizer_config chat template, step for step (including its tool quirks)."""
    systems = [chat_template_text(m.get("content")) for m in messages if m.get("role") == "system"]
    system_prompt = "\n\n".join(systems) + ("\n\n" + r1_tool_section(tools) if tools else "")
    out = [_R1_BOS, system_prompt]
    is_tool, is_first_call, is_output_first = False, False, True
    for message in messages:
        role = message.get("role")
        content = chat_template_text(message.get("content"))
        if role == "user":
            is_tool = False
            out.append(_R1_USER + content)
        elif role == "assistant" and _ct_tool_calls(message):
            is_tool = False
            for call in _ct_tool_calls(message):
                kind, name, arguments = _ct_call_parts(call)
                body = f"{_R1_CALL_BEGIN}{kind}{_R1_SEP}{name}\n```json\n{arguments}\n```{_R1_CALL_END}"
                if not is_first_call:
                    # The template never resets this flag: later tool-calling turns lose their header.
                    lead = _R1_ASSISTANT if message.get("content") is None else _R1_ASSISTANT + content
                    out.append(lead + _R1_CALLS_BEGIN + body)
                    is_first_call = True
                else:
                    out.append("\n" + body)
            out.append(_R1_CALLS_END + _R1_EOS)
        elif role == "assistant":
            if is_tool:
                out.append(_R1_OUTPUTS_END + content + _R1_EOS)
                is_tool = False
            else:
                out.append(_R1_ASSISTANT + _ct_after_thinking(content) + _R1_EOS)
        elif role == "tool":
            is_tool = True
            if is_output_first:
                out.append(_R1_OUTPUTS_BEGIN + _R1_OUTPUT_BEGIN + content + _R1_OUTPUT_END)
                is_output_first = False
            else:
                out.append(_R1_OUTPUT_BEGIN + content + _R1_OUTPUT_END)
    if is_tool:
        out.append(_R1_OUTPUTS_END)
    if add_generation_prompt and not is_tool:
        out.append(_R1_ASSISTANT + (EMPTY_THINKING if thinking_off else "<think>\n"))
    return "".join(out)


def _hermes_tool_response(messages: list[dict[str, Any]], index: int) -> str:
    """A `role: tool` turn as QwQ's and Qwen3's templates write it: consecutive results share one user turn."""
    opening = "<|im_start|>user" if index == 0 or messages[index - 1].get("role") != "tool" else ""
    closing = "<|im_end|>\n" if index == len(messages) - 1 or messages[index + 1].get("role") != "tool" else ""
    return f"{opening}\n<tool_response>\n{chat_template_text(messages[index].get('content'))}\n</tool_response>{closing}"


def _render_qwen_chatml(
    messages: list[dict[str, Any]], add_generation_prompt: bool, generation_prompt: str, tools: list[dict], qwen3: bool
) -> str:
    """QwQ-32B's chat template (ChatML); only the generation prompt varies, and with `qwen3` the
    tool block leaves out QwQ's blank lines when there is no system prompt, as Qwen3's does."""
    out: list[str] = []
    has_system = bool(messages) and messages[0].get("role") == "system"
    if tools:
        system = chat_template_text(messages[0].get("content")) + "\n\n" if has_system else ("" if qwen3 else "\n\n")
        out.append(f"<|im_start|>system\n{system}{hermes_tool_section(tools)}<|im_end|>\n")
    elif has_system:
        out.append("<|im_start|>system\n" + chat_template_text(messages[0].get("content")) + "<|im_end|>\n")
    last = len(messages) - 1
    for index, message in enumerate(messages):
        role = message.get("role")
        content = chat_template_text(message.get("content"))
        if role == "user" or (role == "system" and index != 0):
            out.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
        elif role == "assistant":
            if index != last:
                content = content.split(_CT_THINK_CLOSE)[-1].lstrip("\n")
            calls = _ct_tool_calls(message)
            if not calls:
                out.append(f"<|im_start|>assistant\n{content}<|im_end|>\n")
                continue
            out.append("<|im_start|>assistant" + ("\n" + content if message.get("content") else ""))
            for call in calls:
                _, name, arguments = _ct_call_parts(call)
                out.append(
                    f'\n<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(arguments, ensure_ascii=False)}}}\n</tool_call>'
                )
            out.append("<|im_end|>\n")
        elif role == "tool":
            out.append(_hermes_tool_response(messages, index))
    if add_generation_prompt:
        out.append(generation_prompt)
    return "".join(out)


def _qwen3_last_query(messages: list[dict[str, Any]]) -> int:
    """Index of the last real user question (tool results sent as user turns do not count)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        text = chat_template_text(message.get("content"))
        if message.get("role") == "user" and not (text.startswith("<tool_response>") and text.endswith("</tool_response>")):
            return index
    return len(messages) - 1


def _qwen3_assistant(message: dict[str, Any], after_query: bool, last: bool) -> str:
    content = chat_template_text(message.get("content"))
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str):
        reasoning = ""
        if _CT_THINK_CLOSE in content:
            before = content.split(_CT_THINK_CLOSE)[0]
            content = content.split(_CT_THINK_CLOSE)[-1].lstrip("\n")
            reasoning = before.rstrip("\n").split("<think>")[-1].lstrip("\n")
    if after_query and (last or reasoning):
        out = f"<|im_start|>assistant\n<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{content.lstrip(chr(10))}"
    else:
        out = "<|im_start|>assistant\n" + content
    for number, call in enumerate(_ct_tool_calls(message)):
        function = call.get("function") or call
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        out += ("\n" if number or content else "") + f'<tool_call>\n{{"name": "{function.get("name", "")}", "arguments": {arguments}}}\n</tool_call>'
    return out + "<|im_end|>\n"


def _render_qwen3(
    messages: list[dict[str, Any]], add_generation_prompt: bool, tools: list[dict], thinking_off: bool
) -> str:
    """Qwen3's tokenizer_config chat template, step for step."""
    out: list[str] = []
    has_system = bool(messages) and messages[0].get("role") == "system"
    system = chat_template_text(messages[0].get("content")) if has_system else ""
    if tools:
        out.append("<|im_start|>system\n" + (system + "\n\n" if has_system else "") + hermes_tool_section(tools) + "<|im_end|>\n")
    elif has_system:
        out.append(f"<|im_start|>system\n{system}<|im_end|>\n")
    last_query, last = _qwen3_last_query(messages), len(messages) - 1
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "user" or (role == "system" and index != 0):
            out.append(f"<|im_start|>{role}\n{chat_template_text(message.get('content'))}<|im_end|>\n")
        elif role == "assistant":
            out.append(_qwen3_assistant(message, index > last_query, index == last))
        elif role == "tool":
            out.append(_hermes_tool_response(messages, index))
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n" + (EMPTY_THINKING if thinking_off else ""))
    return "".join(out)


def _render_llama3(messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
    """Meta-Llama-3-Instruct's template: BOS on the first message, every content `trim`med."""
    out = []
    for index, message in enumerate(messages):
        turn = (
            f"<|start_header_id|>{message.get('role')}<|end_header_id|>\n\n"
            f"{chat_template_text(message.get('content')).strip()}<|eot_id|>"
        )
        out.append(("<|begin_of_text|>" if index == 0 else "") + turn)
    if add_generation_prompt:
        out.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(out)


def _render_plain(messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
    """Readable `Role: text` lines for models with no chat template; old thinking is left out."""
    lines = []
    for message in messages:
        role = str(message.get("role") or "user")
        content = chat_template_text(message.get("content"))
        if role == "assistant":
            content = _ct_after_thinking(content).lstrip("\n")
        lines.append(f"{role[:1].upper()}{role[1:]}: {content}")
    if add_generation_prompt:
        lines.append("Assistant:")
    return "\n".join(lines)


def render_prompt(
    messages: list[dict[str, Any]],
    template: str,
    *,
    add_generation_prompt: bool = True,
    tools: list[dict] | None = None,
    thinking_off: bool = False,
) -> str:
    """The prompt string for `messages` under the named template (one of `TEMPLATES`)."""
    tools = tools or []
    if template == "deepseek-r1":
        return _render_deepseek_r1(messages, add_generation_prompt, tools, thinking_off)
    if template == "qwen3":
        return _render_qwen3(messages, add_generation_prompt, tools, thinking_off)
    if template in ("qwq", "chatml"):
        opening = "<think>\n" if template == "qwq" else ""
        prompt = "<|im_start|>assistant\n" + (EMPTY_THINKING if thinking_off else opening)
        return _render_qwen_chatml(messages, add_generation_prompt, prompt, tools, qwen3=template == "chatml")
    if template == "llama3":
        return _render_llama3(messages, add_generation_prompt)
    if template == "plain":
        return _render_plain(messages, add_generation_prompt)
    raise ValueError(f"Unknown chat template {template!r}; choose one of: {', '.join(TEMPLATES)}.")
