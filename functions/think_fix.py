"""
title: r1relay think fix
author: r1relay
version: 0.1.0
license: MIT
description: Shows DeepSeek-R1-style thinking as the collapsible block for models that do not go through r1relay's pipes (admin OpenAI connections, direct connections), instead of raw text and a stray </think>.
required_open_webui_version: 0.10.2
"""

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, Field

from backend_adapters.model_families import starts_in_thinking
from backend_adapters.openwebui_release import stores_reasoning_in_content
from backend_adapters.think_stream_fix import ThinkStreamStore, fix_chunk, fix_stored_message, stream_key

OWN_PIPE_PREFIX = "r1relay_"


def model_names(model: dict | None, body_model: str = "", chunk_model: str = "") -> list[str]:
    """Every name a model goes by: Open WebUI's id, a workspace model's base, the backend's own id."""
    model = model if isinstance(model, dict) else {}
    info = model.get("info") if isinstance(model.get("info"), dict) else {}
    upstream = model.get("openai") if isinstance(model.get("openai"), dict) else {}
    names = [model.get("id"), body_model, info.get("base_model_id"), upstream.get("id"), chunk_model]
    return [name for name in dict.fromkeys(names) if isinstance(name, str) and name]


class Filter:
    class Valves(BaseModel):
        priority: int = Field(default=0, description="Order among filters; lower runs first.")
        MODELS: str = Field(
            default="",
            description=(
                "Model ids to fix, comma-separated, `*` wildcards allowed; empty = models that look like "
                "DeepSeek-R1, its distills or QwQ; `*` alone = every model (only <think>-tagged output is "
                "touched for non-R1 names unless THINK_START is yes)."
            ),
        )
        THINK_START: Literal["auto", "yes", "no"] = Field(
            default="auto",
            description=(
                "Does output without <think> start inside the thinking? auto = yes for R1-like names and for "
                "models listed by name in MODELS."
            ),
            json_schema_extra={"input": {"type": "select", "options": ["auto", "yes", "no"]}},
        )

    class UserValves(BaseModel):
        ENABLED: bool = Field(default=True, description="Show the thinking of R1-style models as a collapsible block.")

    def __init__(self) -> None:
        self.valves = self.Valves()
        # One entry per streaming answer, keyed by chat and message id; bounded and self-cleaning.
        self.streams = ThinkStreamStore()

    def think_mode(self, names: list[str]) -> bool | None:
        """None when the filter leaves this model alone; else whether bare output starts in thinking."""
        if not names or any(name.startswith(OWN_PIPE_PREFIX) for name in names):
            return None
        patterns = [p.strip() for p in self.valves.MODELS.replace("\n", ",").split(",") if p.strip()]
        family = any(starts_in_thinking(name) for name in names)
        listed = any(fnmatchcase(name.lower(), p.lower()) for name in names for p in patterns if p != "*")
        if patterns and not (listed or "*" in patterns):
            return None
        if not patterns and not family:
            return None
        if self.valves.THINK_START != "auto":
            return self.valves.THINK_START == "yes"
        return family or listed

    @staticmethod
    def enabled_for(user: dict | None) -> bool:
        valves = (user or {}).get("valves")
        return bool(getattr(valves, "ENABLED", True))

    async def stream(
        self,
        event: dict,
        __user__: dict | None = None,
        __metadata__: dict | None = None,
        __model__: dict | None = None,
        __body__: dict | None = None,
        __chat_id__: str | None = None,
        __message_id__: str | None = None,
    ) -> dict:
        """Called by Open WebUI with every parsed chunk of a streamed answer."""
        if not isinstance(event, dict) or not self.enabled_for(__user__):
            return event
        names = model_names(__model__, (__body__ or {}).get("model", ""), str(event.get("model") or ""))
        mode = self.think_mode(names)
        if mode is None:
            return event
        key = stream_key(__metadata__, __chat_id__, __message_id__, event)
        return fix_chunk(event, self.streams, key, mode)

    async def outlet(
        self,
        body: dict,
        __user__: dict | None = None,
        __metadata__: dict | None = None,
        __model__: dict | None = None,
    ) -> dict:
        """Fixes a finished reply that still holds raw tags (non-streamed answers) and ends its stream state."""
        meta = __metadata__ or {}
        if meta.get("message_id"):
            self.streams.discard(f"{meta.get('chat_id') or ''}/{meta['message_id']}")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not messages or not self.enabled_for(__user__):
            return body
        mode = self.think_mode(model_names(__model__, body.get("model", "")))
        if mode is not None and isinstance(messages[-1], dict):
            fix_stored_message(messages[-1], mode, reasoning_in_content=stores_reasoning_in_content())
        return body
