"""Open WebUI's own tool loop through the built Flask and KTransformers pipes: a chat calls the built-in time tool.

A real Open WebUI 0.12.4 runs the chat the way the browser starts it (a saved chat with
`chat_id`, message `id` and `session_id`; only then does its middleware add the built-in tools,
middleware.py ~2825). The backend is an emulator speaking R1-0528's markup (a tiny model cannot
call tools): it calls `get_current_timestamp` when the prompt offers it, and once the prompt
carries the tool's output it answers with the time it read there. An answer holding that time
proves Open WebUI ran its real tool on our call and fed the result back through the pipe.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.emulators.ktransformers import KTransformersEmulator
from tests.emulators.prompt_server import PromptServerEmulator
from tests.support.openwebui import OpenWebUI

R1_TIME_CALL = (
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_current_timestamp\n"
    "```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
)
TOOL_OUTPUT = re.compile(r"<｜tool▁output▁begin｜>(.*?)<｜tool▁output▁end｜>", re.DOTALL)


def r1_with_a_time_tool(prompt: str) -> str:
    """What R1-0528 would say: call the time tool when offered and not yet called, else answer from its output."""
    outputs = TOOL_OUTPUT.findall(prompt)
    if outputs:
        return f"The tool says the time.\n</think>\n\nIt is {json.loads(outputs[-1])['current_iso']} now."
    if "get_current_timestamp" in prompt:
        return f"The user asks the time; I have a tool.\n</think>\n\n{R1_TIME_CALL}"
    return "No tools.\n</think>\n\nI cannot tell the time."


def flask_backend() -> tuple[Any, Callable[[dict], str]]:
    def reply(prompt: str) -> tuple[str, ...]:
        text = r1_with_a_time_tool(prompt)
        return tuple(text[i : i + 25] for i in range(0, len(text), 25))  # markup split across SSE events

    return PromptServerEmulator(reply=reply).start(), lambda body: body["prompt"]


def ktransformers_backend() -> tuple[Any, Callable[[dict], str]]:
    def text_of(messages: list[dict]) -> str:
        return "\n".join(str(m.get("content")) for m in messages)

    emulator = KTransformersEmulator(reply=lambda messages: r1_with_a_time_tool(text_of(messages))).start()
    return emulator, lambda body: text_of(body["messages"])


PIPES = {
    "flask": ("r1relay_flask", "r1relay_flask.tiny-r1", {"MODELS": "tiny-r1"}, flask_backend),
    "ktransformers": ("r1relay_ktransformers", "r1relay_ktransformers.DeepSeek-R1-0528", {"MODELS": "DeepSeek-R1-0528"}, ktransformers_backend),
}


@pytest.mark.parametrize("kind", PIPES)
def test_a_chat_calls_open_webuis_time_tool_through_the_pipe(openwebui: OpenWebUI, built_dir: Path, kind: str) -> None:
    function_id, model, valves, make_backend = PIPES[kind]
    emulator, prompt_of = make_backend()
    tasks_before = openwebui.tasks_config()
    try:
        openwebui.set_tasks(False)  # one chat, one backend call per model turn
        content = (built_dir / f"{function_id}.py").read_text()
        openwebui.register_function(function_id, function_id, content, "pipe", type_hint="pipe")
        openwebui.set_valves(function_id, {"BASE_URLS": emulator.url, "API_KEY": "", **valves})
        assert model in [m["id"] for m in openwebui.models()]

        chat_id, task_ids = openwebui.start_chat_task(model, [{"role": "user", "content": "What time is it?"}])
        assert task_ids
        for _ in range(600):  # bounded: 60 s
            if not openwebui.chat_task_ids(chat_id) and len(emulator.requests) >= 2:
                break
            time.sleep(0.1)

        prompts = [prompt_of(r["body"]) for r in emulator.requests]
        assert len(prompts) == 2, prompts
        assert "get_current_timestamp" in prompts[0] and "You have the following functions available" in prompts[0]
        assert R1_TIME_CALL.split("```json")[0] in prompts[1]  # the call, rendered back into the next prompt
        (output,) = TOOL_OUTPUT.findall(prompts[1])
        iso = json.loads(output)["current_iso"]  # Open WebUI's real tool ran

        history = openwebui.json("GET", f"/api/v1/chats/{chat_id}")["chat"]["history"]
        message = history["messages"][history["currentId"]]
        assert message["content"] == f"It is {iso} now."  # the answer built from the tool's result, no markup
        output_items = message["output"]
        kinds = [item["type"] for item in output_items]
        assert kinds == ["reasoning", "function_call", "function_call_output", "reasoning", "message"], kinds
        call, result = output_items[1], output_items[2]
        assert (call["name"], call["arguments"], call["status"]) == ("get_current_timestamp", "{}", "completed")
        assert result["call_id"] == call["call_id"] and iso in json.dumps(result["output"])
        assert output_items[0]["content"][0]["text"] == "The user asks the time; I have a tool.\n"  # thinking before the call
    finally:
        openwebui.json("POST", "/api/v1/tasks/config/update", json=tasks_before)
        emulator.stop()
