"""vLLM emulator variants for the filters' tests.

`VLLMWithoutTokenize` is a server that speaks vLLM's chat API but has no
`/tokenize` (older vLLM builds behind a proxy that only forwards /v1, or
another OpenAI-compatible server): a client must fall back to estimating.
"""

from __future__ import annotations

from aiohttp import web

from tests.emulators.vllm import VLLMEmulator


class VLLMWithoutTokenize(VLLMEmulator):
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", lambda r: web.Response(status=200))
        return app
