"""One deployment, several URLs: spread requests over them, skip the dead ones.

Every adapter opens its stream through `stream_from_replicas`, so failover,
the down-list, status lines and closing the response on Stop are written once.
Only failures where the server never saw the request move on to the next URL:
a server that did see it may be generating, and a retry would double the load.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import openai

from backend_adapters.backend_config import BackendConfig
from backend_adapters.errors import ErrorContext, describe, redact, safe_url
from backend_adapters.events import Error, Event, Status
from backend_adapters.http_backend import http_status_error
from backend_adapters.model_list_cache import cached_model_list
from backend_adapters.url_memory import UrlMemory

DOWN_FOR = 30.0

# Caches, not request state: the down-list keeps a dead replica from costing
# every request a connect timeout, the rotation spreads load.
_down = UrlMemory(DOWN_FOR)
_next_start: dict[tuple[str, ...], int] = {}


def openai_base_url(url: str) -> str:
    """Valves accept URLs with or without `/v1`; OpenAI-style routes want it."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def urls_in_turn(urls: tuple[str, ...]) -> list[str]:
    """Healthy URLs first, rotated per request to spread load; recently failed ones last."""
    start = _next_start.get(urls, 0)
    _next_start[urls] = (start + 1) % len(urls)
    rotated = urls[start:] + urls[:start]
    return [u for u in rotated if u not in _down] + [u for u in rotated if u in _down]


async def models_of_replicas(
    config: BackendConfig, kind: str, fetch: Callable[[str], Awaitable[list[str]]]
) -> list[str]:
    """Model ids any replica serves; served from cache at once and refreshed behind
    (Open WebUI asks on every model-list view), so a hung backend never holds the list."""

    async def load() -> list[str]:
        ids: list[str] = []
        failure: Exception | None = None
        for url in config.base_urls:
            try:
                for model_id in await fetch(url):
                    if model_id not in ids:
                        ids.append(model_id)
            except Exception as exc:  # one dead replica must not hide the others' models
                failure = exc
        if not ids and failure is not None:
            raise failure  # the last good list, if any, stays cached
        return ids

    where = ", ".join(safe_url(url) for url in config.base_urls) or "the backend"
    return await cached_model_list((kind, config.base_urls, config.api_key), load, where)


def never_reached_server(exc: Exception) -> bool:
    """Connection refused, DNS failure, connect timeout: another replica may take the request."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return True
    if isinstance(exc, openai.APITimeoutError):
        return isinstance(exc.__cause__, httpx.ConnectTimeout)
    return isinstance(exc, openai.APIConnectionError)


async def stream_from_replicas(
    config: BackendConfig,
    model: str,
    *,
    waiting: str,
    send: Callable[[str], Awaitable[httpx.Response]],
    events: Callable[[httpx.Response, ErrorContext], AsyncIterator[Event]],
    refusal: Callable[[httpx.Response, ErrorContext], Awaitable[str]] = http_status_error,
) -> AsyncIterator[Event]:
    """The events of the first replica that takes the request.

    `send(url)` opens a streamed response; `events` reads a good one;
    `refusal` phrases an HTTP error status. `waiting` is the status line, with
    `{host}` for the replica's address.
    """
    ctx = ErrorContext(model=model, read_timeout=config.read_timeout, secrets=config.secrets)
    last_failure: Exception | None = None
    for url in urls_in_turn(config.base_urls):
        ctx = ErrorContext(url=url, model=model, read_timeout=config.read_timeout, secrets=config.secrets)
        yield Status(waiting.format(host=safe_url(url)), progress=True)
        try:
            response = await send(url)
        except Exception as exc:
            if never_reached_server(exc):
                _down.remember(url)
                last_failure = exc
                continue
            yield Error(describe(exc, ctx))
            return
        _down.forget(url)
        try:
            if response.status_code >= 400:
                yield Error(redact(await refusal(response, ctx), ctx.secrets))
                return
            async for event in events(response, ctx):
                yield event
        finally:
            await response.aclose()  # also on cancel (Stop): the server sees the client go and stops generating
        return
    if last_failure is not None:
        yield Error(describe(last_failure, ctx))
