"""The built Flask (prompt-server) pipe: against the real reference Flask app, and an emulator for faults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.emulators.prompt_server import PromptServerEmulator
from tests.support.pipe_driver import PipeRun, chat_body, make_pipe, run_pipe
from tests.support.ports import free_port
from tests.support.waiting import until

MODEL = "r1relay_flask.tiny-r1"
EMULATED_REASONING = "The user says hi.\nGreet them naïvely 🤔.\n"
EMULATED_ANSWER = "Hello,\nfriend! Bye."


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
    assert await until(lambda: prompt_server.disconnects), "the server never saw the stream close"


# ---- tools, thinking off, images (issue 9) ----

TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_timestamp",
        "description": "Get the current Unix timestamp in seconds.",
        "parameters": {"type": "object", "properties": {}},
    },
}
R1_CALL = (
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_current_timestamp\n"
    "```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
)
HERMES_CALL = '<tool_call>\n{"name": "get_current_timestamp", "arguments": {}}\n</tool_call>'
MARKUP = ("<｜tool", "tool▁", "<tool_call>", "</tool_call>", "<think>", "</think>")


def tool_calls_of(run: PipeRun) -> list[dict]:
    return [tc for c in run.chunks if c.get("choices") for tc in c["choices"][0]["delta"].get("tool_calls") or []]


def finish_reasons(run: PipeRun) -> list[str]:
    return [c["choices"][0]["finish_reason"] for c in run.chunks if c.get("choices") and c["choices"][0]["finish_reason"]]


@pytest.mark.parametrize(
    ("template", "call", "result_in_prompt"),
    [
        (
            "deepseek-r1",
            R1_CALL,
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>1764120000<｜tool▁output▁end｜><｜tool▁outputs▁end｜>",
        ),
        ("qwq", HERMES_CALL, "<|im_start|>user\n<tool_response>\n1764120000\n</tool_response><|im_end|>"),
        ("qwen3", HERMES_CALL, "<|im_start|>user\n<tool_response>\n1764120000\n</tool_response><|im_end|>"),
    ],
)
@pytest.mark.parametrize("use_stream", [True, False], ids=["stream", "generate"])
async def test_markup_becomes_tool_calls_and_the_result_reaches_the_next_prompt(
    flask_pipe, prompt_server: PromptServerEmulator, template: str, call: str, result_in_prompt: str, use_stream: bool
) -> None:
    """The model's call markup, split anywhere on the wire (or whole from /generate), streams out as OpenAI tool_calls."""
    prompt_server.split_writes = True
    prompt_server.pieces = ("The user wants the time.\nI will call the tool.\n</think>\n\n", call[:9], call[9:40], call[40:])
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url, PROMPT_TEMPLATE=template, USE_STREAM=use_stream)
    question = {"role": "user", "content": "What time is it?"}
    body = {"model": MODEL, "messages": [question], "stream": True, "tools": [TIME_TOOL]}
    run = await run_pipe(pipe, flask_pipe, body)

    assert not run.errors, run.errors
    prompt = prompt_server.requests[-1]["body"]["prompt"]
    assert '"name": "get_current_timestamp"' in prompt and "Get the current Unix timestamp" in prompt
    assert run.reasoning == "The user wants the time.\nI will call the tool.\n"
    (piece,) = tool_calls_of(run)
    assert piece["index"] == 0 and piece["id"].startswith("call_") and piece["type"] == "function"
    assert piece["function"] == {"name": "get_current_timestamp", "arguments": "{}"}
    assert finish_reasons(run) == ["tool_calls"]
    assert not any(tag in run.content or tag in run.reasoning for tag in MARKUP)

    # Open WebUI runs the tool and asks again with the call and its result (middleware.py ~6061).
    prompt_server.pieces = ("The tool gave the time.\n</think>\n\n", "It is 01:20 UTC.")
    follow_up = [
        question,
        {"role": "assistant", "content": "", "tool_calls": [{**piece, "function": dict(piece["function"])}]},
        {"role": "tool", "tool_call_id": piece["id"], "content": "1764120000"},
    ]
    run = await run_pipe(pipe, flask_pipe, {**body, "messages": follow_up})
    prompt = prompt_server.requests[-1]["body"]["prompt"]
    assert result_in_prompt in prompt
    assert "get_current_timestamp" in prompt.split("1764120000")[0]  # the call itself precedes its result
    assert run.content == "It is 01:20 UTC." and not tool_calls_of(run)
    assert finish_reasons(run) in ([], ["stop"])


async def test_no_tools_means_markup_is_not_parsed_and_llama3_renders_no_tools(flask_pipe, prompt_server: PromptServerEmulator) -> None:
    prompt_server.pieces = ("</think>\n\n", HERMES_CALL)
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url, PROMPT_TEMPLATE="qwq")
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL))
    assert run.content == HERMES_CALL and not tool_calls_of(run)
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url, PROMPT_TEMPLATE="llama3")
    await run_pipe(pipe, flask_pipe, {**chat_body(MODEL), "tools": [TIME_TOOL]})
    assert "get_current_timestamp" not in prompt_server.requests[-1]["body"]["prompt"]


@pytest.mark.parametrize(
    ("template", "prompt_end"),
    [("deepseek-r1", "<｜Assistant｜><think>\n\n</think>\n\n"), ("chatml", "<|im_start|>assistant\n<think>\n\n</think>\n\n")],
)
async def test_thinking_off_prefills_an_empty_thinking_block_and_all_output_is_answer(
    flask_pipe, prompt_server: PromptServerEmulator, template: str, prompt_end: str
) -> None:
    prompt_server.pieces = ("Paris is the ", "capital of France.")
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url, PROMPT_TEMPLATE=template, THINK_START="yes")
    body = {**chat_body(MODEL, "Capital of France?"), "chat_template_kwargs": {"enable_thinking": False}}
    run = await run_pipe(pipe, flask_pipe, body)
    assert prompt_server.requests[-1]["body"]["prompt"].endswith(prompt_end)
    assert (run.reasoning, run.content) == ("", "Paris is the capital of France.")
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL, "Capital of France?"))  # thinking on: the same text is thinking
    assert (run.reasoning, run.content) == ("Paris is the capital of France.", "")


async def test_an_image_is_not_sent_and_the_user_is_told_once(flask_pipe, prompt_server: PromptServerEmulator) -> None:
    pipe = make_pipe(flask_pipe, BASE_URLS=prompt_server.url)
    parts = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    run = await run_pipe(pipe, flask_pipe, {"model": MODEL, "messages": [{"role": "user", "content": parts}], "stream": True})
    notices = [s["description"] for s in run.statuses if s["description"] == "This backend takes text only; the image was not sent."]
    assert len(notices) == 1
    prompt = prompt_server.requests[-1]["body"]["prompt"]
    assert "What is in this picture?" in prompt and "base64" not in prompt
    assert run.content == EMULATED_ANSWER and not run.errors
    run = await run_pipe(pipe, flask_pipe, chat_body(MODEL))
    assert not any("image" in s["description"] for s in run.statuses)
