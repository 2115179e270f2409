"""The thinking toggle filter, the thinking budget/effort valves, background tasks without thinking, and images,
through the built functions against the vLLM emulator."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.emulators.vllm import VLLMEmulator
from tests.support.built import load_function
from tests.support.pipe_driver import chat_body, make_pipe, run_pipe

R1 = "r1relay_vllm.deepseek-ai/DeepSeek-R1"
QWEN3 = "r1relay_vllm.Qwen/Qwen3-8B"


@pytest.fixture
def toggle(built_dir: Path):
    return load_function(built_dir / "r1relay_thinking_toggle.py")


@pytest.fixture
def qwen3(vllm_emulator: VLLMEmulator) -> VLLMEmulator:
    vllm_emulator.models = ("Qwen/Qwen3-8B",)
    vllm_emulator.thinking_switch = True
    return vllm_emulator


async def test_the_toggle_is_a_switch_with_an_icon_that_merges_enable_thinking_false(toggle) -> None:
    assert toggle.Filter.toggle is True  # Open WebUI runs it only when the user switched it on
    icon = toggle.Filter().icon
    assert icon.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(icon.split(",", 1)[1]).startswith(b"<svg")
    body = {"model": "m", "messages": [], "chat_template_kwargs": {"custom": 1}}
    out = await toggle.Filter().inlet(body)
    assert out["chat_template_kwargs"] == {"custom": 1, "enable_thinking": False}
    assert (await toggle.Filter().inlet({"model": "m"}))["chat_template_kwargs"] == {"enable_thinking": False}


async def test_toggled_off_qwen3_answers_without_a_thought_block(vllm, toggle, qwen3: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=qwen3.base_url)
    run = await run_pipe(pipe, vllm, await toggle.Filter().inlet(chat_body(QWEN3)))
    assert qwen3.requests[-1]["body"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert run.reasoning == "" and run.content == "Hello! How can I help you today?"
    assert not [s for s in run.statuses if "always thinks" in s["description"]]
    run = await run_pipe(pipe, vllm, chat_body(QWEN3))  # switch off again: it thinks
    assert "chat_template_kwargs" not in qwen3.requests[-1]["body"]
    assert run.reasoning.startswith("Okay, the user greets me.")


async def test_a_model_that_cannot_stop_thinking_says_so_once(vllm, toggle, vllm_emulator: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, await toggle.Filter().inlet(chat_body(R1)))
    notes = [s["description"] for s in run.statuses if "always thinks" in s["description"]]
    assert notes == ["DeepSeek-R1 always thinks: its chat template cannot turn the thinking off, so the thinking toggle has no effect."]
    assert run.content == "Hello! How can I help you today?" and not run.errors


async def test_background_tasks_ask_for_no_thinking(vllm, qwen3: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=qwen3.base_url, THINKING_BUDGET=512)
    body = chat_body(QWEN3, "Create a title", stream=False, chat_template_kwargs={"x": 1})
    run = await run_pipe(pipe, vllm, body, task="title_generation")
    sent = qwen3.requests[-1]["body"]
    assert sent["chat_template_kwargs"] == {"x": 1, "enable_thinking": False}
    assert "thinking_token_budget" not in sent  # no thinking asked: no budget either
    assert run.text == "Hello! How can I help you today?"


async def test_budget_and_effort_come_from_the_chat_then_the_user_then_the_admin(vllm, vllm_emulator: VLLMEmulator) -> None:
    def sent() -> tuple:
        body = vllm_emulator.requests[-1]["body"]
        return body.get("thinking_token_budget"), body.get("reasoning_effort")

    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    await run_pipe(pipe, vllm, chat_body(R1))
    assert sent() == (None, None)  # nothing set: nothing sent, the server's defaults hold
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, THINKING_BUDGET=2048, REASONING_EFFORT="medium")
    await run_pipe(pipe, vllm, chat_body(R1))
    assert sent() == (2048, "medium")
    await run_pipe(pipe, vllm, chat_body(R1), user_valves={"THINKING_BUDGET": 256, "REASONING_EFFORT": "low"})
    assert sent() == (256, "low")
    # The chat's advanced params (Open WebUI puts them at the top of the body) win over both.
    body = chat_body(R1, reasoning_effort="high", thinking_token_budget=64)
    await run_pipe(pipe, vllm, body, user_valves={"THINKING_BUDGET": 256, "REASONING_EFFORT": "low"})
    assert sent() == (64, "high")


async def test_image_parts_reach_a_vision_server_untouched(vllm, vllm_emulator: VLLMEmulator) -> None:
    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    content = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": pixel}}]
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, {"model": R1, "stream": True, "messages": [{"role": "user", "content": content}]})
    assert vllm_emulator.requests[-1]["body"]["messages"][0]["content"] == content
    assert vllm_emulator.images == [pixel]
    assert run.content.endswith("I saw 1 image(s).")
