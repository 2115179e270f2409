"""The built vLLM pipe against the vLLM emulator: reasoning shapes, parameters, keys, errors, cancel."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.emulators.vllm import VLLMEmulator
from tests.support.pipe_driver import chat_body, make_pipe, run_pipe
from tests.support.ports import free_port
from tests.support.waiting import until

MODEL = "r1relay_vllm.deepseek-ai/DeepSeek-R1"
REASONING = "Okay, the user greets me.\nI should greet back.\n"
ANSWER = "Hello! How can I help you today?"



@pytest.mark.parametrize("reasoning_field", ["none", "reasoning_content", "both", "reasoning"])
async def test_thinking_and_answer_come_out_separated(vllm, vllm_emulator: VLLMEmulator, reasoning_field: str) -> None:
    vllm_emulator.reasoning_field = reasoning_field  # type: ignore[assignment]
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.reasoning == REASONING.strip() + "\n"
    assert run.content == ANSWER
    assert not run.errors
    assert run.usage and run.usage["completion_tokens"] > 0
    assert run.statuses[-1]["done"] is True and "tokens/s" in run.statuses[-1]["description"]
    descriptions = [s["description"] for s in run.statuses]
    assert len(descriptions) == len(set(descriptions))  # each status once: on a saved chat every one is a DB write


async def test_tagged_output_of_a_model_that_opens_its_own_think_tag(vllm, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.models = ("Qwen/Qwen3-8B",)
    vllm_emulator.reasoning_field = "none"
    vllm_emulator.script = "<think>\nLet me think.\n</think>\n\nDone."
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.url)  # without /v1: the pipe adds it
    run = await run_pipe(pipe, vllm, chat_body("r1relay_vllm.Qwen/Qwen3-8B"))
    assert (run.reasoning, run.content) == ("Let me think.\n", "Done.")


async def test_plain_model_output_stays_answer(vllm, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.models = ("meta-llama/Llama-3.1-8B-Instruct",)
    vllm_emulator.reasoning_field = "none"
    vllm_emulator.script = "Just an answer with </think> in it."
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.url)
    run = await run_pipe(pipe, vllm, chat_body("r1relay_vllm.meta-llama/Llama-3.1-8B-Instruct"))
    assert (run.reasoning, run.content) == ("", "Just an answer with </think> in it.")


async def test_sampling_parameters_and_clean_history_reach_the_backend(vllm, vllm_emulator: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    body = {
        "model": MODEL,
        "stream": True,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": '<details type="reasoning" done="true">\n> old thoughts\n</details>\nHello!'},
            {"role": "user", "content": "Again"},
        ],
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 512,
        "stop": ["</s>"],
        "seed": 7,
        "top_k": 40,
        "chat_id": "open-webui-bookkeeping",
    }
    await run_pipe(pipe, vllm, body)
    sent = vllm_emulator.requests[-1]["body"]
    assert sent["model"] == "deepseek-ai/DeepSeek-R1"
    assert {k: sent[k] for k in ("temperature", "top_p", "max_tokens", "stop", "seed", "top_k")} == {
        "temperature": 0.6, "top_p": 0.95, "max_tokens": 512, "stop": ["</s>"], "seed": 7, "top_k": 40,
    }
    assert sent["stream_options"] == {"include_usage": True}
    assert "chat_id" not in sent
    assert sent["messages"][2] == {"role": "assistant", "content": "Hello!"}


async def test_non_streamed_task_calls_get_the_answer_without_thinking(vllm, vllm_emulator: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL, stream=False))
    assert run.text == ANSWER
    run = await run_pipe(pipe, vllm, chat_body(MODEL), task="title_generation")
    assert run.text == ANSWER


async def test_model_list_comes_from_the_backend_or_the_valve(vllm, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.models = ("deepseek-ai/DeepSeek-R1", "Qwen/QwQ-32B")
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    assert await pipe.pipes() == [
        {"id": "deepseek-ai/DeepSeek-R1", "name": "vLLM: deepseek-ai/DeepSeek-R1"},
        {"id": "Qwen/QwQ-32B", "name": "vLLM: Qwen/QwQ-32B"},
    ]
    pipe = make_pipe(vllm, BASE_URLS=f"http://127.0.0.1:{free_port()}", MODELS="a, b", NAME_PREFIX="")
    assert [m["id"] for m in await pipe.pipes()] == ["a", "b"]
    pipe = make_pipe(vllm, BASE_URLS=f"http://127.0.0.1:{free_port()}")
    (entry,) = await pipe.pipes()
    assert entry["id"] == "unavailable" and "Cannot reach" in entry["name"]


async def test_api_keys_admin_and_user(vllm, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.api_key = "sk-user-secret-123"
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, API_KEY="sk-admin-wrong-456")
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.errors and "rejected the API key" in run.errors[0] and "401" in run.errors[0]
    assert "sk-admin-wrong-456" not in run.everything()
    run = await run_pipe(pipe, vllm, chat_body(MODEL), user_valves={"API_KEY": "sk-user-secret-123"})
    assert run.content == ANSWER
    assert vllm_emulator.requests[-1]["headers"]["Authorization"] == "Bearer sk-user-secret-123"
    assert "sk-user-secret-123" not in run.everything()


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda e: setattr(e, "models", ("other",)), "does not serve `deepseek-ai/DeepSeek-R1` (HTTP 404"),
        (lambda e: setattr(e, "max_model_len", 3), "too long for the model's context window of 3 tokens"),
        (lambda e: setattr(e, "fault", "html_500"), "failed with HTTP 502 (Bad Gateway)."),
        (lambda e: (setattr(e, "fault", "status"), setattr(e, "fault_status", 429)), "is busy (HTTP 429"),
    ],
    ids=["unknown-model", "context-too-long", "html-502", "busy-429"],
)
async def test_http_errors_become_one_sentence(vllm, vllm_emulator: VLLMEmulator, setup, expected: str) -> None:
    setup(vllm_emulator)
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert len(run.errors) == 1 and expected in run.errors[0]
    assert "<html" not in run.everything() and "Traceback" not in run.everything()
    assert run.statuses[-1]["done"] is True


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("drop_mid_stream", "dropped mid-answer"),
        ("error_chunk", "Engine loop has died"),
        ("malformed_chunk", "malformed stream chunk"),
    ],
)
async def test_mid_stream_faults_keep_what_already_arrived(vllm, vllm_emulator: VLLMEmulator, fault: str, expected: str) -> None:
    vllm_emulator.fault = fault  # type: ignore[assignment]
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.reasoning.startswith("Okay, the user")
    assert len(run.errors) == 1 and expected in run.errors[0]


async def test_unreachable_backend_and_failover(vllm, vllm_emulator: VLLMEmulator) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    pipe = make_pipe(vllm, BASE_URLS=dead)
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert run.errors == [f"Cannot reach the backend at {dead}: is the server running?"]
    pipe = make_pipe(vllm, BASE_URLS=f"{dead}, {vllm_emulator.base_url}")
    for _ in range(2):  # whichever replica the rotation starts with, the live one answers
        run = await run_pipe(pipe, vllm, chat_body(MODEL))
        assert run.content == ANSWER and not run.errors


async def test_bad_valve_is_one_sentence(vllm) -> None:
    pipe = make_pipe(vllm, BASE_URLS="localhost:8000")
    run = await run_pipe(pipe, vllm, chat_body(MODEL))
    assert len(run.errors) == 1 and "BASE_URLS" in run.errors[0] and "http://host:port" in run.errors[0]


async def test_stop_closes_the_backend_request(vllm, vllm_emulator: VLLMEmulator) -> None:
    """Open WebUI's Stop cancels the task iterating the pipe; the backend must see the connection close."""
    vllm_emulator.token_delay = 0.05
    vllm_emulator.script = "word " * 400
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    got_tokens = asyncio.Event()
    chunks: list[dict] = []

    async def consume() -> None:
        stream = await pipe.pipe(body=chat_body(MODEL), __user__={"valves": vllm.Pipe.UserValves()})
        async for chunk in stream:
            chunks.append(chunk)
            if len(chunks) >= 3:
                got_tokens.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_tokens.wait(), 10)
    task.cancel()
    cancelled_at = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await until(lambda: vllm_emulator.disconnects, seconds=2.0), "the backend never saw the request end"
    assert vllm_emulator.disconnects[0] - cancelled_at < 1.0
    assert vllm_emulator.finished == 0


async def test_max_concurrency_queues_and_reports_places(vllm, vllm_emulator: VLLMEmulator, monkeypatch) -> None:
    monkeypatch.setattr(vllm, "STATUS_GRACE", 0.0)  # these waits are short; a real queue's are seconds
    monkeypatch.setattr(vllm, "PROGRESS_DELAY", 0.0)
    vllm_emulator.token_delay = 0.01
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, MAX_CONCURRENCY=1)
    runs = await asyncio.gather(*(run_pipe(pipe, vllm, chat_body(MODEL)) for _ in range(3)))
    assert all(r.content == ANSWER for r in runs)
    queued = sorted(s["description"] for r in runs for s in r.statuses if s["description"].startswith("Queued"))
    assert queued == ["Queued: 1 ahead of you", "Queued: 1 ahead of you", "Queued: 2 ahead of you"]
