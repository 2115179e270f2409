"""The adapter for small prompt servers (Flask, FastAPI): `POST /generate` and an SSE `/stream`.

These apps take one prompt string, not a chat, so the chat is rendered here
with a selectable template (DeepSeek-R1's own by default, which pre-fills
`<think>\\n`, so the model's output is bare `reasoning…</think>answer` and the
think splitter starts inside the thinking). Paths, the HTTP method, the auth
header and the JSON field names are settings, because every hand-written
server names them a little differently; the defaults are the seed API's.

The stream sends raw text pieces (`data: <token>`, a multi-line piece as
several `data:` lines), so it is decoded with our SSE decoder, never line by
line. httpx is used directly, asynchronously, and the response is closed in a
`finally`, so Stop in Open WebUI closes the connection and a well-behaved
server stops generating.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import httpx

from backend_adapters.backend_config import BackendConfig
from backend_adapters.chat_request import ChatRequest
from backend_adapters.chat_templates import CHAT_TEMPLATES_PREFILLING_THINK
from backend_adapters.errors import BackendError, body_message, safe_url
from backend_adapters.events import Error, Event, Finish, Usage
from backend_adapters.http_backend import one_line, pooled_client
from backend_adapters.model_families import starts_in_thinking
from backend_adapters.prompt_plan import plan_prompt
from backend_adapters.replicas import stream_from_replicas
from backend_adapters.settle import settled
from backend_adapters.sse import aiter_sse
from backend_adapters.think_splitter import ThinkSplitter
from backend_adapters.tool_stream import with_tool_calls

# Keys a JSON-encoded stream piece may carry its text under (some servers send `data: {"token": …}`).
PIECE_KEYS = ("token", "text", "content", "delta")


@dataclass(frozen=True)
class PromptServerSettings:
    """How one prompt server is spoken to (the valves beyond the connection)."""

    template: str = "deepseek-r1"
    use_stream: bool = True
    generate_path: str = "/generate"
    stream_path: str = "/stream"
    stream_method: Literal["POST", "GET"] = "POST"
    auth_header: str = "X-API-Key"
    prompt_field: str = "prompt"
    response_field: str = "response"


def server_endpoint(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


def generation_fields(request: ChatRequest) -> dict:
    """The seed API's knobs, sent only when the chat sets them (the server's defaults otherwise)."""
    fields: dict = {}
    max_tokens = request.max_tokens
    if max_tokens:
        fields["max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        if request.params.get(name) is not None:
            fields[name] = request.params[name]
    stop = request.params.get("stop")
    if stop:
        fields["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return fields


def stream_piece(data: str, response_field: str) -> str:
    """The text of one stream event: raw text, or a JSON object holding it."""
    if data.startswith("{"):
        try:
            obj = json.loads(data)
        except ValueError:
            return data
        if isinstance(obj, dict):
            if obj.get("error"):
                raise BackendError(f"mid-answer: {one_line(body_message(obj) or 'no details')}")
            for key in (response_field, *PIECE_KEYS):
                if isinstance(obj.get(key), str):
                    return obj[key]
    return data


class PromptServerAdapter:
    """Streams answers from a prompt-in, text-out server (one or more replica URLs)."""

    def __init__(self, config: BackendConfig, settings: PromptServerSettings) -> None:
        self.config = config
        self.settings = settings

    async def list_models(self) -> list[str]:
        """These servers have no model list: the MODELS valve is it."""
        if self.config.models:
            return list(self.config.models)
        raise BackendError("Prompt servers have no model list.")

    def _starts_in_thinking(self, model: str) -> bool:
        if self.config.think_start == "auto" and self.settings.template in CHAT_TEMPLATES_PREFILLING_THINK:
            return True
        return starts_in_thinking(model, self.config.think_start)

    def _headers(self) -> dict[str, str]:
        key = self.config.api_key
        if not key:
            return {}
        name = self.settings.auth_header.strip() or "X-API-Key"
        if name.lower() == "authorization" and not key.lower().startswith("bearer "):
            key = f"Bearer {key}"
        return {name: key}

    def _build(self, client: httpx.AsyncClient, url: str, prompt: str, request: ChatRequest) -> httpx.Request:
        s = self.settings
        fields = {s.prompt_field: prompt, **generation_fields(request)}
        if not s.use_stream:
            return client.build_request("POST", server_endpoint(url, s.generate_path), json=fields, headers=self._headers())
        headers = {**self._headers(), "Accept": "text/event-stream"}
        if s.stream_method == "GET":
            return client.build_request("GET", server_endpoint(url, s.stream_path), params=fields, headers=headers)
        return client.build_request("POST", server_endpoint(url, s.stream_path), json=fields, headers=headers)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        config = self.config
        client = pooled_client(config)
        try:
            plan = plan_prompt(request, self.settings.template)  # tools, thinking off, notices (issue 9)
        except (KeyError, ValueError) as exc:
            yield Error(f"The PROMPT_TEMPLATE setting cannot render this chat: {exc}.")
            return
        prompt = plan.prompt
        for notice in plan.notices:
            yield notice
        splitter = ThinkSplitter(not plan.thinking_closed and self._starts_in_thinking(request.model))

        async def send(url: str) -> httpx.Response:
            return await client.send(self._build(client, url, prompt, request), stream=True)

        events = stream_from_replicas(
            config,
            request.model,
            waiting="Waiting for {host}…",
            send=send,
            events=lambda response, ctx: settled(self._pieces(response, splitter, safe_url(ctx.url)), splitter, ctx),
        )
        if plan.tool_parser is not None:
            events = with_tool_calls(events, plan.tool_parser)
        async for event in events:
            yield event

    async def _pieces(self, response: httpx.Response, splitter: ThinkSplitter, where: str) -> AsyncIterator[Event]:
        """The events of one answer, streamed or whole; raises on a broken or failed answer."""
        finish: str | None = None
        if self.settings.use_stream:
            async for sse in aiter_sse(response.aiter_bytes(), json_lines=False):
                if sse.event == "error":
                    raise BackendError(f"The backend at {where} failed mid-answer: {one_line(sse.data or 'no details')}")
                if sse.data == "[DONE]":
                    break
                try:
                    piece = stream_piece(sse.data, self.settings.response_field)
                except BackendError as exc:
                    raise BackendError(f"The backend at {where} failed {exc}") from None
                for event in splitter.feed(piece):
                    yield event
        else:
            raw = await response.aread()
            try:
                obj = json.loads(raw)
            except ValueError:
                raise BackendError(f"The backend at {where} answered {self.settings.generate_path} with something other than JSON.") from None
            field = self.settings.response_field
            if not isinstance(obj, dict) or not isinstance(obj.get(field), str):
                raise BackendError(
                    f"The backend at {where} answered without a `{field}` text field; check the RESPONSE_FIELD setting."
                )
            for event in splitter.feed(obj[field]):
                yield event
            if obj.get("tokens_used") is not None or obj.get("prompt_tokens") is not None:
                yield Usage(obj.get("prompt_tokens"), obj.get("tokens_used"))
            finish = obj.get("finish_reason") if isinstance(obj.get("finish_reason"), str) else None
        yield Finish(finish)
