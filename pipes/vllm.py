"""
title: r1relay vLLM
author: r1relay
version: 0.1.0
license: MIT
description: DeepSeek-R1 and other reasoning models on vLLM (or any OpenAI-compatible server), thinking shown as Open WebUI's collapsible block.
required_open_webui_version: 0.6.43
"""

from pydantic import Field

from backend_adapters.backend_config import BackendConfig
from backend_adapters.manifold import ManifoldPipe
from backend_adapters.openai_compat import OpenAICompatAdapter
from backend_adapters.valves import BackendValves, UserBackendValves, from_env


class Pipe(ManifoldPipe):
    class Valves(BackendValves):
        BASE_URLS: str = Field(
            default_factory=lambda: from_env("R1RELAY_VLLM_BASE_URLS", "http://localhost:8000/v1"),
            description="vLLM server URLs, comma-separated, with or without /v1 (replicas of one deployment).",
        )
        API_KEY: str = Field(
            default_factory=lambda: from_env("R1RELAY_VLLM_API_KEY", ""),
            description="vLLM's --api-key; users may bring their own.",
            json_schema_extra={"input": {"type": "password"}},
        )
        NAME_PREFIX: str = Field(default="vLLM: ", description="Shown before each model name in the model picker.")

    class UserValves(UserBackendValves):
        pass

    def make_adapter(self, config: BackendConfig, valves: Valves) -> OpenAICompatAdapter:
        return OpenAICompatAdapter(config)
