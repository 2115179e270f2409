"""The adapter for OpenAI-compatible servers: vLLM, SGLang (`kt run`), transformers serve.

Built on the `openai` package's AsyncOpenAI, which Open WebUI already ships,
so that nothing blocks Open WebUI's event loop and the request, auth, error
shapes and timeouts are the SDK's well-tested ones. The stream itself is read
raw (`with_streaming_response`) and decoded with our SSE decoder and
`json.loads`: the SDK's per-chunk pydantic `construct` cost about 0.3 ms per
token, three quarters of the relay's CPU (bench/run.py, profile of path (d)).

Reasoning arrives three ways and all become the same events: vLLM's
`reasoning_content` (≤ 0.15) or `reasoning` (≥ 0.11.1) delta fields, passed
through untouched, or raw text in `content` with or without `<think>`, which
goes through the think splitter.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator

import httpx
import openai

from backend_adapters.backend_config import BackendConfig
from backend_adapters.chat_request import ChatRequest
from backend_adapters.events import Content, Event, Finish, Reasoning, Usage
from backend_adapters.model_families import starts_in_thinking
from backend_adapters.replicas import models_of_replicas, openai_base_url, stream_from_replicas
from backend_adapters.settle import settled
from backend_adapters.sse import aiter_sse
from backend_adapters.think_splitter import ThinkSplitter

# Caches, not request state: clients keep connection pools warm.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)


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
            http_client=openai.DefaultAsyncHttpxClient(verify=config.verify_tls),
        )
    return client


def reasoning_of(delta: dict) -> str | None:
    """vLLM ≤ 0.15 sends `reasoning_content`, ≥ 0.11.1 `reasoning`, some both: read one, never add them."""
    return delta.get("reasoning_content") or delta.get("reasoning")


class OpenAICompatAdapter:
    """Streams chat completions from one deployment (one or more replica URLs)."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config

    async def list_models(self) -> list[str]:
        """Model ids from `/v1/models` of every replica."""

        async def fetch(url: str) -> list[str]:
            client = client_for(url, self.config).with_options(timeout=min(self.config.connect_timeout, 5.0))
            return [model.id for model in (await client.models.list()).data]

        return await models_of_replicas(self.config, "openai", fetch)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        config = self.config
        splitter = ThinkSplitter(starts_in_thinking(request.model, config.think_start))

        async def send(url: str) -> httpx.Response:
            opening = client_for(url, config).chat.completions.with_streaming_response.create(
                model=request.model,
                messages=request.messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                extra_body=request.extra or None,
                **request.params,
            )
            response = await opening.__aenter__()  # HTTP error statuses raise the SDK's errors here
            return response.http_response

        async for event in stream_from_replicas(
            config,
            request.model,
            waiting="Connecting to {host}…",
            send=send,
            events=lambda response, ctx: settled(self._chunks(response, splitter), splitter, ctx),
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
            finish = choice.get("finish_reason") or finish
        yield Finish(finish)
