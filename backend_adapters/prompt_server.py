"""The adapter for small prompt servers (Flask, FastAPI): `POST /generate` and an SSE `/stream`.

These apps take one prompt string, not a chat, so the chat is rendered here
with a selectable template (DeepSeek-R1's own by default, which pre-fills
`<think>\\n`, so the model's output is bare `reasoning…</think>answer` and the
think splitter starts inside the thinking). Paths, the HTTP method, the auth
header and the JSON field names are settings, because every hand-written
server names them a little differently; the defaults are the seed API's.

The stream may be SSE (well-formed, or tokens written raw), plain text or
NDJSON (stream_shapes.py tells them apart), and a tutorial `/generate` may
send the prompt back in front of the answer (prompt_echo.py strips it).
A model's own Jinja template (CHAT_TEMPLATE) replaces the built-in ones.
httpx is used directly, asynchronously, and the response is closed in a
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
from backend_adapters.errors import BackendError, safe_url
from backend_adapters.events import Error, Event, Finish, Usage
from backend_adapters.http_backend import media_type, one_line, pooled_client
from backend_adapters.jinja_template import ChatTemplateError
from backend_adapters.model_families import starts_in_thinking
from backend_adapters.prompt_echo import EchoStripper
from backend_adapters.prompt_plan import plan_prompt
from backend_adapters.replicas import stream_from_replicas
from backend_adapters.settle import settled
from backend_adapters.stream_shapes import stream_pieces
from backend_adapters.think_splitter import OPEN_TAG, ThinkSplitter
from backend_adapters.tool_stream import with_tool_calls


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
    echo: Literal["auto", "strip", "keep"] = "auto"
    sse_style: Literal["auto", "strict", "raw-tokens"] = "auto"
    chat_template: str = ""  # the model's own Jinja template (or tokenizer_config.json, or its path); wins over `template`


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

    def _starts_in_thinking(self, model: str, prompt: str) -> bool:
        if self.config.think_start == "auto" and (
            prompt.rstrip().endswith(OPEN_TAG)  # the template pre-filled `<think>`, whichever template it is
            or (not self.settings.chat_template.strip() and self.settings.template in CHAT_TEMPLATES_PREFILLING_THINK)
        ):
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
            plan = plan_prompt(request, self.settings.template, self.settings.chat_template)  # tools, thinking off, notices (issue 9)
        except ChatTemplateError as exc:
            yield Error(str(exc))
            return
        except (KeyError, ValueError) as exc:
            yield Error(f"The PROMPT_TEMPLATE setting cannot render this chat: {exc}.")
            return
        prompt = plan.prompt
        for notice in plan.notices:
            yield notice
        splitter = ThinkSplitter(not plan.thinking_closed and self._starts_in_thinking(request.model, prompt))

        async def send(url: str) -> httpx.Response:
            return await client.send(self._build(client, url, prompt, request), stream=True)

        events = stream_from_replicas(
            config,
            request.model,
            waiting="Waiting for {host}…",
            send=send,
            events=lambda response, ctx: settled(
                self._pieces(response, splitter, safe_url(ctx.url), EchoStripper(prompt, plan.special_tokens, self.settings.echo)),
                splitter,
                ctx,
            ),
        )
        if plan.tool_parser is not None:
            events = with_tool_calls(events, plan.tool_parser)
        async for event in events:
            yield event

    async def _pieces(self, response: httpx.Response, splitter: ThinkSplitter, where: str, echo: EchoStripper) -> AsyncIterator[Event]:
        """The events of one answer, streamed or whole; raises on a broken or failed answer."""
        finish: str | None = None
        if self.settings.use_stream:
            shapes = stream_pieces(response.aiter_bytes(), media_type(response), self.settings.sse_style, self.settings.response_field)
            async for piece in shapes:
                if piece.error is not None:
                    raise BackendError(f"The backend at {where} failed mid-answer: {one_line(piece.error)}")
                text = echo.feed(piece.text)
                for event in splitter.feed(text) if text else ():
                    yield event
                finish = piece.finish or finish
                if piece.done:
                    break
            for event in splitter.feed(echo.flush()):
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
            for event in splitter.feed(echo.feed(obj[field]) + echo.flush()):
                yield event
            if obj.get("tokens_used") is not None or obj.get("prompt_tokens") is not None:
                yield Usage(obj.get("prompt_tokens"), obj.get("tokens_used"))
            finish = obj.get("finish_reason") if isinstance(obj.get("finish_reason"), str) else None
        yield Finish(finish)
