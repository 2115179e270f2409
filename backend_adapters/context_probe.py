"""Asks a vLLM server how long its context is and how many tokens a chat takes.

vLLM lists `max_model_len` with each model in `/v1/models` and counts a
chat exactly (its own tokenizer and chat template) at `POST /tokenize`.
Other servers have neither, so every answer here may be None and the caller
falls back to a valve or an estimate. Short timeouts: this runs before every
chat message, and a slow probe must not become a slow chat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

from backend_adapters.errors import safe_url
from backend_adapters.token_budget import message_text

_probe_log = logging.getLogger("r1relay.context")


def server_root(base_url: str) -> str:
    """`http://h:8000/v1/` → `http://h:8000`: vLLM serves /tokenize beside /v1, not under it."""
    url = base_url.strip().rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class ContextProbe:
    """Per-server answers, cached: lengths rarely change, and a server without /tokenize stays so for a while."""

    def __init__(self, ttl: float = 300.0, timeout: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock
        self._lengths: dict[tuple[str, str], tuple[float, int | None]] = {}
        self._no_tokenize: dict[str, float] = {}

    def _headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 2.0)))

    async def max_model_len(self, base_url: str, api_key: str, model: str) -> int | None:
        """The model's context length as the server reports it, or None."""
        root = server_root(base_url)
        cached = self._lengths.get((root, model))
        if cached and self._clock() - cached[0] < self.ttl:
            return cached[1]
        length: int | None = None
        try:
            async with self._client() as client:
                response = await client.get(f"{root}/v1/models", headers=self._headers(api_key))
            if response.status_code == 200:
                for entry in response.json().get("data") or []:
                    if (
                        isinstance(entry, dict)
                        and entry.get("id") == model
                        and isinstance(entry.get("max_model_len"), int)
                    ):
                        length = entry["max_model_len"]
            else:
                _probe_log.info("context probe: %s/v1/models answered HTTP %s", safe_url(root), response.status_code)
        except (httpx.HTTPError, ValueError) as exc:
            _probe_log.info("context probe: %s/v1/models failed (%s)", safe_url(root), type(exc).__name__)
        self._lengths[(root, model)] = (self._clock(), length)
        return length

    async def count_tokens(self, base_url: str, api_key: str, model: str, messages: list[dict]) -> int | None:
        """The exact prompt length by the server's tokenizer and chat template, or None."""
        root = server_root(base_url)
        since = self._no_tokenize.get(root)
        if since is not None and self._clock() - since < self.ttl:
            return None
        body = {
            "model": model,
            "messages": [{"role": m.get("role", "user"), "content": message_text(m)} for m in messages],
            "add_generation_prompt": True,
        }
        try:
            async with self._client() as client:
                response = await client.post(f"{root}/tokenize", json=body, headers=self._headers(api_key))
            if response.status_code == 200:
                count = response.json().get("count")
                if isinstance(count, int):
                    return count
            _probe_log.info("context probe: %s/tokenize answered HTTP %s", safe_url(root), response.status_code)
        except (httpx.HTTPError, ValueError) as exc:
            _probe_log.info("context probe: %s/tokenize failed (%s)", safe_url(root), type(exc).__name__)
        self._no_tokenize[root] = self._clock()
        return None
