"""A small prompt server (the seed `/generate` + SSE `/stream` API) for faults a real one will not show on demand.

The wire format is the reference app's (examples/flask_r1_server.py): `/generate`
`{"prompt",…}` → `{"response","tokens_used","generation_time",…}`; `/stream` sends
`data: <piece>` events, a piece with newlines as several `data:` lines, then
`data: [DONE]`; 401 `{"error":"Invalid API key"}` without the `X-API-Key`. The
emulator adds what only a hostile network does: every event split across
several TCP writes (inside a UTF-8 character, between CR and LF), CRLF line
ends, comments, and a connection dropped mid-stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from tests.emulators.server import Emulator

Fault = Literal["none", "drop_mid_stream", "error_event"]

DEFAULT_PIECES = ("The user says hi.\nGreet them ", "naïvely 🤔.", "\n</think>\n\n", "Hello,\nfriend", "! Bye.")


@dataclass
class PromptServerEmulator(Emulator):
    pieces: tuple[str, ...] = DEFAULT_PIECES  # what the model "generates" after an R1 prompt
    api_key: str = ""
    line_end: str = "\n"
    split_writes: bool = False  # write every event one byte at a time
    comments: bool = False
    fault: Fault = "none"
    token_delay: float = 0.0
    requests: list[dict] = field(default_factory=list)
    disconnects: list[float] = field(default_factory=list)
    reply: Callable[[str], tuple[str, ...]] | None = None  # pieces chosen from the prompt, instead of `pieces`


    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/generate", self._generate)
        app.router.add_route("*", "/stream", self._stream)
        return app

    def _authorized(self, request: web.Request) -> bool:
        return not self.api_key or request.headers.get("X-API-Key") == self.api_key

    async def _record(self, request: web.Request) -> dict:
        body = dict(request.query) if request.method == "GET" else await request.json()
        self.requests.append({"method": request.method, "body": body, "headers": dict(request.headers)})
        return body

    def _pieces_for(self, body: dict) -> tuple[str, ...]:
        return self.reply(str(body.get("prompt", ""))) if self.reply else self.pieces

    async def _generate(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if not self._authorized(request):
            return web.json_response({"error": "Invalid API key"}, status=401)
        text = "".join(self._pieces_for(body))
        return web.json_response(
            {"response": text, "tokens_used": len(self._pieces_for(body)), "generation_time": 0.01, "prompt_tokens": 9, "finish_reason": "stop"}
        )

    def _event(self, data: str, event: str | None = None) -> bytes:
        end = self.line_end
        head = f"event: {event}{end}" if event else ""
        comment = f": keep-alive{end}" if self.comments else ""
        return (comment + head + "".join(f"data: {line}{end}" for line in data.split("\n")) + end).encode()

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        pieces = self._pieces_for(body)
        if not self._authorized(request):
            return web.json_response({"error": "Invalid API key"}, status=401)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            for i, piece in enumerate(pieces):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                if request.transport is None or request.transport.is_closing():
                    self.disconnects.append(time.monotonic())
                    return response
                data = self._event(piece)
                if i == len(pieces) // 2 and self.fault == "drop_mid_stream":
                    await response.write(data[: len(data) // 2])
                    assert request.transport is not None
                    request.transport.close()  # chunked body never finished
                    return response
                if i == len(pieces) // 2 and self.fault == "error_event":
                    await response.write(self._event("CUDA out of memory", event="error") + self._event("[DONE]"))
                    return response
                if self.split_writes:
                    for b in range(len(data)):
                        await response.write(data[b : b + 1])
                        await asyncio.sleep(0)
                else:
                    await response.write(data)
            await response.write(self._event("[DONE]"))
        except ConnectionResetError:
            self.disconnects.append(time.monotonic())
        return response
