"""The status line costs few database writes: no Thinking…/Answering…, no repeats, progress notes throttled."""

from __future__ import annotations

import asyncio

import pytest

from backend_adapters import status_line
from backend_adapters.status_line import StatusLine
from tests.emulators.vllm import VLLMEmulator
from tests.support.pipe_driver import chat_body, make_pipe, run_pipe

MODEL = "r1relay_vllm.deepseek-ai/DeepSeek-R1"


async def test_an_answer_from_a_prompt_backend_costs_one_status_the_stats_line(vllm, vllm_emulator: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.reasoning and run.content and not run.errors
    descriptions = [s["description"] for s in run.statuses]
    assert len(descriptions) == 1, descriptions  # no "Connecting…" it answered at once, no "Thinking…": each a DB write
    assert run.statuses[0]["done"] is True and "tokens/s" in descriptions[0]


async def test_a_backend_slow_to_answer_shows_connecting(vllm, vllm_emulator: VLLMEmulator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm, "PROGRESS_DELAY", 0.1)
    vllm_emulator.token_delay = 0.3  # the first token 0.3 s after the request: longer than the delay
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL, max_tokens=3))
    descriptions = [s["description"] for s in run.statuses]
    assert descriptions[0].startswith("Connecting to http://127.0.0.1:"), descriptions
    assert "tokens/s" in descriptions[-1]


async def test_without_stats_the_line_is_cleared_once(vllm, vllm_emulator: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, SHOW_STATS=False)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.content
    assert run.statuses == []  # nothing was shown, so there is nothing to clear


async def test_progress_notes_are_throttled_and_repeats_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_line, "STATUS_GRACE", 0.2)
    sent: list[str] = []

    async def emit(event: dict) -> None:
        sent.append(event["data"]["description"])

    line = StatusLine(emit)
    await line.progress("Queued: 5 ahead of you")
    await line.progress("Queued: 4 ahead of you")  # within the grace: not worth a write
    await line.progress("Queued: 3 ahead of you")
    assert sent == ["Queued: 5 ahead of you"]
    await asyncio.sleep(0.25)
    await line.progress("Queued: 2 ahead of you")
    await line.show("done line", done=True)
    await line.show("done line", done=True)  # the same text again: no second write
    assert sent == ["Queued: 5 ahead of you", "Queued: 2 ahead of you", "done line"]
    await StatusLine(emit).show("", done=True, hidden=True)  # nothing shown on that line: nothing to hide
    assert len(sent) == 3
