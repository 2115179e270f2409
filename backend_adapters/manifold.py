"""Open WebUI's manifold-pipe protocol, written once for every backend.

A pipe file only declares its valves and which adapter to build; this class
does the rest: the model list, valves → config, the queue, streaming versus
Open WebUI's non-streamed task calls, and errors as one sentence.
Per-request state lives in locals: Open WebUI shares one Pipe among all users.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from pydantic import ValidationError

from backend_adapters.backend_config import BackendConfig, config_error, split_list
from backend_adapters.chat_request import ChatRequest, backend_model_id
from backend_adapters.errors import ErrorContext, describe
from backend_adapters.events import Error, Event
from backend_adapters.renderer import Emitter, collect_answer, render_stream
from backend_adapters.slots import in_turn, shared_queue
from backend_adapters.thinking_controls import with_thinking_controls
from backend_adapters.valves import BackendValves, UserBackendValves


class Adapter(Protocol):
    async def list_models(self) -> list[str]: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[Event]: ...


async def _one_error(message: str) -> AsyncIterator[Event]:
    yield Error(message)


class ManifoldPipe:
    """Subclasses set `Valves`, `UserValves` and `make_adapter`."""

    Valves: type[BackendValves] = BackendValves
    UserValves: type[UserBackendValves] = UserBackendValves

    def __init__(self) -> None:
        self.type = "manifold"
        self.valves = self.Valves()

    def make_adapter(self, config: BackendConfig, valves: Any) -> Adapter:
        raise NotImplementedError

    def backend_config(self, valves: Any, user_valves: Any = None) -> BackendConfig:
        base_urls = valves.BASE_URLS
        api_key = valves.API_KEY
        if user_valves is not None:
            if valves.ALLOW_USER_BASE_URLS and user_valves.BASE_URLS.strip():
                base_urls = user_valves.BASE_URLS
                api_key = ""  # the admin's key never goes to a user's server
            api_key = user_valves.API_KEY or api_key
        return BackendConfig(
            base_urls=split_list(base_urls),
            api_key=api_key,
            connect_timeout=valves.CONNECT_TIMEOUT,
            read_timeout=valves.REQUEST_TIMEOUT,
            verify_tls=valves.VERIFY_TLS,
            max_concurrency=valves.MAX_CONCURRENCY,
            think_start=valves.THINK_START,
            models=split_list(valves.MODELS),
        )

    async def pipes(self) -> list[dict]:
        prefix = self.valves.NAME_PREFIX
        try:
            config = self.backend_config(self.valves)
            ids = list(config.models) or await self.make_adapter(config, self.valves).list_models()
        except ValidationError as exc:
            return [{"id": "unavailable", "name": f"{prefix}unavailable: {config_error(exc)}"}]
        except Exception as exc:
            ctx = ErrorContext(url=split_list(self.valves.BASE_URLS)[0] if self.valves.BASE_URLS else "")
            reason = describe(exc, ErrorContext(url=ctx.url, secrets=(self.valves.API_KEY,)))
            return [{"id": "unavailable", "name": f"{prefix}unavailable: {reason} Set MODELS to list models without asking."}]
        return [{"id": model, "name": f"{prefix}{model}"} for model in ids]

    async def pipe(
        self,
        body: dict,
        __user__: dict | None = None,
        __event_emitter__: Emitter | None = None,
        __task__: str | None = None,
    ) -> str | dict | AsyncIterator[dict]:
        user_valves = (__user__ or {}).get("valves")
        show_stats = self.valves.SHOW_STATS and getattr(user_valves, "SHOW_STATS", True)
        try:
            config = self.backend_config(self.valves, user_valves)
            events = self.make_adapter(config, self.valves).stream(
                ChatRequest.from_body(
                    with_thinking_controls(body, self.valves, user_valves, __task__), backend_model_id(body.get("model", ""))
                )
            )
            if config.max_concurrency:
                events = in_turn(shared_queue(config.base_urls, config.max_concurrency), events)
        except ValidationError as exc:
            events = _one_error(config_error(exc))
        if __task__ or not body.get("stream"):
            return await collect_answer(events, model=body.get("model", ""))
        return render_stream(events, model=body.get("model", ""), emit=__event_emitter__, show_stats=show_stats,
                             batch_window=self.valves.BATCH_WINDOW_MS / 1000)
