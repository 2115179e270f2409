"""
title: r1relay context fit
author: r1relay
version: 0.1.0
license: MIT
description: Keeps long chats inside a self-hosted model's context window (vLLM, KTransformers) by dropping the oldest turns, instead of the backend rejecting the whole chat.
required_open_webui_version: 0.10.2
"""

from collections.abc import Awaitable, Callable
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, Field

from backend_adapters.context_probe import ContextProbe
from backend_adapters.token_budget import estimate_tokens, fit_to_context

OWN_PIPE_PREFIX = "r1relay_"


def backend_model(model: dict | None, body_model: str) -> str:
    """The id the backend knows: an OpenAI connection's raw id, or a pipe model's id after its function prefix."""
    upstream = (model or {}).get("openai")
    if isinstance(upstream, dict) and isinstance(upstream.get("id"), str):
        return upstream["id"]
    if body_model.startswith(OWN_PIPE_PREFIX) and "." in body_model:
        return body_model.split(".", 1)[1]
    return body_model


def reported_context(model: dict | None) -> int | None:
    """`max_model_len` that Open WebUI already fetched from a vLLM connection's /v1/models."""
    upstream = (model or {}).get("openai")
    length = upstream.get("max_model_len") if isinstance(upstream, dict) else None
    return length if isinstance(length, int) and length > 0 else None


class Filter:
    class Valves(BaseModel):
        priority: int = Field(
            default=10, description="Order among filters; runs late so that other inlets' additions are counted."
        )
        MODELS: str = Field(
            default="",
            description="Model ids to fit, comma-separated, `*` wildcards allowed; empty = every model whose context length is known.",
        )
        BASE_URL: str = Field(
            default="",
            description="vLLM server to ask for context lengths (/v1/models) and exact token counts (/tokenize); empty = use what Open WebUI's connection reports and an estimate.",
        )
        API_KEY: str = Field(
            default="",
            description="Key for BASE_URL (vLLM's --api-key).",
            json_schema_extra={"input": {"type": "password"}},
        )
        MAX_CONTEXT: int = Field(
            default=0,
            ge=0,
            description="Context length in tokens when the backend does not report one; 0 = leave such models alone.",
        )
        RESERVE_TOKENS: int = Field(
            default=1024,
            ge=0,
            description="Tokens kept free for the answer when the request sets no max_tokens (at most a quarter of the context).",
        )

    def __init__(self) -> None:
        self.valves = self.Valves()
        self.probe = ContextProbe()  # caches per server and model only; no per-request state here

    def applies_to(self, names: list[str]) -> bool:
        patterns = [p.strip().lower() for p in self.valves.MODELS.replace("\n", ",").split(",") if p.strip()]
        return not patterns or any(fnmatchcase(n.lower(), p) for n in names for p in patterns)

    async def context_limit(self, model: dict | None, backend_id: str) -> int | None:
        length = reported_context(model)
        if length is None and self.valves.BASE_URL.strip():
            length = await self.probe.max_model_len(self.valves.BASE_URL, self.valves.API_KEY, backend_id)
        return length or self.valves.MAX_CONTEXT or None

    def counter(self, backend_id: str) -> Callable[[list[dict]], Awaitable[int]]:
        """vLLM's exact count when BASE_URL offers /tokenize, else the high-leaning estimate."""

        async def count(messages: list[dict]) -> int:
            if self.valves.BASE_URL.strip():
                exact = await self.probe.count_tokens(self.valves.BASE_URL, self.valves.API_KEY, backend_id, messages)
                if exact is not None:
                    return exact
            return estimate_tokens(messages)

        return count

    async def inlet(
        self,
        body: dict,
        __event_emitter__: Callable[[dict], Awaitable[Any]] | None = None,
        __model__: dict | None = None,
    ) -> dict:
        """Drops the oldest turns until the chat and the answer fit; one sentence if even the last message cannot."""
        messages = body.get("messages")
        body_model = str(body.get("model") or "")
        if not isinstance(messages, list) or not messages:
            return body
        backend_id = backend_model(__model__, body_model)
        if not self.applies_to([body_model, backend_id]):
            return body
        limit = await self.context_limit(__model__, backend_id)
        if not limit:
            return body
        asked = body.get("max_tokens") or body.get("max_completion_tokens")
        # An explicit max_tokens is honoured (vLLM rejects prompt + max_tokens > limit); the valve's default
        # is capped at a quarter of the context, so a small model is not refused for room nobody asked for.
        reserve = asked if isinstance(asked, int) and asked > 0 else min(self.valves.RESERVE_TOKENS, limit // 4)
        # A ContextOverflow propagates: Open WebUI shows an inlet's exception text as the chat's error.
        fit = await fit_to_context(messages, limit, reserve, self.counter(backend_id))
        if fit.dropped_turns:
            body["messages"] = fit.messages
            if __event_emitter__:
                turns = "turn" if fit.dropped_turns == 1 else "turns"
                description = (
                    f"Dropped the {fit.dropped_turns} oldest {turns} of this chat to fit the model's "
                    f"{limit}-token context window."
                )
                await __event_emitter__({"type": "status", "data": {"description": description, "done": True}})
        return body
