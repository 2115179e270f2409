"""Drive a loaded pipe the way Open WebUI's functions.py does, recording what users would see."""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PipeRun:
    chunks: list[dict] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    text: str | None = None  # the non-streamed answer
    completion: dict | None = None  # a non-streamed reply returned as a completion dict (tool calls)

    @property
    def reasoning(self) -> str:
        return "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in self.chunks if c.get("choices"))

    @property
    def content(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c.get("choices"))

    @property
    def tool_call_pieces(self) -> list[dict]:
        """Every streamed `delta.tool_calls` entry, in order."""
        return [t for c in self.chunks if c.get("choices") for t in c["choices"][0]["delta"].get("tool_calls", [])]

    @property
    def finish_reasons(self) -> list[str]:
        return [c["choices"][0]["finish_reason"] for c in self.chunks if c.get("choices") and c["choices"][0].get("finish_reason")]

    @property
    def errors(self) -> list[str]:
        return [c["error"] for c in self.chunks if "error" in c]

    @property
    def usage(self) -> dict | None:
        found = [c["usage"] for c in self.chunks if c.get("usage")]
        return found[-1] if found else None

    def everything(self) -> str:
        """All text a user could see, for checks that a secret never appears."""
        return repr(self.chunks) + repr(self.statuses) + (self.text or "") + repr(self.completion or "")


def make_pipe(module: types.ModuleType, **valves: Any) -> Any:
    pipe = module.Pipe()
    pipe.valves = module.Pipe.Valves(**valves)
    return pipe


async def run_pipe(
    pipe: Any,
    module: types.ModuleType,
    body: dict,
    *,
    user_valves: dict | None = None,
    task: str | None = None,
    run: PipeRun | None = None,
) -> PipeRun:
    run = run or PipeRun()

    async def emit(event: dict) -> None:
        if event.get("type") == "status":
            run.statuses.append(event["data"])

    user = {"id": "user-1", "name": "Test", "role": "user", "valves": module.Pipe.UserValves(**(user_valves or {}))}
    result = await pipe.pipe(body=body, __user__=user, __event_emitter__=emit, __task__=task)
    if isinstance(result, str):
        run.text = result
        return run
    if isinstance(result, dict):
        run.completion = result
        return run
    async for chunk in result:
        run.chunks.append(chunk)
    return run


def chat_body(model: str, text: str = "Hello", stream: bool = True, **params: Any) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream, **params}
