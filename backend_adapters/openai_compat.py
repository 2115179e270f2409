"""The adapter for OpenAI-compatible servers: vLLM, SGLang (`kt run`), transformers serve.

Built on the `openai` package's AsyncOpenAI, which Open WebUI already ships,
so that nothing blocks Open WebUI's event loop and the request, auth, error
shapes and timeouts are the SDK's well-tested ones. Requests go through the
client's low-level `post`/`get` (its documented way to reach any endpoint):
the typed resources (`client.chat…`) import the SDK's ~900 resource modules
on first use, 0.8 s of CPU that froze the loop at the first chat, and walk
every message through their type transform on each request. The stream itself
is read raw and decoded with our SSE decoder and `json.loads`: the SDK's
per-chunk pydantic `construct` cost about 0.3 ms per token, three quarters of
the relay's CPU (bench/run.py, profile of path (d)).

Reasoning arrives three ways and all become the same events: vLLM's
`reasoning_content` (≤ 0.15) or `reasoning` (≥ 0.11.1) delta fields, passed
through untouched, or raw text in `content` with or without `<think>`, which
goes through the think splitter.

Tool calls travel both ways in OpenAI's shape: the chat's `tools` go out (unless
the server refused them lately, see tool_support.py), streamed `delta.tool_calls`
come back as ToolCall events for Open WebUI to run.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator

import httpx
import openai

from backend_adapters.aiohttp_transport import AiohttpTransport
from backend_adapters.backend_config import BackendConfig
from backend_adapters.chat_request import ChatRequest
from backend_adapters.errors import ErrorContext, body_message, safe_url
from backend_adapters.events import Content, Event, Finish, Reasoning, Status, ToolCall, Usage
from backend_adapters.model_families import always_thinks, starts_in_thinking
from backend_adapters.replicas import models_of_replicas, openai_base_url, stream_from_replicas
from backend_adapters.settle import settled
from backend_adapters.sse import aiter_sse
from backend_adapters.think_splitter import ThinkSplitter
from backend_adapters.tool_support import ToolsMode, refuses_tools, remember_no_tools, send_tools, tools_off_notice

# Caches, not request state: clients keep connection pools warm.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)


def fast_transport(verify: bool) -> dict[str, AiohttpTransport]:
    """aiohttp sockets under the SDK, unless it is built on httpx2 (openai ≥ 3), whose transports differ."""
    return {"transport": AiohttpTransport(verify)} if issubclass(openai.DefaultAsyncHttpxClient, httpx.AsyncClient) else {}


def client_for(url: str, config: BackendConfig) -> openai.AsyncOpenAI:
    key = (url, config.api_key, config.connect_timeout, config.read_timeout, config.verify_tls)
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = openai.AsyncOpenAI(
            base_url=openai_base_url(url),
            api_key=config.api_key or "EMPTY",
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(verify=config.verify_tls, **fast_transport(config.verify_tls)),
        )
    return client


def reasoning_of(delta: dict) -> str | None:
    """vLLM ≤ 0.15 sends `reasoning_content`, ≥ 0.11.1 `reasoning`, some both: read one, never add them."""
    return delta.get("reasoning_content") or delta.get("reasoning")


def tool_calls_of(delta: dict) -> list[ToolCall]:
    """`delta.tool_calls` as events: vLLM's first piece of a call has `id`, `type`, `function.name`
    (arguments often absent), later pieces only `index` and more `function.arguments`."""
    calls = []
    for position, call in enumerate(delta.get("tool_calls") or []):
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments")
        calls.append(
            ToolCall(
                index=call["index"] if isinstance(call.get("index"), int) else position,
                arguments=arguments if isinstance(arguments, str) else (json.dumps(arguments) if arguments else ""),
                id=call.get("id") or None,
                name=function.get("name") or None,
            )
        )
    return calls


THINKS_ANYWAY = "{model} always thinks: its chat template cannot turn the thinking off, so the thinking toggle has no effect."


class OpenAICompatAdapter:
    """Streams chat completions from one deployment (one or more replica URLs)."""

    def __init__(self, config: BackendConfig, tools: ToolsMode = "auto") -> None:
        self.config = config
        self.tools = tools

    async def list_models(self) -> list[str]:
        """Model ids from `/v1/models` of every replica."""

        async def fetch(url: str) -> list[str]:
            client = client_for(url, self.config).with_options(timeout=min(self.config.connect_timeout, 5.0))
            listing = await client.get("/models", cast_to=httpx.Response)
            return [str(model["id"]) for model in listing.json().get("data", []) if isinstance(model, dict)]

        return await models_of_replicas(self.config, "openai", fetch)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        config = self.config
        splitter = ThinkSplitter(starts_in_thinking(request.model, config.think_start))
        notices: list[Status] = []  # said once the server has answered: which request went out decides them
        if request.thinking_off and always_thinks(request.model):
            yield Status(THINKS_ANYWAY.format(model=request.model.rsplit("/", 1)[-1]))

        async def open_stream(url: str, with_tools: bool) -> httpx.Response:
            tool_fields: dict = {}
            if with_tools:
                tool_fields["tools"] = request.tools
                if request.tool_choice is not None:
                    tool_fields["tool_choice"] = request.tool_choice
                if request.parallel_tool_calls is not None:
                    tool_fields["parallel_tool_calls"] = request.parallel_tool_calls
            body = {
                "model": request.model,
                "messages": request.messages,
                "stream": True,
                "stream_options": {"include_usage": True},
                **request.params,
                **tool_fields,
                **request.extra,
            }
            # HTTP error statuses raise the SDK's errors here; the body is left unread for us to stream
            return await client_for(url, config).post("/chat/completions", body=body, cast_to=httpx.Response, stream=True)

        async def send(url: str) -> httpx.Response:
            with_tools = bool(request.tools) and send_tools(url, self.tools)
            try:
                return await open_stream(url, with_tools)
            except openai.APIStatusError as exc:
                refused = refuses_tools(exc.status_code, body_message(exc.body, exc.message))
                if not (with_tools and self.tools == "auto" and refused):
                    raise
            remember_no_tools(url)  # retried once without tools; later chats skip the failed try
            notices.append(Status(tools_off_notice(safe_url(url))))
            return await open_stream(url, False)

        async def events(response: httpx.Response, ctx: ErrorContext) -> AsyncIterator[Event]:
            for notice in notices:
                yield notice
            async for event in settled(self._chunks(response, splitter), splitter, ctx):
                yield event

        async for event in stream_from_replicas(
            config, request.model, waiting="Connecting to {host}…", send=send, events=events
        ):
            yield event

    async def _chunks(self, response: httpx.Response, splitter: ThinkSplitter) -> AsyncIterator[Event]:
        """The events of one OpenAI-style stream; raises on a broken or failed stream."""
        structured = False  # the server separates reasoning itself: content is all answer
        finish: str | None = None
        async for sse in aiter_sse(response.aiter_bytes()):
            if sse.data.startswith("[DONE]"):
                break
            if not sse.data.strip():
                continue
            chunk = json.loads(sse.data)
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):  # vLLM's error after the 200, as the SDK reports it
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else None
                raise openai.APIError(message or "An error occurred during streaming", response.request, body=error)
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                yield Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
            choices = chunk.get("choices")
            if not choices or not isinstance(choices[0], dict):
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            reasoning = reasoning_of(delta)
            if reasoning:
                structured = True
                yield Reasoning(reasoning)
            content = delta.get("content")
            if content:
                if structured:
                    yield Content(content)
                else:
                    for event in splitter.feed(content):
                        yield event
            for call in tool_calls_of(delta):  # after the text of the same delta: thinking comes before the call
                yield call
            finish = choice.get("finish_reason") or finish
        yield Finish(finish)
