"""Faults turned into one sentence a user can act on, with secrets removed.

Users see these in the chat instead of tracebacks. Every message passes
through `redact`, so an API key that a backend or a library echoes back
(in a URL, a header dump, an error body) never reaches the chat or a log.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

import aiohttp
import httpx
import openai

try:  # openai >= 3 moved to httpx2: Open WebUI releases that leave `openai` unpinned (0.6.43) get it on a fresh install
    import httpx2
except ImportError:  # pragma: no cover - absent with openai 1.x/2.x
    httpx2 = None

_HTTP_LIBS = tuple(lib for lib in (httpx, httpx2) if lib is not None)


def _transport(*names: str) -> tuple[type[BaseException], ...]:
    """These exception classes from every HTTP library a backend call may raise through (httpx, httpx2)."""
    return tuple(getattr(lib, name) for lib in _HTTP_LIBS for name in names if hasattr(lib, name))


_TIMEOUT = _transport("TimeoutException")
_CONNECT_TIMEOUT = _transport("ConnectTimeout")
_CONNECT_ERROR = _transport("ConnectError")
_DROPPED = _transport("RemoteProtocolError", "ReadError")
_DNS_FAILURE = (socket.gaierror, aiohttp.ClientConnectorDNSError)

_CONTEXT_LIMIT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_CONTEXT_HINTS = ("context length", "context_length", "too many tokens", "prompt is too long", "exceeds the context")


class BackendError(Exception):
    """A fault whose text is already fit for the user."""


@dataclass(frozen=True)
class ErrorContext:
    """What a message may name: the backend's address and model, never its key."""

    url: str = ""
    model: str = ""
    read_timeout: float | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)


def safe_url(url: str) -> str:
    """scheme://host:port of a URL, without credentials, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}" if parts.scheme else url.split("?")[0]
    except ValueError:
        return "the configured backend"


def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _first_sentence(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    if text.lstrip().startswith("<"):
        return ""
    cut = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return cut if len(cut) <= limit else cut[: limit - 1] + "…"


def _status_phrase(code: int) -> str:
    try:
        return f"HTTP {code} ({HTTPStatus(code).phrase})"
    except ValueError:
        return f"HTTP {code}"


def body_message(body: object, fallback: str = "") -> str:
    """The human part of an error body: nested (OpenAI, vLLM), flat (KTransformers) or FastAPI's `detail`."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            detail = inner.get("message") or inner.get("detail")
            if isinstance(detail, list) and detail and isinstance(detail[0], dict):
                return str(detail[0].get("msg") or fallback)
            return str(detail or fallback)
        if isinstance(inner, str):
            return inner
    if isinstance(body, str):
        return body
    return fallback


def status_message(code: int, detail: str, ctx: ErrorContext) -> str:
    """One sentence for an HTTP error status from the backend."""
    where = safe_url(ctx.url) if ctx.url else "the backend"
    detail_text = _first_sentence(detail)
    if code in (401, 403):
        return (
            f"The backend at {where} rejected the API key ({_status_phrase(code)}); "
            "check the API_KEY valve or your own key in the function's user settings."
        )
    if code == 404:
        model = f"`{ctx.model}`" if ctx.model else "this model"
        return f"The backend at {where} does not serve {model} ({_status_phrase(code)})."
    if code in (400, 413, 422) and (
        _CONTEXT_LIMIT.search(detail) or any(hint in detail.lower() for hint in _CONTEXT_HINTS)
    ):
        limit = _CONTEXT_LIMIT.search(detail)
        size = f" of {limit.group(1)} tokens" if limit else ""
        return (
            f"This chat is too long for the model's context window{size}; "
            "start a new chat, shorten the messages, or lower max_tokens."
        )
    if code == 429:
        return f"The backend at {where} is busy ({_status_phrase(code)}); try again in a moment."
    if code >= 500:
        return f"The backend at {where} failed with {_status_phrase(code)}."
    suffix = f": {detail_text}" if detail_text else "."
    return f"The backend at {where} refused the request ({_status_phrase(code)}){suffix}"


def describe(exc: BaseException, ctx: ErrorContext) -> str:
    """One sentence for any fault met while talking to a backend."""
    return redact(_describe(exc, ctx), ctx.secrets)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what raised it, down the chain (the SDK wraps httpx's error, which wraps aiohttp's)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def _describe(exc: BaseException, ctx: ErrorContext) -> str:
    where = safe_url(ctx.url) if ctx.url else "the backend"
    if isinstance(exc, BackendError):
        return str(exc)
    if isinstance(exc, openai.APIStatusError):
        return status_message(exc.status_code, body_message(exc.body, exc.message), ctx)
    if isinstance(exc, (openai.APITimeoutError, *_TIMEOUT)):
        if isinstance(exc, _CONNECT_TIMEOUT) or isinstance(exc.__cause__, _CONNECT_TIMEOUT):
            return f"Cannot reach the backend at {where}: the connection timed out."
        wait = f" for {ctx.read_timeout:g} seconds" if ctx.read_timeout else ""
        return f"The backend at {where} sent nothing{wait}; it may be overloaded or stuck (raise the read timeout valve for long prompts)."
    if isinstance(exc, (openai.APIConnectionError, *_CONNECT_ERROR)):
        chain = list(_causes(exc))
        cause = " ".join(str(e) for e in chain).lower()
        if "certificate" in cause:
            return (
                f"The backend at {where} presented a TLS certificate this server does not trust; "
                "install its CA on the Open WebUI host, or turn VERIFY_TLS off for a self-signed test setup."
            )
        if any(isinstance(e, _DNS_FAILURE) for e in chain) or any(
            s in cause for s in ("name or service not known", "nodename nor servname", "name resolution", "getaddrinfo")
        ):
            return f"Cannot reach the backend at {where}: its host name does not resolve."
        return f"Cannot reach the backend at {where}: is the server running?"
    if isinstance(exc, _DROPPED):
        return f"The connection to the backend at {where} dropped mid-answer; the text above is all that arrived."
    if isinstance(exc, json.JSONDecodeError):
        return f"The backend at {where} sent a malformed stream chunk; the answer stopped there."
    if isinstance(exc, openai.APIError):
        detail = _first_sentence(body_message(exc.body, exc.message))
        return f"The backend at {where} reported an error: {detail or 'no details'}"
    return f"Unexpected error while talking to the backend at {where} ({type(exc).__name__})."
