"""
title: r1relay KTransformers
author: r1relay
version: 0.1.0
license: MIT
description: DeepSeek-R1 on KTransformers (built-in server, SGLang `kt run`, or a hand-written wrapper): queued one at a time, thinking shown as Open WebUI's collapsible block.
required_open_webui_version: 0.6.0
"""

from typing import Literal

from pydantic import Field

from backend_adapters.backend_config import BackendConfig
from backend_adapters.ktransformers import KTransformersAdapter
from backend_adapters.manifold import ManifoldPipe
from backend_adapters.valves import BackendValves, UserBackendValves, from_env


class Pipe(ManifoldPipe):
    class Valves(BackendValves):
        BASE_URLS: str = Field(
            default_factory=lambda: from_env("R1RELAY_KTRANSFORMERS_BASE_URLS", "http://localhost:10002"),
            description="KTransformers server URLs, comma-separated, with or without /v1 (built-in server: 10002; `kt run`/SGLang: 30000).",
        )
        API_KEY: str = Field(
            default_factory=lambda: from_env("R1RELAY_KTRANSFORMERS_API_KEY", ""),
            description="The server's api_key (a wrong one makes KTransformers answer HTTP 500); users may bring their own.",
            json_schema_extra={"input": {"type": "password"}},
        )
        MODELS: str = Field(
            default_factory=lambda: from_env("R1RELAY_KTRANSFORMERS_MODELS", ""),
            description="Model ids to offer, comma-separated; empty = ask /v1/models (hand-written servers often have none: set it).",
        )
        NAME_PREFIX: str = Field(default="KTransformers: ", description="Shown before each model name in the model picker.")
        MAX_CONCURRENCY: int = Field(
            default=1,
            ge=0,
            description="Requests sent to the server at once; the rest queue here and see their place. The built-in server runs one at a time.",
        )
        CONNECT_TIMEOUT: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
        REQUEST_TIMEOUT: float = Field(
            default=1800.0,
            gt=0,
            description="Seconds to wait for the next token; prefill of a long prompt on CPU can take many minutes.",
        )
        FORCE_THINK: bool = Field(
            default=False,
            description="Send force_think (hand-written servers pre-fill <think>); output without an opening tag is then thinking. The built-in server takes --force_think instead.",
        )
        TOOL_FORMAT: Literal["auto", "deepseek", "hermes", "off"] = Field(
            default="auto",
            description="How tools are offered in the system message and calls read from the reply: deepseek (R1/V3 markup), hermes (Qwen3/QwQ <tool_call>), auto by model name, off = no tools.",
            json_schema_extra={"input": {"type": "select", "options": ["auto", "deepseek", "hermes", "off"]}},
        )

    class UserValves(UserBackendValves):
        pass

    def make_adapter(self, config: BackendConfig, valves: Valves) -> KTransformersAdapter:
        return KTransformersAdapter(config, force_think=valves.FORCE_THINK, tool_format=valves.TOOL_FORMAT)
