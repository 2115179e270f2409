"""The real-Open-WebUI harness: server, admin, functions, models, streamed chat through a pipe, Stop."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.openwebui import OpenWebUI

TRIVIAL_PIPE_ID = "harness_trivial_pipe"
TRIVIAL_PIPE = '''"""
title: Harness trivial pipe
version: 0.1.0
"""

import asyncio
import pathlib


class Pipe:
    async def pipe(self, body: dict, __user__: dict | None = None):
        last = body["messages"][-1]["content"]
        if last.startswith("hang "):
            pathlib.Path(last[5:]).write_text("running")  # tells the test the pipe is under way
            await asyncio.sleep(3600)
        yield {"choices": [{"delta": {"reasoning_content": "thinking about it"}}]}
        yield {"choices": [{"delta": {"content": f"echo: {last}"}}]}
'''


def register_trivial_pipe(ui: OpenWebUI) -> str:
    ui.register_function(TRIVIAL_PIPE_ID, "Harness trivial pipe", TRIVIAL_PIPE, "test pipe", type_hint="pipe")
    return TRIVIAL_PIPE_ID


def test_server_starts_with_an_admin(openwebui: OpenWebUI) -> None:
    me = openwebui.json("GET", "/api/v1/auths/")
    assert me["email"] == openwebui.admin_email and me["role"] == "admin"
    assert isinstance(openwebui.models(), list)


def test_trivial_pipe_registers_and_is_listed(openwebui: OpenWebUI) -> None:
    function = openwebui.register_function(TRIVIAL_PIPE_ID, "Harness trivial pipe", TRIVIAL_PIPE, "d", type_hint="pipe")
    assert function["is_active"] and function["type"] == "pipe"
    again = openwebui.register_function(TRIVIAL_PIPE_ID, "Harness trivial pipe", TRIVIAL_PIPE, "d", type_hint="pipe")
    assert again["is_active"], "registering twice updates and keeps it active"
    assert TRIVIAL_PIPE_ID in {model["id"] for model in openwebui.models()}


def test_streamed_chat_through_the_pipe_carries_reasoning_and_content(openwebui: OpenWebUI) -> None:
    model = register_trivial_pipe(openwebui)
    chunks = openwebui.chat(model, [{"role": "user", "content": "hello"}])
    deltas = [choice.get("delta") or {} for chunk in chunks for choice in chunk.get("choices") or []]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "thinking about it"
    assert "".join(d.get("content") or "" for d in deltas) == "echo: hello"


def test_non_streamed_chat_returns_one_completion(openwebui: OpenWebUI) -> None:
    model = register_trivial_pipe(openwebui)
    [reply] = openwebui.chat(model, [{"role": "user", "content": "hi"}], stream=False)
    assert "echo: hi" in str(reply)


def test_a_plain_user_sees_and_uses_the_pipe(openwebui: OpenWebUI) -> None:
    model = register_trivial_pipe(openwebui)
    token = openwebui.create_user("Plain", f"plain-{time.monotonic_ns()}@example.com", "plain-pw-123")
    assert model not in {m["id"] for m in openwebui.models(token=token)}, "pipe models start admin-only"
    openwebui.make_model_public(model)
    assert model in {m["id"] for m in openwebui.models(token=token)}
    chunks = openwebui.chat(model, [{"role": "user", "content": "x"}], token=token)
    assert any("echo: x" in str(chunk) for chunk in chunks)


def test_stop_cancels_a_running_chat_task(openwebui: OpenWebUI, tmp_path: Path) -> None:
    model = register_trivial_pipe(openwebui)
    marker = tmp_path / "pipe-running"
    chat_id, task_ids = openwebui.start_chat_task(model, [{"role": "user", "content": f"hang {marker}"}])
    assert task_ids and openwebui.chat_task_ids(chat_id) == task_ids
    # Stop once the pipe runs, as a user would: Open WebUI's own set-up writes are done by then.
    for _ in range(1000):
        if marker.exists():
            break
        time.sleep(0.01)
    assert marker.exists(), "the pipe never started"
    assert openwebui.stop_chat(chat_id)["status"] is True
    assert openwebui.chat_task_ids(chat_id) == []


def test_tasks_switch_off_and_back_on(openwebui: OpenWebUI) -> None:
    before = openwebui.tasks_config()
    try:
        off = openwebui.set_tasks(False)
        assert not off["ENABLE_TITLE_GENERATION"] and not off["ENABLE_FOLLOW_UP_GENERATION"]
        one = openwebui.set_tasks(ENABLE_TITLE_GENERATION=True)
        assert one["ENABLE_TITLE_GENERATION"] and not one["ENABLE_TAGS_GENERATION"]
    finally:
        openwebui.json("POST", "/api/v1/tasks/config/update", json=before)
