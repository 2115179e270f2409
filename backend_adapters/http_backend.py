"""What the adapters that speak HTTP themselves (not through the openai SDK) share.

KTransformers' hand-written servers and Flask apps need their responses'
content types and raw bodies, which the openai SDK hides; these helpers keep
those adapters on one pooled httpx client and one way of phrasing HTTP errors.
"""

from __future__ import annotations

import asyncio
import json
import weakref

import httpx

from backend_adapters.aiohttp_transport import AiohttpTransport
from backend_adapters.backend_config import BackendConfig
from backend_adapters.errors import ErrorContext, body_message, status_message

_http_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def pooled_client(config: BackendConfig) -> httpx.AsyncClient:
    """A pooled httpx client per event loop and timeout setting (connect and per-read timeouts, not a total).

    Shared by the httpx-based adapters: pooling keeps connections warm across requests.
    """
    key = (config.connect_timeout, config.read_timeout, config.verify_tls)
    per_loop = _http_clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = httpx.AsyncClient(
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout), verify=config.verify_tls,
            transport=AiohttpTransport(config.verify_tls),
        )
    return client


def media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


async def http_status_error(response: httpx.Response, ctx: ErrorContext) -> str:
    """One sentence for an HTTP error status, reading (a bounded amount of) the error body."""
    raw = await response.aread()
    text = raw[:4000].decode("utf-8", "replace")
    try:
        detail = body_message(json.loads(text))
    except ValueError:
        detail = "" if media_type(response) == "text/html" else text
    return status_message(response.status_code, detail, ctx)


def one_line(text: str, limit: int = 200) -> str:
    """A backend's error text, cut to fit in one sentence."""
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text if text.endswith((".", "!", "?", "…")) else text + "."
