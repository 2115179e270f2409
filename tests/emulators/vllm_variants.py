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


class VLLMWithCORS(VLLMEmulator):
    """vLLM as a browser sees it: `api_server.py` adds Starlette's CORSMiddleware with
    `--allowed-origins`, `--allowed-methods`, `--allowed-headers` all defaulting to `["*"]`
    and credentials off, so any page may call it (Open WebUI's direct connections do)."""

    def _app(self) -> web.Application:
        app = super()._app()
        app.middlewares.insert(0, _cors_preflight)
        app.on_response_prepare.append(_cors_headers)
        return app


@web.middleware
async def _cors_preflight(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return web.Response(
            status=200,
            headers={
                "Access-Control-Allow-Methods": "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT",
                "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "*"),
                "Access-Control-Max-Age": "600",
            },
        )
    return await handler(request)


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    if "Origin" in request.headers:
        response.headers["Access-Control-Allow-Origin"] = "*"
