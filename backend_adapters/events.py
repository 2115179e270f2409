"""The normalized events every adapter yields, whatever the backend speaks.

One small vocabulary lets one renderer serve every backend: adding a backend
means writing an adapter, never touching the Open WebUI side.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A piece of the model's thinking, streamed as it arrives."""

    text: str


@dataclass(frozen=True, slots=True)
class Content:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A piece of one tool call the model asks for, in OpenAI's streamed shape.

    Open WebUI gathers pieces by `index`: the first piece of a call carries its
    `id` and `name`, later ones more of its JSON `arguments`. Open WebUI runs
    the tool and calls the model again with the result.
    """

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the backend (either may be unknown)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """The backend ended the answer normally."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """Something the user should see: a notice, or progress while waiting (connecting, queued, …)."""

    description: str
    done: bool = False
    progress: bool = False  # only worth showing if the wait lasts (status_line.py); notices show at once


@dataclass(frozen=True, slots=True)
class Error:
    """A fault, already phrased as one sentence for the user, secrets removed."""

    message: str


Event = Reasoning | Content | ToolCall | Usage | Finish | Status | Error
