"""The built Flask (prompt-server) pipe: against the real reference Flask app, and an emulator for faults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators.prompt_server import PromptServerEmulator
from tests.support.built import load_function
from tests.support.pipe_driver import PipeRun, chat_body, make_pipe, run_pipe
from tests.support.ports import free_port

MODEL = "r1relay_flask.tiny-r1"
EMULATED_REASONING = "The user says hi.\nGreet them naïvely 🤔.\n"
EMULATED_ANSWER = "Hello,\nfriend! Bye."


@pytest.fixture
def flask_pipe(built_dir: Path):
    return load_function(built_dir / "r1relay_flask.py")


@pytest.fixture
def prompt_server() -> Iterator[PromptServerEmulator]:
    emulator = PromptServerEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()



def assert_separated(run: PipeRun) -> None:
    assert not run.errors, run.errors
    assert run.reasoning.strip() and run.content.strip()
    for tag in ("<think>", "</think>"):
        assert tag not in run.content and tag not in run.reasoning


# ---- the real reference Flask app over the tiny R1 model ----


@pytest.mark.parametrize(
    "mode",
    [{"USE_STREAM": True}, {"USE_STREAM": True, "STREAM_METHOD": "GET"}, {"USE_STREAM": False}],
    ids=["stream-post", "stream-get", "generate"],
)
async def test_reference_app_thinking_separated(flask_pipe, flask_backend, mode: dict) -> None:
    pipe = make_pipe(flask_pipe, BASE_URLS=flask_backend.url, API_KEY=flask_backend.api_key, **mode)
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL, "What is two plus two?", max_tokens=120))
    assert_separated(run)
    assert run.statuses[-1]["done"] is True
    assert flask_backend.api_key not in run.everything()


async def test_reference_app_stream_and_generate_agree(flask_pipe, flask_backend) -> None:
    """Greedy decoding: the streamed answer and the one-shot answer are the same text."""
    runs = []
    for use_stream in (True, False):
        pipe = make_pipe(flask_pipe, BASE_URLS=flask_backend.url, API_KEY=flask_backend.api_key, USE_STREAM=use_stream)
        runs.append(await run_pipe(pipe, flask_pipe, chat_body(MODEL, "Say hello.", max_tokens=120)))
    assert (runs[0].reasoning, runs[0].content) == (runs[1].reasoning, runs[1].content)


@pytest.mark.parametrize("use_stream", [True, False], ids=["stream", "generate"])
async def test_reference_app_requires_the_key(flask_pipe, flask_backend, use_stream: bool) -> None:
    pipe = make_pipe(flask_pipe, BASE_URLS=flask_backend.url, API_KEY="wrong-key-789", USE_STREAM=use_stream)
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL))
    (error,) = run.errors
    assert "rejected the API key" in error and "401" in error
    assert "wrong-key-789" not in run.everything()


async def test_reference_app_non_streamed_task_call(flask_pipe, flask_backend) -> None:
    pipe = make_pipe(flask_pipe, BASE_URLS=flask_backend.url, API_KEY=flask_backend.api_key)
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL, "Hi", stream=False, max_tokens=120))
    assert run.text and "</think>" not in run.text


# ---- the emulator: network faults and wire variations ----


@pytest.mark.parametrize(
    "setup",
    [
        {},
        {"split_writes": True},
        {"split_writes": True, "line_end": "\r\n", "comments": True},
        {"line_end": "\r"},
    ],
    ids=["plain", "split-reads", "split-crlf-comments", "cr"],
)
async def test_stream_decoding_whatever_the_framing(flask_pipe, prompt_server: PromptServerEmulator, setup: dict) -> None:
    for name, value in setup.items():
        setattr(prompt_server, name, value)
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url)
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL))
    assert (run.reasoning, run.content) == (EMULATED_REASONING, EMULATED_ANSWER)
    assert not run.errors


async def test_request_fields_paths_and_auth_header_follow_the_valves(flask_pipe, prompt_server: PromptServerEmulator) -> None:
    prompt_server.api_key = "ps-key-123"
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url, API_KEY="ps-key-123", PROMPT_TEMPLATE="chatml")
    body = chat_body(MODEL, "Hi there", max_tokens=64, temperature=0.5, top_p=0.9, stop=["###"])
    await run_pipe(pipe, flask_pipe, body)
    sent = prompt_server.requests[-1]
    assert sent["method"] == "POST" and sent["headers"]["X-API-Key"] == "ps-key-123"
    assert sent["body"]["max_tokens"] == 64 and sent["body"]["temperature"] == 0.5
    assert sent["body"]["top_p"] == 0.9 and sent["body"]["stop_sequences"] == ["###"]
    assert "<|im_start|>user\nHi there<|im_end|>" in sent["body"]["prompt"]
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url, API_KEY="ps-key-123", STREAM_METHOD="GET")
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL, "Hi there"))
    assert run.content == EMULATED_ANSWER
    sent = prompt_server.requests[-1]
    assert sent["method"] == "GET" and "Hi there" in sent["body"]["prompt"]


async def test_mid_stream_drop_keeps_what_arrived(flask_pipe, prompt_server: PromptServerEmulator) -> None:
    prompt_server.fault = "drop_mid_stream"
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url)
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL))
    assert run.reasoning.startswith("The user says hi.")
    (error,) = run.errors
    assert "dropped mid-answer" in error


async def test_error_event_becomes_one_sentence(flask_pipe, prompt_server: PromptServerEmulator) -> None:
    prompt_server.fault = "error_event"
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url)
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL))
    assert run.errors == [f"The backend at {prompt_server.url} failed mid-answer: CUDA out of memory."]


async def test_generate_mode_with_renamed_fields(flask_pipe, prompt_server: PromptServerEmulator) -> None:
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url, USE_STREAM=False)
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL))
    assert (run.reasoning, run.content) == (EMULATED_REASONING, EMULATED_ANSWER)
    assert run.usage and run.usage["completion_tokens"] == len(prompt_server.pieces)
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url, USE_STREAM=False, RESPONSE_FIELD="text")
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL))
    assert run.errors == [f"The backend at {prompt_server.url} answered without a `text` text field; check the RESPONSE_FIELD setting."]


async def test_unreachable_and_unauthorized(flask_pipe, prompt_server: PromptServerEmulator) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    run = await run_pipe(make_pipe(flask_pipe, BASE_URLS=dead), flask_pipe, chat_body(MODEL))
    assert run.errors == [f"Cannot reach the backend at {dead}: is the server running?"]
    prompt_server.api_key = "needed"
    run = await run_pipe(make_pipe(flask_pipe, BASE_URLS=prompt_server.url), flask_pipe, chat_body(MODEL))
    assert len(run.errors) == 1 and "rejected the API key (HTTP 401" in run.errors[0]


async def test_model_list_is_the_valve(flask_pipe) -> None:
    pipe = make_pipe(flask_pipe, BASE_URLS=f"http://127.0.0.1:{free_port()}")
    assert await pipe.pipes() == [{"id": "tiny-r1", "name": "Flask: tiny-r1"}]
    pipe = make_pipe(flask_pipe, MODELS="")
    (entry,) = await pipe.pipes()
    assert entry["id"] == "unavailable" and "Set MODELS" in entry["name"]


async def test_stop_closes_the_stream(flask_pipe, prompt_server: PromptServerEmulator) -> None:
    prompt_server.pieces = tuple(f"word{i} " for i in range(200))
    prompt_server.token_delay = 0.02
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url)
    got = asyncio.Event()

    async def consume() -> None:
        stream = await pipe.pipe(body=chat_body(MODEL), __user__={"valves": flask_pipe.Pipe.UserValves()})
        count = 0
        async for _ in stream:
            count += 1
            if count >= 3:
                got.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if prompt_server.disconnects:
            break
        await asyncio.sleep(0.02)
    assert prompt_server.disconnects, "the server never saw the stream close"
