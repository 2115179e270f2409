"""Per-chat thinking controls applied to Open WebUI's body before it becomes a ChatRequest.

Three sources, most specific first: the chat's own advanced parameters
(`reasoning_effort`, a custom `thinking_token_budget`), the user's valves, the
admin's valves. Background tasks (titles, tags, follow-ups) ask the model not to
think at all, `chat_template_kwargs.enable_thinking = false`, the same switch the
thinking toggle filter sets: a title needs no minute of reasoning.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Effort = Literal["default", "low", "medium", "high"]
EFFORT_CHOICES = {"input": {"type": "select", "options": ["default", "low", "medium", "high"]}}


class ThinkingValves(BaseModel):
    """Admin defaults, mixed into a pipe's Valves."""

    THINKING_BUDGET: int = Field(
        default=0,
        ge=0,
        description="Most thinking tokens per answer, sent as vLLM's thinking_token_budget; 0 = the server's default.",
    )
    REASONING_EFFORT: Effort = Field(
        default="default",
        description="reasoning_effort sent to servers that take it (gpt-oss, some templates); default = not sent.",
        json_schema_extra=EFFORT_CHOICES,
    )


class UserThinkingValves(BaseModel):
    """The same, per user; a chat's advanced parameters still win."""

    THINKING_BUDGET: int = Field(default=0, ge=0, description="Your own thinking-token budget per answer; 0 = the admin's.")
    REASONING_EFFORT: Effort = Field(
        default="default", description="Your own reasoning effort; default = the admin's.", json_schema_extra=EFFORT_CHOICES
    )


def without_thinking(body: dict) -> dict:
    """`body` asking for no thinking, other template kwargs kept."""
    kwargs = body.get("chat_template_kwargs")
    merged = {**kwargs} if isinstance(kwargs, dict) else {}
    merged["enable_thinking"] = False
    return {**body, "chat_template_kwargs": merged}


def _pick(*values: Any) -> Any:
    """The first value that is set (not 0, not "default", not None)."""
    return next((v for v in values if v not in (None, 0, "", "default")), None)


def with_thinking_controls(body: dict, valves: Any, user_valves: Any = None, task: str | None = None) -> dict:
    """The body a backend should get: the chat's own settings win, then the user's, then the admin's."""
    shaped = without_thinking(body) if task else dict(body)
    budget = _pick(body.get("thinking_token_budget"), getattr(user_valves, "THINKING_BUDGET", None), getattr(valves, "THINKING_BUDGET", None))
    effort = _pick(body.get("reasoning_effort"), getattr(user_valves, "REASONING_EFFORT", None), getattr(valves, "REASONING_EFFORT", None))
    if budget is not None and not task:
        shaped["thinking_token_budget"] = budget
    if effort is not None and not task:
        shaped["reasoning_effort"] = effort
    return shaped
