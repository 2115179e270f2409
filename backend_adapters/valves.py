"""The settings every r1relay pipe shares, as Open WebUI valves.

Defaults come from environment variables where a deployment may want to set
them without clicking through the admin UI (R1RELAY_<PIPE>_<VALVE>).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field

SECRET = {"input": {"type": "password"}}
THINK_START_CHOICES = {"input": {"type": "select", "options": ["auto", "yes", "no"]}}


def from_env(name: str, default: str) -> str:
    return os.environ.get(name, default)


class BackendValves(BaseModel):
    """Admin settings; each pipe subclasses this to set its own defaults."""

    BASE_URLS: str = Field(
        default="http://localhost:8000/v1",
        description="Backend URLs, comma-separated (replicas of one deployment; load is spread and a dead one is skipped).",
    )
    API_KEY: str = Field(default="", description="Key sent to the backend; users may bring their own.", json_schema_extra=SECRET)
    MODELS: str = Field(default="", description="Model ids to offer, comma-separated; empty = ask the backend.")
    NAME_PREFIX: str = Field(default="", description="Shown before each model name in the model picker.")
    THINK_START: Literal["auto", "yes", "no"] = Field(
        default="auto",
        description="Does output without <think> start inside the thinking? auto = yes for R1, R1 distills, QwQ.",
        json_schema_extra=THINK_START_CHOICES,
    )
    CONNECT_TIMEOUT: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    REQUEST_TIMEOUT: float = Field(
        default=600.0, gt=0, description="Seconds to wait for the next token (long prompts on slow backends need minutes)."
    )
    MAX_CONCURRENCY: int = Field(default=0, ge=0, description="Most requests in flight to this backend; 0 = no limit. Others queue.")
    VERIFY_TLS: bool = Field(default=True, description="Check the backend's TLS certificate (turn off only for self-signed test setups).")
    ALLOW_USER_BASE_URLS: bool = Field(default=False, description="Let users point the pipe at their own backend URL in their settings.")
    SHOW_STATS: bool = Field(default=True, description="Show tokens, tokens/s and time to first token in a status line above each answer.")
    BATCH_WINDOW_MS: int = Field(
        default=80,
        ge=0,
        le=250,
        description="While many chats stream, a token may wait up to this many ms to go out with the next ones "
        "(fewer, larger chunks: less Open WebUI CPU per token). One chat alone never waits; 0 = never.",
    )


class UserBackendValves(BaseModel):
    """What each user may set for themselves."""

    API_KEY: str = Field(default="", description="Your own backend key; wins over the admin's.", json_schema_extra=SECRET)
    BASE_URLS: str = Field(default="", description="Your own backend URL (only if the admin allows it).")
    SHOW_STATS: bool = Field(default=True, description="Show tokens, tokens/s and time to first token in a status line above answers.")
