"""An emulator of KTransformers' two common server shapes, faithful to their wire formats.

`shape="builtin"`, the server shipped in kvcache-ai/ktransformers (port 10002 in its config):
- ktransformers/server/api/openai/endpoints/chat.py `chat_completion`: the API key is
  checked with a bare `assert` on the Authorization header, so a wrong or missing key is
  an AssertionError → Starlette's plain-text `500 Internal Server Error`; parameter checks
  answer a flat `{"object":"error","message",…,"type":"BadRequestError","param":null,"code":400}`.
  The stream reuses ONE `ChatCompletionChunk` object: no role chunk, each token as
  `{"delta":{"content":token}}`, then on `RawUsage` a chunk with `"choices":[]` and usage, then a
  last `{"delta":{},"finish_reason":"stop"}` chunk that still carries that usage; the non-stream
  reply is a `chat.completion` whose finish_reason is "stop".
- ktransformers/server/schemas/endpoints/chat.py `ChatCompletionChunk.to_stream_reply`
  (`data: {json}\\n\\n`) and schemas/assistants/streaming.py `chat_stream_response` (`add_done`
  appends `data: [DONE]`; `check_client_link` only stops *sending* once the client is gone).
- api/openai/legacy/completions.py: `/v1/completions` streams `data:{json}` with no space.
- api/ollama/completions.py: `/api/chat`, `/api/generate` send NDJSON lines through
  `check_link_response`, whose media type is `text/event-stream`; `/api/tags` lists the model.
- backend/interfaces/ktransformers.py: `inference` holds `self._infer_lock` (an asyncio.Lock):
  one request at a time, the others wait inside the server.
  backend/interfaces/transformers.py: with `--force_think` (`Config().user_force_think`)
  `"<think>\\n"` is appended to the prompt AND yielded as the first token, before prefill.
- No `/health` route. `/v1/models` answers `{"data":[{"id","name"}],"object":"list"}`.

`shape="handwritten"`: the FastAPI wrapper users write around ktransformers' `prefill_and_generate`
(ktransformers/util/utils.py), as described in this repo's issue 3: it takes `force_think`
(pre-filled `<think>\\n`, so the output has no opening tag), serves one request at a time, and
answers every request, even `"stream": true`, with one `application/json` chat.completion
(or `{"response": …}` with `json_shape="plain"`) once generation has finished.

A client disconnect never stops generation here (it does not in the real servers either): the
emulator records it and keeps "generating", holding its lock, until the script is done.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from aiohttp import web

from tests.emulators.server import Emulator
from tests.emulators.vllm import vllm_tokens

Shape = Literal["builtin", "handwritten"]

DEFAULT_SCRIPT = "Okay, the user greets me.\nI should greet back.\n</think>\n\nHello! How can I help you today?"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens_details": None,
        "prompt_tokens_details": None,
    }


@dataclass
class KTransformersEmulator(Emulator):
    """Mutable behaviour: tests set the fields, then send requests."""

    shape: Shape = "builtin"
    model_name: str = "DeepSeek-R1"
    script: str = DEFAULT_SCRIPT  # R1 output when `<think>\n` was pre-filled: no opening tag
    force_think: bool = False  # the built-in server's --force_think flag
    token_delay: float = 0.0
    prefill_delay: float = 0.0
    api_key: str = ""
    json_shape: Literal["openai", "plain"] = "openai"
    reply: Callable[[list[dict]], str] | None = None  # the script chosen from the chat's messages, instead of `script`
    requests: list[dict] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # last user message of each request, when it got the lock
    disconnects: list[float] = field(default_factory=list)
    finished: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: asyncio.Lock | None = None


    def _app(self) -> web.Application:
        self._lock = asyncio.Lock()  # made on the server's loop
        app = web.Application(middlewares=[self._crash_as_plain_500])
        app.router.add_post("/v1/chat/completions", self._chat)
        if self.shape == "builtin":
            app.router.add_get("/v1/models", self._models)
            app.router.add_post("/v1/completions", self._completions)
            app.router.add_post("/api/chat", self._ollama_chat)
            app.router.add_get("/api/tags", self._ollama_tags)
        return app

    # ---- helpers ----
    @web.middleware
    async def _crash_as_plain_500(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        """Starlette's ServerErrorMiddleware: any exception becomes a plain-text 500."""
        try:
            return await handler(request)
        except AssertionError:
            return web.Response(status=500, text="Internal Server Error", content_type="text/plain")

    def _check_key(self, request: web.Request) -> None:
        if self.api_key != "":
            # chat.py: assert request.headers.get('Authorization', '').split()[-1] == Config().api_key
            parts = request.headers.get("Authorization", "").split()
            assert parts and parts[-1] == self.api_key

    @staticmethod
    def flat_error(message: str) -> web.Response:
        body = {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}
        return web.json_response(body, status=400)

    def _tokens(self, force_think: bool, messages: list[dict] | None = None) -> list[str]:
        tokens = vllm_tokens(self.reply(messages) if self.reply and messages is not None else self.script)
        return (["<think>\n"] if force_think else []) + tokens

    async def _generate(self, request: web.Request, label: str, tokens: list[str], send) -> bool:  # type: ignore[no-untyped-def]
        """Run one generation under the server's lock; `send(token)` writes unless the client left.

        Returns whether the client stayed to the end.
        """
        assert self._lock is not None
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            async with self._lock:  # interfaces/ktransformers.py: async with self._infer_lock
                self.started.append(label)
                connected = True
                if self.prefill_delay:
                    await asyncio.sleep(self.prefill_delay)
                for token in tokens:
                    if self.token_delay:
                        await asyncio.sleep(self.token_delay)
                    if connected and (request.transport is None or request.transport.is_closing()):
                        connected = False
                        self.disconnects.append(time.monotonic())  # noted; generation goes on
                    if connected:
                        try:
                            await send(token)
                        except (ConnectionResetError, ConnectionError):
                            connected = False
                            self.disconnects.append(time.monotonic())
                self.finished += 1
                return connected
        finally:
            self.in_flight -= 1

    @staticmethod
    def _label(messages: list[dict]) -> str:
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        return str(users[-1]) if users else ""

    # ---- routes ----
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": self.model_name, "name": self.model_name}], "object": "list"})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        if self.shape == "handwritten":
            return await self._handwritten(request, body)
        for name, low, high in (("temperature", 0, 2), ("top_p", 1e-9, 1)):
            value = body.get(name)
            if value is not None and not low <= value <= high:
                bounds = "[0, 2]" if name == "temperature" else "(0, 1]"
                return self.flat_error(f"{name} must be in {bounds}, got {value}.")
        if body.get("max_tokens") is not None and body["max_tokens"] < 0:
            return self.flat_error(f"max_tokens must be at least 0, got {body['max_tokens']}.")
        self._check_key(request)
        messages = body.get("messages", [])
        prompt_tokens = sum(len(vllm_tokens(str(m.get("content", "")))) + 4 for m in messages)
        tokens = self._tokens(self.force_think, messages)
        chat_id = uuid.uuid4().hex
        created = int(time.time())
        if not body.get("stream"):
            await self._generate(request, self._label(messages), tokens, self._ignore)
            message = {"role": "assistant", "content": "".join(tokens)}
            return web.json_response(
                {
                    "id": chat_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": self.model_name,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                    "usage": _usage(prompt_tokens, len(tokens)),
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        chunk: dict = {
            "id": chat_id,
            "choices": [],
            "created": created,
            "model": self.model_name,
            "object": "chat.completion.chunk",
            "service_tier": None,
            "system_fingerprint": f"fp_{uuid.uuid4().hex[:12]}",
            "usage": None,
        }

        async def write() -> None:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        async def send(token: str) -> None:
            delta = {"content": token, "function_call": None, "refusal": None, "role": None, "tool_calls": None}
            chunk["choices"] = [{"delta": delta, "finish_reason": None, "index": 0, "logprobs": None}]
            await write()

        if not await self._generate(request, self._label(messages), tokens, send):
            return response
        chunk["choices"] = []
        chunk["usage"] = _usage(prompt_tokens, len(tokens))
        await write()
        chunk["choices"] = [{"delta": {}, "finish_reason": "stop", "index": 0, "logprobs": None}]
        await write()  # the reused chunk still carries the usage
        await response.write(b"data: [DONE]\n\n")
        return response

    @staticmethod
    async def _ignore(token: str) -> None:
        return None

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)

        async def send(token: str) -> None:
            await response.write(f"data:{json.dumps({'choices': [{'delta': {'content': token}}]})}\n\n".encode())

        if await self._generate(request, str(body.get("prompt", "")), self._tokens(self.force_think), send):
            await response.write(f"data:{json.dumps({'choices': [{'delta': {'content': ''}, 'finish_reason': ''}]})}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
        return response

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        nulls = dict.fromkeys(
            ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")
        )

        async def send(token: str) -> None:
            line = {"model": self.model_name, "created_at": str(datetime.now()), "message": {"role": "assistant", "content": token}, "done": False, **nulls}
            await response.write((json.dumps(line) + "\n").encode())

        if await self._generate(request, self._label(body.get("messages", [])), self._tokens(self.force_think), send):
            last = {"model": self.model_name, "created_at": str(datetime.now()), "message": {}, "done": True, **nulls}
            await response.write((json.dumps(last) + "\n").encode())
        return response

    async def _ollama_tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": self.model_name, "modified_at": "123", "size": 123}]})

    async def _handwritten(self, request: web.Request, body: dict) -> web.Response:
        """One JSON completion, whatever `stream` says; `force_think` pre-fills the opening tag.

        Its request model is pydantic's `class Message(BaseModel): role: str; content: str`, so a
        list of content parts (or a null content beside tool_calls) is FastAPI's 422.
        """
        messages = body.get("messages", [])
        for index, message in enumerate(messages):
            if not isinstance(message.get("content"), str):
                detail = {"type": "string_type", "loc": ["body", "messages", index, "content"], "msg": "Input should be a valid string", "input": message.get("content")}
                return web.json_response({"detail": [detail]}, status=422)
        tokens = vllm_tokens(self.reply(messages) if self.reply else self.script)
        started = time.monotonic()
        await self._generate(request, self._label(messages), tokens, self._ignore)
        text = "".join(tokens)
        if self.json_shape == "plain":
            return web.json_response(
                {"response": text, "tokens_used": len(tokens), "generation_time": round(time.monotonic() - started, 3)}
            )
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or self.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": len(tokens), "total_tokens": 12 + len(tokens)},
            }
        )
