"""The status line costs few database writes: a quick answer gets one status, a slow start still says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulators.vllm import VLLMEmulator
from tests.support.built import load_function
from tests.support.pipe_driver import chat_body, make_pipe, run_pipe

MODEL = "r1relay_vllm.deepseek-ai/DeepSeek-R1"


@pytest.fixture
def vllm(built_dir: Path):
    return load_function(built_dir / "r1relay_vllm.py")


async def test_a_quick_answer_costs_one_status_the_stats_line(vllm, vllm_emulator: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.content and not run.errors
    assert len(run.statuses) == 1  # no "Connecting…", "Thinking…", "Answering…": one database write per chat
    assert run.statuses[0]["done"] is True and "tokens/s" in run.statuses[0]["description"]


async def test_without_stats_a_quick_answer_sends_no_status_at_all(vllm, vllm_emulator: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, SHOW_STATS=False)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.content and run.statuses == []  # nothing was shown, so nothing needs hiding


async def test_a_slow_first_token_still_shows_where_it_waits(vllm, vllm_emulator: VLLMEmulator, monkeypatch) -> None:
    monkeypatch.setattr(vllm, "STATUS_GRACE", 0.05)
    vllm_emulator.token_delay = 0.3  # the first token takes longer than the grace
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, SHOW_STATS=False)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.content
    descriptions = [s["description"] for s in run.statuses]
    assert descriptions[0].startswith("Connecting to http://127.0.0.1:")
    assert run.statuses[-1] == {"description": "", "done": True, "hidden": True}  # the note is cleared at the end
