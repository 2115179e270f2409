"""
title: r1relay Flask
author: r1relay
version: 0.1.0
license: MIT
description: Reasoning models behind a small Flask/FastAPI prompt server (POST /generate, SSE /stream): chat rendered with the model's template, thinking shown as Open WebUI's collapsible block.
required_open_webui_version: 0.6.0
"""

from typing import Literal

from pydantic import Field

from backend_adapters.backend_config import BackendConfig
from backend_adapters.manifold import ManifoldPipe
from backend_adapters.prompt_server import PromptServerAdapter, PromptServerSettings
from backend_adapters.valves import BackendValves, UserBackendValves, from_env


class Pipe(ManifoldPipe):
    class Valves(BackendValves):
        BASE_URLS: str = Field(
            default_factory=lambda: from_env("R1RELAY_FLASK_BASE_URLS", "http://localhost:5000"),
            description="Prompt server URLs, comma-separated (replicas of one deployment), without the endpoint path.",
        )
        API_KEY: str = Field(
            default_factory=lambda: from_env("R1RELAY_FLASK_API_KEY", ""),
            description="Sent in the AUTH_HEADER header; users may bring their own.",
            json_schema_extra={"input": {"type": "password"}},
        )
        MODELS: str = Field(
            default_factory=lambda: from_env("R1RELAY_FLASK_MODELS", "tiny-r1"),
            description="Names to show in the model picker, comma-separated (prompt servers have no model list; the name is not sent).",
        )
        NAME_PREFIX: str = Field(default="Flask: ", description="Shown before each model name in the model picker.")
        MAX_CONCURRENCY: int = Field(
            default=1,
            ge=0,
            description="Requests sent to the server at once (small servers generate one at a time); the rest queue here and see their place. 0 = no limit.",
        )
        PROMPT_TEMPLATE: Literal["deepseek-r1", "qwq", "qwen3", "chatml", "llama3", "plain"] = Field(
            default="deepseek-r1",
            description="How the chat becomes one prompt: the model's own chat template (deepseek-r1 and qwq pre-fill <think>; qwen3 for Qwen3; plain for servers with none).",
            json_schema_extra={"input": {"type": "select", "options": ["deepseek-r1", "qwq", "qwen3", "chatml", "llama3", "plain"]}},
        )
        USE_STREAM: bool = Field(
            default=True, description="Stream from STREAM_PATH (SSE, plain text or NDJSON, told apart by itself); off = one answer from GENERATE_PATH."
        )
        GENERATE_PATH: str = Field(default="/generate", description="Path of the one-shot endpoint (JSON in, JSON out).")
        STREAM_PATH: str = Field(default="/stream", description="Path of the Server-Sent Events endpoint.")
        STREAM_METHOD: Literal["POST", "GET"] = Field(
            default="POST",
            description="POST sends the fields as JSON; GET sends them as query parameters (?prompt=…).",
            json_schema_extra={"input": {"type": "select", "options": ["POST", "GET"]}},
        )
        AUTH_HEADER: str = Field(default="X-API-Key", description="Header that carries API_KEY (Authorization gets a Bearer prefix).")
        PROMPT_FIELD: str = Field(default="prompt", description="Request field holding the prompt.")
        RESPONSE_FIELD: str = Field(default="response", description="Field of the /generate answer holding the text.")
        CHAT_TEMPLATE: str = Field(
            default="",
            description="The model's own chat template, for families PROMPT_TEMPLATE lacks: paste its tokenizer_config.json (or only the Jinja chat_template), or give that file's path on this server. Empty = PROMPT_TEMPLATE.",
        )
        ECHO: Literal["auto", "strip", "keep"] = Field(
            default="auto",
            description="Servers that send the prompt back before the answer (Hugging Face generate decoded whole): auto = strip it when the reply starts with it; strip = always (also a reply cut inside it); keep = never.",
            json_schema_extra={"input": {"type": "select", "options": ["auto", "strip", "keep"]}},
        )
        SSE_STYLE: Literal["auto", "strict", "raw-tokens"] = Field(
            default="auto",
            description="How to read STREAM_PATH's events: raw-tokens = the server writes tokens raw (data: {token}), so extra blank lines and lines without a field are the token's newlines and text; strict = the SSE spec only; auto = raw-tokens unless events carry JSON.",
            json_schema_extra={"input": {"type": "select", "options": ["auto", "strict", "raw-tokens"]}},
        )

    class UserValves(UserBackendValves):
        pass

    def make_adapter(self, config: BackendConfig, valves: Valves) -> PromptServerAdapter:
        return PromptServerAdapter(
            config,
            PromptServerSettings(
                template=valves.PROMPT_TEMPLATE,
                use_stream=valves.USE_STREAM,
                generate_path=valves.GENERATE_PATH,
                stream_path=valves.STREAM_PATH,
                stream_method=valves.STREAM_METHOD,
                auth_header=valves.AUTH_HEADER,
                prompt_field=valves.PROMPT_FIELD,
                response_field=valves.RESPONSE_FIELD,
                echo=valves.ECHO,
                sse_style=valves.SSE_STYLE,
                chat_template=valves.CHAT_TEMPLATE,
            ),
        )
