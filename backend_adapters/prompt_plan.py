"""Everything a prompt server's request needs decided before it is sent: the prompt, notices, tool parsing.

Kept out of the prompt-server adapter so that adapter stays about the wire: this
module decides which tools the template can offer, whether thinking is switched
off by an empty thinking block, and what the user must be told (an image that
cannot be sent).

With a model's own Jinja template (CHAT_TEMPLATE) the same decisions come from
the rendered prompt: the template gets the tools (`tool_use` variant when it
has one) and `enable_thinking=False`, the call markup to parse is the one the
template writes, and thinking is closed when the prompt ends in `</think>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend_adapters.chat_request import ChatRequest
from backend_adapters.chat_templates import CHAT_TEMPLATE_TOOL_FORMATS, CHAT_TEMPLATES_THINKING_OFF, render_prompt
from backend_adapters.events import Status
from backend_adapters.jinja_template import load_chat_template, render_chat_template
from backend_adapters.text_only import TEXT_ONLY_NOTICE, carries_images
from backend_adapters.tool_call_parser import ToolCallParser, ToolFormat
from backend_adapters.tool_stream import tools_to_offer


@dataclass(frozen=True)
class PromptPlan:
    prompt: str
    notices: tuple[Status, ...]
    tool_parser: ToolCallParser | None  # set when tools were offered: the reply's call markup is parsed
    thinking_closed: bool  # the prompt ends in an empty, closed thinking block: all output is answer
    special_tokens: tuple[str, ...] = ()  # the model's special tokens (CHAT_TEMPLATE), for spotting an echoed prompt


def template_tool_format(template: str) -> ToolFormat | None:
    """The call markup a Jinja chat template teaches its model, if it is one we parse."""
    if "tool▁call" in template:
        return "deepseek"
    if "<tool_call>" in template:
        return "hermes"
    return None


def plan_from_model_template(request: ChatRequest, setting: str) -> PromptPlan:
    """The plan when the CHAT_TEMPLATE valve holds the model's own template (raises ChatTemplateError)."""
    model_template = load_chat_template(setting)
    tools = tools_to_offer(request) or None
    kwargs = dict(request.extra.get("chat_template_kwargs") or {})
    if request.thinking_off:
        kwargs["enable_thinking"] = False
    prompt = render_chat_template(model_template, request.messages, tools=tools, **kwargs)
    tool_format = template_tool_format(model_template.pick(tools)) if tools else None
    return PromptPlan(
        prompt=prompt,
        notices=(Status(TEXT_ONLY_NOTICE),) if carries_images(request.messages) else (),
        tool_parser=ToolCallParser(tool_format) if tool_format else None,
        thinking_closed=prompt.rstrip().endswith("</think>"),
        special_tokens=model_template.all_special,
    )


def plan_prompt(request: ChatRequest, template: str, chat_template: str = "") -> PromptPlan:
    """The plan for one request; raises ValueError for a template that cannot render the chat."""
    if chat_template.strip():
        return plan_from_model_template(request, chat_template)
    tool_format = CHAT_TEMPLATE_TOOL_FORMATS.get(template)
    tools = tools_to_offer(request) if tool_format else []
    prompt = render_prompt(request.messages, template, tools=tools, thinking_off=request.thinking_off)
    return PromptPlan(
        prompt=prompt,
        notices=(Status(TEXT_ONLY_NOTICE),) if carries_images(request.messages) else (),
        tool_parser=ToolCallParser(tool_format) if tool_format and tools else None,
        thinking_closed=request.thinking_off and template in CHAT_TEMPLATES_THINKING_OFF,
    )
