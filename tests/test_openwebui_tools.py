"""Open WebUI's own tool loop through the built Flask pipe: a chat calls the built-in time tool and answers from it.

A real Open WebUI 0.12.4 runs the chat the way the browser starts it (a saved chat with
`chat_id`, message `id` and `session_id`; only then does its middleware add the built-in tools,
middleware.py ~2825). The prompt server is the emulator speaking R1-0528's markup: a tiny model
cannot call tools. It answers the first prompt with a call of `get_current_timestamp` and a
prompt that carries the tool's output with the time it read there, so an answer holding that
time proves Open WebUI ran its real tool on our call and fed the result back through the pipe.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.emulators.prompt_server import PromptServerEmulator
from tests.support.openwebui import OpenWebUI

MODEL = "r1relay_flask.tiny-r1"
R1_TIME_CALL = (
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_current_timestamp\n"
    "```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
)
TOOL_OUTPUT = re.compile(r"<｜tool▁output▁begin｜>(.*?)<｜tool▁output▁end｜>", re.DOTALL)


def r1_with_a_time_tool(prompt: str) -> tuple[str, ...]:
    """What R1-0528 would say: call the time tool when offered and not yet called, else answer from its output."""
    outputs = TOOL_OUTPUT.findall(prompt)
    if outputs:
        iso = json.loads(outputs[-1])["current_iso"]
        return ("The tool says the time.\n", "</think>\n\n", f"It is {iso} ", "now.")
    if "get_current_timestamp" in prompt:
        return ("The user asks the time; I have a tool.\n</think>\n\n", R1_TIME_CALL[:30], R1_TIME_CALL[30:])
    return ("No tools.\n</think>\n\n", "I cannot tell the time.")


def test_a_chat_calls_open_webuis_time_tool_through_the_flask_pipe(openwebui: OpenWebUI, built_dir: Path) -> None:
    emulator = PromptServerEmulator(reply=r1_with_a_time_tool).start()
    tasks_before = openwebui.tasks_config()
    try:
        openwebui.set_tasks(False)  # one chat, one backend call per model turn
        content = (built_dir / "r1relay_flask.py").read_text()
        openwebui.register_function("r1relay_flask", "r1relay Flask", content, "Flask pipe", type_hint="pipe")
        openwebui.set_valves("r1relay_flask", {"BASE_URLS": emulator.url, "API_KEY": "", "MODELS": "tiny-r1"})
        assert MODEL in [m["id"] for m in openwebui.models()]

        chat_id, task_ids = openwebui.start_chat_task(MODEL, [{"role": "user", "content": "What time is it?"}])
        assert task_ids
        for _ in range(600):  # bounded: 60 s
            if not openwebui.chat_task_ids(chat_id) and len(emulator.requests) >= 2:
                break
            time.sleep(0.1)

        prompts = [r["body"]["prompt"] for r in emulator.requests]
        assert len(prompts) == 2, prompts
        assert "get_current_timestamp" in prompts[0] and "You have the following functions available" in prompts[0]
        assert R1_TIME_CALL.split("```json")[0] in prompts[1]  # the call, rendered back as R1's template does
        (output,) = TOOL_OUTPUT.findall(prompts[1])
        iso = json.loads(output)["current_iso"]  # Open WebUI's real tool ran

        history = openwebui.json("GET", f"/api/v1/chats/{chat_id}")["chat"]["history"]
        message = history["messages"][history["currentId"]]
        assert message["content"] == f"It is {iso} now."  # the answer built from the tool's result, no markup
        output = message["output"]
        assert [item["type"] for item in output] == ["reasoning", "function_call", "function_call_output", "reasoning", "message"]
        call, result = output[1], output[2]
        assert (call["name"], call["arguments"], call["status"]) == ("get_current_timestamp", "{}", "completed")
        assert result["call_id"] == call["call_id"] and iso in json.dumps(result["output"])
        assert output[0]["content"][0]["text"] == "The user asks the time; I have a tool.\n"  # thinking before the call
    finally:
        openwebui.json("POST", "/api/v1/tasks/config/update", json=tasks_before)
        emulator.stop()
