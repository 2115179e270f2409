"""
title: r1relay vLLM
author: r1relay
version: 0.1.0
license: MIT
description: DeepSeek-R1 and other reasoning models on vLLM (or any OpenAI-compatible server), thinking shown as Open WebUI's collapsible block.
required_open_webui_version: 0.6.0
"""

from typing import Literal

from pydantic import Field

from backend_adapters.backend_config import BackendConfig
from backend_adapters.manifold import ManifoldPipe
from backend_adapters.openai_compat import OpenAICompatAdapter
from backend_adapters.thinking_controls import ThinkingValves, UserThinkingValves
from backend_adapters.tool_support import TOOLS_CHOICES
from backend_adapters.valves import BackendValves, UserBackendValves, from_env


class Pipe(ManifoldPipe):
    class Valves(BackendValves, ThinkingValves):
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
        TOOLS: Literal["auto", "on", "off"] = Field(
            default="auto",
            description=(
                "Send the chat's tools (web search, knowledge, time, workspace and MCP tools). auto = yes, but a "
                "server that refuses them gets the chat without them and is remembered for 10 minutes; "
                "on = always (a refusal is an error); off = never."
            ),
            json_schema_extra=TOOLS_CHOICES,
        )

    class UserValves(UserBackendValves, UserThinkingValves):
        pass

    def make_adapter(self, config: BackendConfig, valves: Valves) -> OpenAICompatAdapter:
        return OpenAICompatAdapter(config, tools=valves.TOOLS)
