"""An emulator of vLLM's OpenAI-compatible server (0.11 – 0.33), faithful to its wire format.

Sources (vllm-project/vllm):
- entrypoints/openai/serving_chat.py `chat_completion_stream_generator`: a first
  role chunk `{"role":"assistant","content":""}`, then one chunk per decoded
  delta, `finish_reason` on the last text chunk, a usage chunk with
  `"choices":[]` when `stream_options.include_usage`, then `data: [DONE]`;
  an error raised after the 200 is sent as `data: {"error":{…}}` + `[DONE]`.
- entrypoints/openai/protocol.py `ErrorResponse` `{"error":{"message","type","param","code"}}`;
  `DeltaMessage.reasoning_content` (≤ 0.11.0), both `reasoning` and
  `reasoning_content` (0.11.1 – 0.15), `reasoning` only (≥ 0.16);
  chunks are dumped with `exclude_unset`, so unset fields are absent.
- reasoning/deepseek_r1_reasoning_parser.py: `<think>`/`</think>` tokens are
  dropped; text before `</think>` is reasoning (all of it if never closed);
  a delta holding `</think>` may carry reasoning and content at once.
- Tool calls (`--enable-auto-tool-choice --tool-call-parser hermes|deepseek_v3`):
  tool_parsers/hermes_tool_parser.py and deepseekv3_tool_parser.py
  `extract_tool_calls_streaming` send a call's first delta as
  `DeltaToolCall(index, type="function", id=make_tool_call_id(), function={"name": …})`
  (arguments dumped with exclude_none, so usually absent), then deltas of
  `{"index", "function": {"arguments": piece}}`; serving_chat.py runs the
  reasoning parser first (thinking before the call stays `reasoning`) and ends
  with `finish_reason: "tool_calls"`. Without those flags, protocol.py
  defaults `tool_choice` to "auto" when `tools` are sent and serving_chat.py
  refuses with 400 `"auto" tool choice requires --enable-auto-tool-choice and
  --tool-call-parser to be set`. Non-streamed replies carry `message.tool_calls`.
- Qwen3's chat template with `chat_template_kwargs: {"enable_thinking": false}`
  puts an empty think block in the prompt: the model answers without thinking.
- entrypoints/openai/api_server.py: `--api-key` middleware answers 401
  `{"error":"Unauthorized"}`; `/health` 200 with an empty body; `/version`;
  `/v1/models` entries carry `max_model_len`; `/tokenize` returns `count`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from tests.emulators.server import Emulator, wait_or_disconnect

ReasoningField = Literal["none", "reasoning_content", "both", "reasoning"]
Fault = Literal[
    "none",
    "drop_mid_stream",  # close the socket after half the tokens, mid-chunk
    "stall",  # stop sending after half the tokens, keep the socket open
    "malformed_chunk",  # one chunk of broken JSON
    "error_chunk",  # vLLM's in-stream error after half the tokens
    "html_500",  # a proxy's HTML error page
    "status",  # answer `fault_status` with vLLM's JSON error
]

_TOKEN = re.compile(r"</?think>|\s+|[^\s<]+|<")

DEFAULT_SCRIPT = "Okay, the user greets me.\nI should greet back.\n</think>\n\nHello! How can I help you today?"
TOOLS_REFUSED = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'


def vllm_tokens(text: str) -> list[str]:
    """How the emulator cuts text into tokens: words, whitespace runs and whole tags, like a BPE would."""
    return _TOKEN.findall(text)


def count_prompt_tokens(messages: list[dict]) -> int:
    """The emulator's `/tokenize` count for a chat: content tokens plus a fixed 4 per message for the template."""
    total = 0
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        total += len(vllm_tokens(content)) + 4
    return total


def tool_results(messages: list[dict]) -> list[str]:
    """Contents of the `role: "tool"` messages after the last user message (a follow-up request)."""
    results: list[str] = []
    for message in messages:
        if message.get("role") == "user":
            results = []
        elif message.get("role") == "tool":
            results.append(str(message.get("content")))
    return results


def image_urls(messages: list[dict]) -> list[str]:
    return [
        (part.get("image_url") or {}).get("url", "")
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


def finish_reason(deltas: list[dict]) -> str:
    return "tool_calls" if any("tool_calls" in d for d in deltas) else "stop"


@dataclass
class VLLMEmulator(Emulator):
    """Mutable behaviour: tests set the fields, then send requests."""

    models: tuple[str, ...] = ("deepseek-ai/DeepSeek-R1",)
    reasoning_field: ReasoningField = "reasoning"
    script: str = DEFAULT_SCRIPT  # what the model "generates", R1-style (no opening tag)
    token_delay: float = 0.0
    token_rate: float = 0.0  # tokens/s on a fixed clock (no drift, no polling), for benchmarks; 0 = use token_delay
    write_size: int = 0  # > 0: every frame goes out in writes of this many bytes, each flushed apart
    prefix_with_prompt: bool = False  # the script starts with the last user message and a space (tells streams apart)
    api_key: str | None = None
    max_model_len: int = 8192
    fault: Fault = "none"
    fault_status: int = 500
    keep_alive: bool = False
    requests: list[dict] = field(default_factory=list)
    disconnects: list[float] = field(default_factory=list)
    refused_auth: list[str | None] = field(default_factory=list)  # Authorization headers of refused requests
    finished: int = 0
    emit_log: dict[str, list[float]] | None = None  # set to {}: wall-clock send time of each delta, by prompt (benchmarks)
    active: int = 0  # streams being sent right now
    peak_active: int = 0  # the most streams ever sent at once (what MAX_CONCURRENCY must bound)
    tool_call_parser: str | None = "hermes"  # None: started without --enable-auto-tool-choice (tools get a 400)
    tool_call: tuple[str, dict] | None = None  # (name, arguments) the model calls when offered a tool of that name
    tool_reasoning: str = "The user asks for the time. I should call the tool.\n"
    tool_answer: str = "I have the tool's result.\n</think>\n\nThe tool says: {result}"
    thinking_switch: bool = False  # the template honours enable_thinking=false (Qwen3), unlike R1's
    images: list[str] = field(default_factory=list)  # image_url parts received, in order


    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", lambda r: web.Response(status=200))
        app.router.add_get("/version", lambda r: web.json_response({"version": "0.11.2"}))
        app.router.add_post("/tokenize", self._tokenize)
        return app

    # ---- helpers ----
    @web.middleware
    async def _auth(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        if self.api_key and request.path.startswith("/v1"):
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                self.refused_auth.append(request.headers.get("Authorization"))
                return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    @staticmethod
    def error(status: int, message: str, err_type: str, param: str | None = None) -> web.Response:
        body = {"error": {"message": message, "type": err_type, "param": param, "code": status}}
        return web.json_response(body, status=status)

    @staticmethod
    def _prompt_prefix(body: dict) -> str:
        users = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
        return f"{users[-1]} " if users and isinstance(users[-1], str) else ""

    def _deltas(self, prefix: str = "", script: str | None = None) -> list[dict]:
        """The deltas vLLM would stream for `script`, with or without a reasoning parser."""
        tokens = vllm_tokens(prefix + (self.script if script is None else script))
        if self.reasoning_field == "none":
            return [{"content": t} for t in tokens]
        deltas: list[dict] = []
        in_reasoning = True  # the R1 parser treats all text before </think> as reasoning
        for token in tokens:
            if token == "<think>":
                continue
            if token == "</think>":
                in_reasoning = False
                continue
            if in_reasoning:
                if self.reasoning_field == "reasoning_content":
                    deltas.append({"reasoning_content": token})
                elif self.reasoning_field == "both":
                    deltas.append({"reasoning": token, "reasoning_content": token})
                else:
                    deltas.append({"reasoning": token})
            else:
                delta: dict = {"content": token}
                if self.reasoning_field == "both":
                    delta["reasoning_content"] = None
                deltas.append(delta)
        return deltas

    # ---- routes ----
    async def _models(self, request: web.Request) -> web.Response:
        created = int(time.time())
        data = [
            {
                "id": m,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": m,
                "parent": None,
                "max_model_len": self.max_model_len,
                "permission": [],
            }
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "messages" in body:
            count = count_prompt_tokens(body["messages"])
        else:
            count = len(vllm_tokens(body.get("prompt", "")))
        return web.json_response({"count": count, "max_model_len": self.max_model_len, "tokens": list(range(count))})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        model = body.get("model")
        if model not in self.models:
            return self.error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        prompt_tokens = count_prompt_tokens(body.get("messages", []))
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        if prompt_tokens + max_tokens > self.max_model_len:
            return self.error(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                "completion). Please reduce the length of the messages or completion.",
                "BadRequestError",
            )
        tools = body.get("tools") or []
        if tools and self.tool_call_parser is None and body.get("tool_choice", "auto") == "auto":
            return self.error(400, TOOLS_REFUSED, "BadRequestError")
        self.images += image_urls(body.get("messages", []))
        if self.fault == "html_500":
            html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
            return web.Response(status=502, text=html, content_type="text/html")
        if self.fault == "status":
            return self.error(self.fault_status, "Simulated failure", "InternalServerError")
        deltas = self._reply(body)
        chat_id = f"chatcmpl-{uuid.uuid4().hex}"
        if not body.get("stream"):
            return self._complete(chat_id, model, deltas, prompt_tokens)
        return await self._stream(request, body, chat_id, model, deltas, prompt_tokens)

    def _reply(self, body: dict) -> list[dict]:
        """What the model "generates" for this request: a tool call, an answer from a tool's result, or the script."""
        messages = body.get("messages", [])
        results = tool_results(messages)
        offered = {(t.get("function") or {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        if results:
            deltas = self._deltas(script=self.tool_answer.format(result=results[-1]))
        elif self.tool_call and self.tool_call[0] in offered:
            deltas = self._deltas(script=self.tool_reasoning + "</think>")
            deltas += self._tool_call_deltas(*self.tool_call)
        else:
            deltas = self._deltas(self._prompt_prefix(body) if self.prefix_with_prompt else "")
        seen = image_urls(messages)
        if seen:  # a vision model's answer starts from what it was shown
            deltas = deltas + [{"content": f" I saw {len(seen)} image(s)."}]
        kwargs = body.get("chat_template_kwargs") or {}
        if self.thinking_switch and kwargs.get("enable_thinking") is False:
            deltas = [d for d in deltas if not (d.get("reasoning") or d.get("reasoning_content"))]
        return deltas

    @staticmethod
    def _tool_call_deltas(name: str, arguments: dict) -> list[dict]:
        """A call as vLLM's tool parsers stream it: id, type and name first, then the JSON arguments in pieces."""
        first = {"index": 0, "id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function", "function": {"name": name}}
        text = json.dumps(arguments)
        pieces = [text[at : at + 3] for at in range(0, len(text), 3)]
        return [{"tool_calls": [first]}] + [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]

    def _complete(self, chat_id: str, model: str, deltas: list[dict], prompt_tokens: int) -> web.Response:
        message: dict = {"role": "assistant", "content": "".join(d.get("content") or "" for d in deltas)}
        calls = [c for d in deltas for c in d.get("tool_calls", [])]
        if calls:
            head = calls[0]
            arguments = "".join(c["function"].get("arguments", "") for c in calls)
            message["tool_calls"] = [{"id": head["id"], "type": "function", "function": {"name": head["function"]["name"], "arguments": arguments}}]
        reasoning = "".join(d.get("reasoning") or d.get("reasoning_content") or "" for d in deltas)
        if self.reasoning_field != "none":
            message["reasoning" if self.reasoning_field == "reasoning" else "reasoning_content"] = reasoning or None
        self.finished += 1
        return web.json_response(
            {
                "id": chat_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop", "logprobs": None}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(deltas), "total_tokens": prompt_tokens + len(deltas)},
            }
        )

    async def _stream(
        self, request: web.Request, body: dict, chat_id: str, model: str, deltas: list[dict], prompt_tokens: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        created = int(time.time())

        def frame(delta: dict | None, finish: str | None = None, **extra: object) -> bytes:
            chunk: dict = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": model}
            chunk["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            chunk.update(extra)
            return f"data: {json.dumps(chunk)}\n\n".encode()

        half = len(deltas) // 2
        loop = asyncio.get_running_loop()
        started = loop.time()
        emits = None if self.emit_log is None else self.emit_log.setdefault(self._prompt_prefix(body).strip(), [])
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)

        async def write(data: bytes) -> None:
            if self.write_size <= 0:
                await response.write(data)
                return
            for at in range(0, len(data), self.write_size):
                await response.write(data[at : at + self.write_size])
                await asyncio.sleep(0.001)  # let it leave as its own network read

        try:
            await write(frame({"role": "assistant", "content": ""}))
            for i, delta in enumerate(deltas):
                if i == half and self.fault != "none":
                    if await self._fault_mid_stream(request, response, frame, delta):
                        return response
                if self.token_rate:
                    await asyncio.sleep(max(0.0, started + (i + 1) / self.token_rate - loop.time()))
                    if request.transport is None or request.transport.is_closing():
                        self.disconnects.append(time.monotonic())
                        return response
                elif self.token_delay and not await wait_or_disconnect(request, self.token_delay):
                    self.disconnects.append(time.monotonic())
                    return response
                if self.keep_alive and i % 5 == 0:
                    await write(b": keep-alive\n\n")
                last = i == len(deltas) - 1
                await write(frame(delta, finish_reason(deltas) if last else None))
                if emits is not None:
                    emits.append(time.time())
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + len(deltas), "completion_tokens": len(deltas)}
                await response.write(frame(None, usage=usage))
            await response.write(b"data: [DONE]\n\n")
            self.finished += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects.append(time.monotonic())
            raise
        finally:
            self.active -= 1
        return response

    async def _fault_mid_stream(self, request: web.Request, response: web.StreamResponse, frame, delta: dict) -> bool:  # type: ignore[no-untyped-def]
        """Apply the configured fault; True when the response is over."""
        if self.fault == "drop_mid_stream":
            data = frame(delta)
            await response.write(data[: len(data) // 2])  # cut inside a chunk, inside a token
            assert request.transport is not None
            request.transport.close()
            return True
        if self.fault == "stall":
            if not await wait_or_disconnect(request, 3600):
                self.disconnects.append(time.monotonic())
            return True
        if self.fault == "malformed_chunk":
            await response.write(b'data: {"id": "x", "choices": [{"delta": {"content": "oops"\n\n')
            return False
        if self.fault == "error_chunk":
            err = {"error": {"message": "Engine loop has died", "type": "InternalServerError", "param": None, "code": 500}}
            await response.write(f"data: {json.dumps(err)}\n\ndata: [DONE]\n\n".encode())
            return True
        return False
