"""The adapter for KTransformers servers: the built-in one, SGLang's `kt run`, and hand-written wrappers.

All three speak "OpenAI-ish" on `/v1/chat/completions`, each bent differently:
the built-in server sends no role chunk, reasoning raw in `content` (opening
with `"<think>\\n"` under `--force_think`, else with no opening tag), flat
`{"object":"error",…}` errors and a plain-text 500 for a bad API key; hand-
written FastAPI wrappers answer even a streaming request with ONE JSON
completion. The openai SDK hides the response's content type and silently
yields nothing for a JSON body, so this adapter uses httpx directly: it looks
at the content type, decodes SSE with our own decoder, and turns either shape
into the same events. Reasoning fields (`reasoning_content`, SGLang's parser)
pass through; raw text goes through the think splitter.

Generation on these servers does not stop when the client leaves, but closing
the connection is still what frees the client's slot and lets the server's
`check_client_link` stop sending, so the HTTP response is closed in a
`finally` that also runs on cancellation.

Tools: these servers render the chat with the model's own template and ignore
`tools`, and wrappers take `content: str` only. So the tool section goes into
the system message in the model family's words, earlier calls and their
results become plain assistant/user text (backend_adapters/tool_prompts.py),
and the call markup in the reply is parsed into tool calls.

Thinking off: `chat_template_kwargs.enable_thinking = false` travels with the
request (SGLang and Qwen3's template honour it) and `force_think` is sent
false; DeepSeek-R1 has no way to skip its thinking through a messages API, so
for it the user is told so in one status line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Literal

import httpx

from backend_adapters.backend_config import BackendConfig
from backend_adapters.chat_request import ChatRequest
from backend_adapters.errors import BackendError, ErrorContext, body_message, safe_url
from backend_adapters.events import Content, Event, Finish, Reasoning, Status, Usage
from backend_adapters.http_backend import http_status_error, media_type, one_line, pooled_client
from backend_adapters.model_families import starts_in_thinking
from backend_adapters.replicas import models_of_replicas, openai_base_url, stream_from_replicas
from backend_adapters.settle import settled
from backend_adapters.sse import aiter_sse
from backend_adapters.text_only import TEXT_ONLY_NOTICE, carries_images
from backend_adapters.think_splitter import CLOSE_TAG, OPEN_TAG, ThinkSplitter
from backend_adapters.tool_call_parser import ToolCallParser, ToolFormat, tool_format_for_model
from backend_adapters.tool_prompts import tool_turns_as_text, with_tool_section
from backend_adapters.tool_stream import tools_to_offer, with_tool_calls

# The text a bare `assert` failure becomes behind Starlette: KTransformers' API-key check.
KT_KEY_HINT = "KTransformers answers a wrong or missing API key this way, so check the API_KEY valve"
KT_THINKS_ANYWAY = "This model cannot skip its thinking on this backend; it will think first."
KtToolFormat = Literal["auto", "deepseek", "hermes", "off"]



def kt_headers(config: BackendConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}


def text_only_messages(messages: list[dict]) -> list[dict]:
    """KTransformers' `Message.content` is a plain string: list content (text parts) is joined."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            text = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            message = {**message, "content": text}
        elif content is None:
            message = {**message, "content": ""}
        out.append(message)
    return out


def inline_error(obj: dict) -> str | None:
    """An error sent with a 200: `{"error":…}` (OpenAI-style) or `{"object":"error",…}` (KTransformers)."""
    if obj.get("error") or obj.get("object") == "error":
        return body_message(obj) or "no details"
    return None


async def kt_status_error(response: httpx.Response, ctx: ErrorContext) -> str:
    """Like `http_status_error`, naming the likely cause of KTransformers' bare plain-text 500."""
    message = await http_status_error(response, ctx)
    if response.status_code == 500 and media_type(response) == "text/plain":
        message = message.rstrip(".") + f"; {KT_KEY_HINT}."
    return message


def completion_parts(obj: dict) -> tuple[str, str]:
    """(reasoning field, raw text) of one non-streamed answer, whatever its shape.

    Hand-written servers return OpenAI's chat.completion, a legacy completion,
    or their own `{"response": …}`-like object.
    """
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        message = choice.get("message") or {}
        if isinstance(message, dict) and ("content" in message or "reasoning_content" in message):
            reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
            return str(reasoning), str(message.get("content") or "")
        return "", str(choice.get("text") or "")
    message = obj.get("message")
    if isinstance(message, dict):
        return str(message.get("thinking") or ""), str(message.get("content") or "")
    for key in ("response", "text", "content", "generated_text", "output", "answer"):
        if isinstance(obj.get(key), str):
            return "", obj[key]
    return "", ""


def opens_inside_thinking(text: str) -> bool:
    """A whole answer with `</think>` and no `<think>` before it began inside the thinking (force_think wrappers)."""
    end = text.find(CLOSE_TAG)
    return end >= 0 and OPEN_TAG not in text[:end]


def usage_of(obj: dict) -> Usage | None:
    usage = obj.get("usage")
    if isinstance(usage, dict):
        return Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    if obj.get("done") and ("eval_count" in obj or "prompt_eval_count" in obj):  # Ollama routes
        return Usage(obj.get("prompt_eval_count"), obj.get("eval_count"))
    return None


class KTransformersAdapter:
    """Streams chat completions from a KTransformers deployment (one or more replica URLs)."""

    def __init__(self, config: BackendConfig, force_think: bool = False, tool_format: KtToolFormat = "auto") -> None:
        self.config = config
        self.force_think = force_think
        self.tool_format = tool_format

    def _tool_format(self, model: str) -> ToolFormat | None:
        if self.tool_format == "off":
            return None
        return tool_format_for_model(model) if self.tool_format == "auto" else self.tool_format

    def _starts_in_thinking(self, model: str, thinking_off: bool = False) -> bool:
        if self.force_think and not thinking_off and self.config.think_start != "no":
            return True  # `<think>\n` was pre-filled, by the server or by us
        return starts_in_thinking(model, self.config.think_start)

    async def list_models(self) -> list[str]:
        """Ids from `/v1/models` of every replica (a list, or `{"data": [...]}` in newer releases)."""
        client = pooled_client(self.config)

        async def fetch(url: str) -> list[str]:
            response = await client.get(
                f"{openai_base_url(url)}/models",
                headers=kt_headers(self.config),
                timeout=httpx.Timeout(10.0, connect=self.config.connect_timeout),
            )
            if response.status_code >= 400:
                raise BackendError(await kt_status_error(response, ErrorContext(url=url, secrets=self.config.secrets)))
            body = response.json()
            entries = body.get("data", []) if isinstance(body, dict) else body
            ids = [entry.get("id") or entry.get("name") for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []
            return [str(model_id) for model_id in ids if model_id]

        return await models_of_replicas(self.config, "ktransformers", fetch)

    def messages(self, request: ChatRequest) -> list[dict]:
        """The chat as these servers take it: strings only, tools and tool turns written as text."""
        messages = request.messages
        tool_format = self._tool_format(request.model)
        if tool_format is not None:
            messages = tool_turns_as_text(messages, tool_format)
            tools = tools_to_offer(request)
            if tools:
                messages = with_tool_section(messages, tool_format, tools)
        return text_only_messages(messages)

    def payload(self, request: ChatRequest) -> dict:
        body: dict = {
            "model": request.model,
            "messages": self.messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
            **request.params,
            **request.extra,
        }
        if request.thinking_off:
            body["force_think"] = False  # hand-written servers default it to true
        elif self.force_think:
            body["force_think"] = True  # read by hand-written servers; the built-in one takes --force_think
        return body

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        client = pooled_client(self.config)
        splitter = ThinkSplitter(self._starts_in_thinking(request.model, request.thinking_off))
        if carries_images(request.messages):
            yield Status(TEXT_ONLY_NOTICE)
        if request.thinking_off and starts_in_thinking(request.model, self.config.think_start):
            yield Status(KT_THINKS_ANYWAY)  # R1, QwQ, Qwen3 -Thinking: no switch reaches their template
        tool_format = self._tool_format(request.model)

        async def send(url: str) -> httpx.Response:
            outgoing = client.build_request(
                "POST", f"{openai_base_url(url)}/chat/completions", json=self.payload(request), headers=kt_headers(self.config)
            )
            return await client.send(outgoing, stream=True)

        events = stream_from_replicas(
            self.config,
            request.model,
            waiting="Waiting for {host} (a long prompt can take minutes before the first token)…",
            send=send,
            events=lambda response, ctx: settled(self._body(response, splitter, ctx), splitter, ctx),
            refusal=kt_status_error,
        )
        if tool_format is not None and tools_to_offer(request):
            events = with_tool_calls(events, ToolCallParser(tool_format))
        async for event in events:
            yield event

    async def _body(self, response: httpx.Response, splitter: ThinkSplitter, ctx: ErrorContext) -> AsyncIterator[Event]:
        """A stream, or a hand-written server's one JSON answer to a streaming request."""
        if media_type(response) == "application/json":
            events = self._json_body(await response.aread(), splitter, ctx)
        else:
            events = self._sse_body(response, splitter, ctx)
        async for event in events:
            yield event

    async def _json_body(self, raw: bytes, splitter: ThinkSplitter, ctx: ErrorContext) -> AsyncIterator[Event]:
        """A hand-written server's one JSON answer to a streaming request, as the same events."""
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise BackendError(f"The backend at {safe_url(ctx.url)} answered with JSON that holds no answer text.")
        error = inline_error(obj)
        if error is not None:
            raise BackendError(f"The backend at {safe_url(ctx.url)} reported an error: {one_line(error)}")
        reasoning, text = completion_parts(obj)
        if not reasoning and not text:
            raise BackendError(f"The backend at {safe_url(ctx.url)} answered with JSON that holds no answer text.")
        if reasoning:
            yield Reasoning(reasoning)
            if text:
                yield Content(text)
        elif not splitter.thinking and opens_inside_thinking(text):
            # Hand-written wrappers pre-fill `<think>` by default (force_think) whatever the model's name says.
            whole = ThinkSplitter(starts_in_thinking=True)
            for event in [*whole.feed(text), *whole.flush()]:
                yield event
        else:
            for event in splitter.feed(text):
                yield event
        usage = usage_of(obj)
        if usage is not None:
            yield usage
        choices = obj.get("choices") or [{}]
        yield Finish(choices[0].get("finish_reason") if isinstance(choices[0], dict) else None)

    async def _sse_body(self, response: httpx.Response, splitter: ThinkSplitter, ctx: ErrorContext) -> AsyncIterator[Event]:
        """OpenAI-style chunks (built-in server, SGLang) or NDJSON lines (Ollama routes)."""
        structured = False  # the server separates reasoning itself: content is all answer
        finish: str | None = None
        async for sse in aiter_sse(response.aiter_bytes()):
            if sse.data.strip() == "[DONE]":
                break
            if not sse.data.strip():
                continue
            obj = json.loads(sse.data)
            if not isinstance(obj, dict):
                continue
            error = inline_error(obj)
            if error is not None:
                raise BackendError(f"The backend at {safe_url(ctx.url)} failed mid-answer: {one_line(error)}")
            usage = usage_of(obj)
            if usage is not None:
                yield usage
            reasoning, text = "", ""
            choices = obj.get("choices")
            if isinstance(choices, list):
                if not choices or not isinstance(choices[0], dict):
                    continue
                choice = choices[0]
                delta = choice.get("delta") or {}
                reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
                text = delta.get("content") or choice.get("text") or ""
                finish = choice.get("finish_reason") or finish
            else:
                reasoning, text = completion_parts(obj)
                if obj.get("done") is True:
                    finish = finish or "stop"
            if reasoning:
                structured = True
                yield Reasoning(reasoning)
            if text:
                if structured:
                    yield Content(text)
                else:
                    for event in splitter.feed(text):
                        yield event
        yield Finish(finish)
