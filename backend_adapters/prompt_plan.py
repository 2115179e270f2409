"""Everything a prompt server's request needs decided before it is sent: the prompt, notices, tool parsing.

Kept out of the prompt-server adapter so that adapter stays about the wire: this
module decides which tools the template can offer, whether thinking is switched
off by an empty thinking block, and what the user must be told (an image that
cannot be sent).
"""

from __future__ import annotations

from dataclasses import dataclass

from backend_adapters.chat_request import ChatRequest
from backend_adapters.chat_templates import CHAT_TEMPLATE_TOOL_FORMATS, CHAT_TEMPLATES_THINKING_OFF, render_prompt
from backend_adapters.events import Status
from backend_adapters.text_only import TEXT_ONLY_NOTICE, carries_images
from backend_adapters.tool_call_parser import ToolCallParser
from backend_adapters.tool_stream import tools_to_offer


@dataclass(frozen=True)
class PromptPlan:
    prompt: str
    notices: tuple[Status, ...]
    tool_parser: ToolCallParser | None  # set when tools were offered: the reply's call markup is parsed
    thinking_closed: bool  # the prompt ends in an empty, closed thinking block: all output is answer


def plan_prompt(request: ChatRequest, template: str) -> PromptPlan:
    """The plan for one request; raises ValueError for a template that cannot render the chat."""
    tool_format = CHAT_TEMPLATE_TOOL_FORMATS.get(template)
    tools = tools_to_offer(request) if tool_format else []
    prompt = render_prompt(request.messages, template, tools=tools, thinking_off=request.thinking_off)
    return PromptPlan(
        prompt=prompt,
        notices=(Status(TEXT_ONLY_NOTICE),) if carries_images(request.messages) else (),
        tool_parser=ToolCallParser(tool_format) if tool_format and tools else None,
        thinking_closed=request.thinking_off and template in CHAT_TEMPLATES_THINKING_OFF,
    )
