"""The built KTransformers pipe against emulators of KTransformers' built-in and hand-written servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from backend_adapters.sse import aiter_sse
from tests.emulators.ktransformers import KTransformersEmulator
from tests.support.pipe_driver import PipeRun, chat_body, make_pipe, run_pipe
from tests.support.ports import free_port
from tests.support.waiting import until

MODEL = "r1relay_ktransformers.DeepSeek-R1"
REASONING = "Okay, the user greets me.\nI should greet back.\n"
ANSWER = "Hello! How can I help you today?"


@pytest.fixture
def builtin() -> Iterator[KTransformersEmulator]:
    emulator = KTransformersEmulator(shape="builtin").start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def handwritten() -> Iterator[KTransformersEmulator]:
    emulator = KTransformersEmulator(shape="handwritten", model_name="my-kt-model").start()
    try:
        yield emulator
    finally:
        emulator.stop()



def assert_clean(run: PipeRun) -> None:
    """What a user sees never holds raw tags or raw JSON."""
    assert "<think>" not in run.content and "</think>" not in run.content
    shown = run.reasoning + run.content + repr(run.statuses)
    assert '{"' not in shown and "choices" not in shown and "chat.completion" not in shown


@pytest.mark.parametrize("server_force_think", [False, True], ids=["bare-close-tag", "force-think-token"])
async def test_builtin_stream_thinking_separated(kt, builtin: KTransformersEmulator, server_force_think: bool) -> None:
    builtin.force_think = server_force_think
    pipe = make_pipe(kt, BASE_URLS=builtin.url)
    run = await run_pipe(pipe, kt, chat_body(MODEL))
    assert (run.reasoning, run.content) == (REASONING, ANSWER)
    assert not run.errors
    assert_clean(run)
    assert run.usage and run.usage["completion_tokens"] > 0 and run.usage["prompt_tokens"] > 0
    assert run.statuses[-1]["done"] is True and "tokens/s" in run.statuses[-1]["description"]
    sent = builtin.requests[-1]
    assert sent["body"]["stream"] is True and sent["body"]["model"] == "DeepSeek-R1"
    assert "force_think" not in sent["body"]


async def test_force_think_valve_with_a_model_of_unknown_family(kt, builtin: KTransformersEmulator) -> None:
    """A model id the family list does not know: FORCE_THINK says its output starts inside the thinking."""
    builtin.model_name = "local-model"
    pipe = make_pipe(kt, BASE_URLS=builtin.url, FORCE_THINK=True)
    run = await run_pipe(pipe, kt, chat_body("r1relay_ktransformers.local-model"))
    assert (run.reasoning, run.content) == (REASONING, ANSWER)
    assert builtin.requests[-1]["body"]["force_think"] is True
    pipe = make_pipe(kt, BASE_URLS=builtin.url)
    run = await run_pipe(pipe, kt, chat_body("r1relay_ktransformers.local-model"))
    assert run.reasoning == "" and "</think>" in run.content  # without it the text is taken as an answer


@pytest.mark.parametrize("json_shape", ["openai", "plain"])
async def test_json_body_answered_to_a_stream_request(kt, handwritten: KTransformersEmulator, json_shape: str) -> None:
    handwritten.json_shape = json_shape  # type: ignore[assignment]
    pipe = make_pipe(kt, BASE_URLS=handwritten.url, MODELS="my-kt-model", FORCE_THINK=True)
    run = await run_pipe(pipe, kt, chat_body("r1relay_ktransformers.my-kt-model"))
    assert (run.reasoning, run.content) == (REASONING, ANSWER)
    assert not run.errors
    assert_clean(run)
    assert handwritten.requests[-1]["body"]["stream"] is True
    assert handwritten.requests[-1]["body"]["force_think"] is True
    if json_shape == "openai":
        assert run.usage and run.usage["completion_tokens"] > 0


async def test_non_streamed_calls_get_the_answer_only(kt, builtin: KTransformersEmulator, handwritten: KTransformersEmulator) -> None:
    for url, model in ((builtin.url, MODEL), (handwritten.url, "r1relay_ktransformers.my-kt-model")):
        pipe = make_pipe(kt, BASE_URLS=url, FORCE_THINK=True)
        run = await run_pipe(pipe, kt, chat_body(model, stream=False))
        assert run.text == ANSWER


async def test_model_list_from_the_server_or_the_valve(kt, builtin: KTransformersEmulator, handwritten: KTransformersEmulator) -> None:
    pipe = make_pipe(kt, BASE_URLS=builtin.url)
    assert await pipe.pipes() == [{"id": "DeepSeek-R1", "name": "KTransformers: DeepSeek-R1"}]
    pipe = make_pipe(kt, BASE_URLS=handwritten.url)  # no /v1/models
    (entry,) = await pipe.pipes()
    assert entry["id"] == "unavailable" and "Set MODELS" in entry["name"]
    pipe = make_pipe(kt, BASE_URLS=handwritten.url, MODELS="my-kt-model")
    assert [m["id"] for m in await pipe.pipes()] == ["my-kt-model"]


async def test_flat_error_becomes_one_sentence(kt, builtin: KTransformersEmulator) -> None:
    pipe = make_pipe(kt, BASE_URLS=builtin.url)
    run = await run_pipe(pipe, kt, chat_body(MODEL, temperature=3))
    assert run.errors == [
        f"The backend at {builtin.url} refused the request (HTTP 400 (Bad Request)): temperature must be in [0, 2], got 3."
    ]
    assert run.statuses[-1]["done"] is True


async def test_bad_key_plain_text_500_is_one_sentence_without_the_key(kt, builtin: KTransformersEmulator) -> None:
    builtin.api_key = "kt-right-key-123"
    pipe = make_pipe(kt, BASE_URLS=builtin.url, API_KEY="kt-wrong-key-456")
    run = await run_pipe(pipe, kt, chat_body(MODEL))
    (error,) = run.errors
    assert error.startswith(f"The backend at {builtin.url} failed with HTTP 500 (Internal Server Error);")
    assert "API_KEY" in error and error.replace(builtin.url, "URL").count(".") == 1 and error.endswith(".")
    assert "kt-wrong-key-456" not in run.everything() and "Traceback" not in run.everything()
    run = await run_pipe(pipe, kt, chat_body(MODEL), user_valves={"API_KEY": "kt-right-key-123"})
    assert run.content == ANSWER
    assert builtin.requests[-1]["headers"]["Authorization"] == "Bearer kt-right-key-123"


async def test_unreachable_server(kt) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    pipe = make_pipe(kt, BASE_URLS=dead)
    run = await run_pipe(pipe, kt, chat_body(MODEL))
    assert run.errors == [f"Cannot reach the backend at {dead}: is the server running?"]


async def test_ollama_route_ndjson_under_event_stream_decodes(builtin: KTransformersEmulator) -> None:
    """The decoder the adapter uses reads the built-in server's /api/chat NDJSON stream."""
    async with httpx.AsyncClient() as client:
        body = {"model": "DeepSeek-R1", "messages": [{"role": "user", "content": "Hi"}]}
        async with client.stream("POST", f"{builtin.url}/api/chat", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [json.loads(e.data) async for e in aiter_sse(response.aiter_bytes())]
    assert "".join(line["message"].get("content", "") for line in lines) == builtin.script
    assert lines[-1]["done"] is True


# ---- the queue: one slot, three users ----


def queued(run: PipeRun) -> list[str]:
    return [s["description"] for s in run.statuses if s["description"].startswith("Queued")]


async def test_three_users_on_one_slot_keep_order_and_learn_their_place(kt, builtin: KTransformersEmulator, monkeypatch) -> None:
    monkeypatch.setattr(kt, "STATUS_GRACE", 0.0)  # these waits are short; on a real one-slot server they are minutes
    monkeypatch.setattr(kt, "PROGRESS_DELAY", 0.0)
    builtin.token_delay = 0.01
    pipe = make_pipe(kt, BASE_URLS=builtin.url)  # MAX_CONCURRENCY defaults to 1
    runs = await asyncio.gather(*(run_pipe(pipe, kt, chat_body(MODEL, text=f"user {i}")) for i in range(3)))
    assert all(r.content == ANSWER and not r.errors for r in runs)
    assert builtin.started == ["user 0", "user 1", "user 2"]
    assert builtin.max_in_flight == 1
    assert queued(runs[0]) == []
    assert queued(runs[1]) == ["Queued: 1 ahead of you"]
    assert queued(runs[2]) == ["Queued: 2 ahead of you", "Queued: 1 ahead of you"]


async def test_cancel_while_waiting_leaves_the_queue(kt, builtin: KTransformersEmulator, monkeypatch) -> None:
    monkeypatch.setattr(kt, "STATUS_GRACE", 0.0)
    monkeypatch.setattr(kt, "PROGRESS_DELAY", 0.0)
    builtin.token_delay = 0.02
    pipe = make_pipe(kt, BASE_URLS=builtin.url)
    runs = [PipeRun() for _ in range(3)]
    tasks = [asyncio.create_task(run_pipe(pipe, kt, chat_body(MODEL, text=f"user {i}"), run=runs[i])) for i in range(3)]
    for _ in range(500):
        if queued(runs[2]):
            break
        await asyncio.sleep(0.01)
    assert queued(runs[1]) == ["Queued: 1 ahead of you"] and queued(runs[2]) == ["Queued: 2 ahead of you"]
    tasks[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    await asyncio.gather(tasks[0], tasks[2])
    assert queued(runs[2]) == ["Queued: 2 ahead of you", "Queued: 1 ahead of you"]  # moved up at once
    assert runs[0].content == ANSWER and runs[2].content == ANSWER
    assert builtin.started == ["user 0", "user 2"]  # the cancelled user never reached the server


async def test_cancelled_running_request_closes_its_connection_and_frees_the_slot(kt, builtin: KTransformersEmulator) -> None:
    builtin.token_delay = 0.02
    builtin.script = "word " * 30 + "</think>done"
    pipe = make_pipe(kt, BASE_URLS=builtin.url)
    first = PipeRun()
    got_tokens = asyncio.Event()

    async def consume() -> None:
        stream = await pipe.pipe(body=chat_body(MODEL, text="user 0"), __user__={"valves": kt.Pipe.UserValves()})
        async for chunk in stream:
            first.chunks.append(chunk)
            if len(first.chunks) >= 3:
                got_tokens.set()

    running = asyncio.create_task(consume())
    await asyncio.wait_for(got_tokens.wait(), 10)
    waiting = asyncio.create_task(run_pipe(pipe, kt, chat_body(MODEL, text="user 1")))
    await asyncio.sleep(0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await until(lambda: builtin.disconnects), "the server never saw the cancelled request's connection close"
    second = await waiting
    assert second.content == "done" and not second.errors
    assert builtin.started == ["user 0", "user 1"]
    assert builtin.finished == 2  # the real server finishes the abandoned generation anyway, then serves the next


async def test_stop_while_a_handwritten_server_is_still_generating_closes_the_request(kt, handwritten: KTransformersEmulator) -> None:
    """No byte has arrived yet (the JSON comes at the end): Stop must still close the connection."""
    handwritten.token_delay = 0.05
    pipe = make_pipe(kt, BASE_URLS=handwritten.url, MODELS="my-kt-model")
    run = PipeRun()
    task = asyncio.create_task(run_pipe(pipe, kt, chat_body("r1relay_ktransformers.my-kt-model"), run=run))
    for _ in range(500):
        if handwritten.started:
            break
        await asyncio.sleep(0.01)
    assert handwritten.started and not run.chunks
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if handwritten.disconnects:
            break
        await asyncio.sleep(0.02)
    assert handwritten.disconnects, "the server never saw the request close"


@pytest.mark.parametrize("reasoning_field", ["none", "reasoning_content"])
async def test_sglang_style_openai_stream_with_role_chunk_and_reasoning_field(kt, vllm_emulator, reasoning_field: str) -> None:
    """`kt run` serves through SGLang: a standard OpenAI stream (role chunk; reasoning_content when its parser is on).

    The vLLM emulator speaks that same standard shape.
    """
    vllm_emulator.reasoning_field = reasoning_field
    pipe = make_pipe(kt, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, kt, chat_body("r1relay_ktransformers.deepseek-ai/DeepSeek-R1"))
    assert (run.reasoning, run.content) == (REASONING, ANSWER)
    assert run.usage and not run.errors


# ---- tools, thinking off, images (issue 9) ----

TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_current_timestamp", "description": "Get the current Unix timestamp in seconds.", "parameters": {"type": "object", "properties": {}}},
}
R1_CALL = (
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_current_timestamp\n"
    "```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
)
HERMES_CALL = '<tool_call>\n{"name": "get_current_timestamp", "arguments": {}}\n</tool_call>'


def tool_calls_of(run: PipeRun) -> list[dict]:
    return [tc for c in run.chunks if c.get("choices") for tc in c["choices"][0]["delta"].get("tool_calls") or []]


def finish_reasons(run: PipeRun) -> list[str]:
    return [c["choices"][0]["finish_reason"] for c in run.chunks if c.get("choices") and c["choices"][0]["finish_reason"]]


@pytest.mark.parametrize(
    ("shape", "model", "call", "section", "result_text"),
    [
        ("builtin", "DeepSeek-R1", R1_CALL, "You have the following functions available:",
         "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>1764120000<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"),
        ("handwritten", "Qwen3-235B-A22B", HERMES_CALL, "<tools>\n" + json.dumps(TIME_TOOL, ensure_ascii=False) + "\n</tools>",
         "<tool_response>\n1764120000\n</tool_response>"),
    ],
    ids=["builtin-r1", "handwritten-qwen3"],
)
async def test_tools_in_the_system_message_calls_out_of_the_reply_results_back_as_text(
    kt, shape: str, model: str, call: str, section: str, result_text: str
) -> None:
    emulator = KTransformersEmulator(shape=shape, model_name=model).start()  # type: ignore[arg-type]
    try:
        opening = "<think>\n" if model.startswith("Qwen3") else ""  # Qwen3 opens its thinking itself; R1's is pre-filled
        emulator.script = f"{opening}The user wants the time.\n</think>\n\n{call}"
        pipe = make_pipe(kt, BASE_URLS=emulator.url, MODELS=model)
        question = {"role": "user", "content": "What time is it?"}
        body = {"model": f"r1relay_ktransformers.{model}", "messages": [question], "stream": True, "tools": [TIME_TOOL]}
        run = await run_pipe(pipe, kt, body)
        assert not run.errors, run.errors
        sent = emulator.requests[-1]["body"]
        assert "tools" not in sent  # these servers ignore it; the model learns of the tool from the system message
        assert sent["messages"][0]["role"] == "system" and section in sent["messages"][0]["content"]
        assert run.reasoning == "The user wants the time.\n"
        (piece,) = tool_calls_of(run)
        assert piece["function"] == {"name": "get_current_timestamp", "arguments": "{}"} and piece["id"]
        assert finish_reasons(run) == ["tool_calls"]
        assert "tool_call" not in run.content and "tool▁" not in run.content

        emulator.script = f"{opening}The tool answered.\n</think>\n\nIt is 01:20 UTC."
        follow_up = [
            question,
            {"role": "assistant", "content": None, "tool_calls": [{"id": piece["id"], "type": "function", "function": piece["function"]}]},
            {"role": "tool", "tool_call_id": piece["id"], "content": "1764120000"},
        ]
        run = await run_pipe(pipe, kt, {**body, "messages": follow_up})
        assert not run.errors, run.errors  # a wrapper's `content: str` accepted every turn (no 422)
        messages = emulator.requests[-1]["body"]["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert all(isinstance(m["content"], str) and set(m) == {"role", "content"} for m in messages)
        assert messages[2]["content"] == call and messages[3]["content"] == result_text
        assert run.content == "It is 01:20 UTC." and not tool_calls_of(run)
    finally:
        emulator.stop()


async def test_tool_format_off_sends_no_tools_and_parses_nothing(kt, builtin: KTransformersEmulator) -> None:
    builtin.script = f"Hmm.\n</think>\n\n{R1_CALL}"
    pipe = make_pipe(kt, BASE_URLS=builtin.url, TOOL_FORMAT="off")
    run = await run_pipe(pipe, kt, {**chat_body(MODEL), "tools": [TIME_TOOL]})
    assert builtin.requests[-1]["body"]["messages"][0]["role"] == "user"
    assert not tool_calls_of(run) and "get_current_timestamp" in run.content


async def test_list_content_is_flattened_for_a_wrapper_and_the_image_is_announced(kt, handwritten: KTransformersEmulator) -> None:
    pipe = make_pipe(kt, BASE_URLS=handwritten.url, MODELS="my-kt-model")
    parts = [{"type": "text", "text": "Describe this."}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    run = await run_pipe(pipe, kt, {"model": "r1relay_ktransformers.my-kt-model", "messages": [{"role": "user", "content": parts}], "stream": True})
    assert not run.errors, run.errors
    assert handwritten.requests[-1]["body"]["messages"] == [{"role": "user", "content": "Describe this."}]
    assert [s["description"] for s in run.statuses].count("This backend takes text only; the image was not sent.") == 1


async def test_thinking_off_is_asked_for_and_an_r1_that_thinks_anyway_is_still_split(kt, handwritten: KTransformersEmulator) -> None:
    pipe = make_pipe(kt, BASE_URLS=handwritten.url, MODELS="DeepSeek-R1", FORCE_THINK=True)
    body = {**chat_body("r1relay_ktransformers.DeepSeek-R1"), "chat_template_kwargs": {"enable_thinking": False}}
    run = await run_pipe(pipe, kt, body)
    sent = handwritten.requests[-1]["body"]
    assert sent["force_think"] is False and sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert (run.reasoning, run.content) == (REASONING, ANSWER)
    assert "This model cannot skip its thinking on this backend; it will think first." in [s["description"] for s in run.statuses]
    run = await run_pipe(pipe, kt, chat_body("r1relay_ktransformers.DeepSeek-R1"))
    assert handwritten.requests[-1]["body"]["force_think"] is True
    assert not any("cannot skip" in s["description"] for s in run.statuses)
