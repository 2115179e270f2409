"""What a pipe forwards from Open WebUI's request body, and what it leaves out.

Open WebUI's body carries its own bookkeeping (chat ids, features, files) next
to the OpenAI fields; backends reject or misread unknown keys, so only known
sampling parameters travel. Earlier answers are cleaned of thinking, because
R1's authors advise against sending it back and it wastes the context window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

OPENAI_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "response_format",
    "n",
)
EXTRA_PARAMS = (
    "top_k",
    "min_p",
    "repetition_penalty",
    "typical_p",
    "min_tokens",
    "length_penalty",
    "chat_template_kwargs",
    "thinking_token_budget",
    "reasoning_effort",
)

_THINKING_IN_HISTORY = re.compile(
    r"<details\s+type=\"reasoning\"[^>]*>.*?</details>|<think>.*?</think>|^.*?</think>", re.DOTALL
)


def strip_thinking(text: str) -> str:
    """An earlier answer without its thinking, however it was stored."""
    return _THINKING_IN_HISTORY.sub("", text).strip()


def _clean_message(message: dict) -> dict:
    if message.get("role") == "assistant" and isinstance(message.get("content"), str):
        return {**message, "content": strip_thinking(message["content"])}
    return message


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn for a backend, in OpenAI terms."""

    model: str
    messages: list[dict]
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    tools: list[dict] = field(default_factory=list)
    """OpenAI-shaped tool definitions (`{"type": "function", "function": {...}}`); empty when the chat has none."""
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None

    @property
    def max_tokens(self) -> int | None:
        value = self.params.get("max_tokens") or self.params.get("max_completion_tokens")
        return int(value) if value else None

    @property
    def thinking_off(self) -> bool:
        """The chat asked the model not to think: Qwen3's `chat_template_kwargs.enable_thinking = false`,
        set by r1relay's thinking toggle and for background tasks; prompt servers prefill an empty thinking block."""
        kwargs = self.extra.get("chat_template_kwargs")
        return isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False

    @classmethod
    def from_body(cls, body: dict, model: str) -> ChatRequest:
        """`model` is the backend's id, without Open WebUI's `function_id.` prefix."""
        params = {key: body[key] for key in OPENAI_PARAMS if body.get(key) is not None}
        extra = {key: body[key] for key in EXTRA_PARAMS if body.get(key) is not None}
        messages = [_clean_message(m) for m in body.get("messages", [])]
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        return cls(
            model=model,
            messages=messages,
            params=params,
            extra=extra,
            tools=tools,
            tool_choice=body.get("tool_choice") if tools else None,
            parallel_tool_calls=body.get("parallel_tool_calls") if tools else None,
        )


def backend_model_id(open_webui_model: str) -> str:
    """`r1relay_vllm.deepseek-ai/DeepSeek-R1` → `deepseek-ai/DeepSeek-R1` (function ids have no dots)."""
    return open_webui_model.split(".", 1)[1] if "." in open_webui_model else open_webui_model
