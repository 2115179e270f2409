"""Tools, thinking controls and images through the built vLLM pipe, against the vLLM emulator.

The emulator streams tool calls the way vLLM's hermes/deepseek_v3 parsers do and
refuses tools with vLLM's own 400 when started without them (tests/emulators/vllm.py).
"""

from __future__ import annotations

import json

import pytest

from tests.emulators.vllm import TOOLS_REFUSED, VLLMEmulator
from tests.support.pipe_driver import chat_body, make_pipe, run_pipe

MODEL = "r1relay_vllm.deepseek-ai/DeepSeek-R1"
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_timestamp",
        "description": "Get the current Unix timestamp.",
        "parameters": {"type": "object", "properties": {}},
    },
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def tool_server(vllm_emulator: VLLMEmulator) -> VLLMEmulator:
    vllm_emulator.tool_call = ("get_weather", {"city": "Paris", "unit": "celsius"})
    return vllm_emulator


def merged_calls(pieces: list[dict]) -> dict[int, dict]:
    """Tool-call pieces gathered by index, the way Open WebUI's middleware gathers them."""
    calls: dict[int, dict] = {}
    for piece in pieces:
        call = calls.setdefault(piece["index"], {"id": None, "name": "", "arguments": ""})
        call["id"] = call["id"] or piece.get("id")
        call["name"] += piece.get("function", {}).get("name") or ""
        call["arguments"] += piece.get("function", {}).get("arguments") or ""
    return calls


async def test_tools_go_out_and_the_streamed_call_comes_back_whole(vllm, tool_server: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=tool_server.base_url)
    body = chat_body(MODEL, "Weather in Paris?", tools=[TIME_TOOL, WEATHER_TOOL], tool_choice="auto", parallel_tool_calls=False)
    run = await run_pipe(pipe, vllm, body)
    sent = tool_server.requests[-1]["body"]
    assert sent["tools"] == [TIME_TOOL, WEATHER_TOOL]
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is False
    assert run.reasoning == tool_server.tool_reasoning  # the thinking before the call is still the Thought block
    assert run.content == "" and not run.errors
    pieces = run.tool_call_pieces
    assert pieces[0]["id"].startswith("chatcmpl-tool-") and pieces[0]["type"] == "function"
    assert pieces[0]["function"]["name"] == "get_weather"
    assert all("id" not in p and "name" not in p["function"] for p in pieces[1:])
    (call,) = merged_calls(pieces).values()
    assert json.loads(call["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert run.finish_reasons == ["tool_calls"]


async def test_the_follow_up_with_the_tool_result_reaches_the_server_intact(vllm, tool_server: VLLMEmulator) -> None:
    """Open WebUI's second request (middleware.py ~6061): the assistant's tool_calls and the `role: tool` result."""
    pipe = make_pipe(vllm, BASE_URLS=tool_server.base_url)
    assistant = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "chatcmpl-tool-1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    }
    result = {"role": "tool", "tool_call_id": "chatcmpl-tool-1", "content": "18 °C and sunny"}
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>old thoughts</think>Hello!"},
        {"role": "user", "content": "Weather in Paris?"},
        assistant,
        result,
    ]
    body = {"model": MODEL, "stream": True, "messages": messages, "tools": [WEATHER_TOOL]}
    run = await run_pipe(pipe, vllm, body)
    sent = tool_server.requests[-1]["body"]["messages"]
    assert sent[1] == {"role": "assistant", "content": "Hello!"}  # thinking still cleaned out of old answers
    assert sent[3] == assistant and sent[4] == result
    assert run.content == "The tool says: 18 °C and sunny"
    assert run.finish_reasons == ["stop"]


async def test_pieces_of_two_calls_are_never_merged_or_reordered(vllm, vllm_emulator: VLLMEmulator) -> None:
    """Open WebUI reads slowly: pieces pile up and are coalesced; each call's pieces must stay its own."""
    vllm_emulator.tool_call = ("get_weather", {"city": "Paris"})
    original = vllm_emulator._tool_call_deltas

    def two_calls(name: str, arguments: dict) -> list[dict]:
        first, second = original(name, arguments), original(name, {"city": "Oslo"})
        for delta in second:
            delta["tool_calls"][0]["index"] = 1
        return first + second

    vllm_emulator._tool_call_deltas = two_calls  # type: ignore[method-assign]
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL, tools=[WEATHER_TOOL]))
    indexes = [p["index"] for p in run.tool_call_pieces]
    assert indexes == sorted(indexes)
    calls = merged_calls(run.tool_call_pieces)
    assert [json.loads(c["arguments"]) for c in calls.values()] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert calls[0]["id"] != calls[1]["id"]


async def test_a_non_streamed_request_keeps_its_tool_calls(vllm, tool_server: VLLMEmulator) -> None:
    pipe = make_pipe(vllm, BASE_URLS=tool_server.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL, stream=False, tools=[WEATHER_TOOL]))
    assert run.completion is not None
    choice = run.completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and call["id"].startswith("chatcmpl-tool-")
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    run = await run_pipe(pipe, vllm, chat_body(MODEL, stream=False))  # no tools: the plain answer string
    assert run.text == "Hello! How can I help you today?"


async def test_a_server_without_tool_calling_still_answers_and_is_remembered(vllm, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.tool_call_parser = None
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    run = await run_pipe(pipe, vllm, chat_body(MODEL, tools=[TIME_TOOL]))
    assert run.content == "Hello! How can I help you today?" and not run.errors
    assert ["tools" in r["body"] for r in vllm_emulator.requests] == [True, False]
    notices = [s["description"] for s in run.statuses if s["description"].startswith("Tools are off")]
    assert notices == [
        f"Tools are off for {vllm_emulator.url}: the server does not take tools (vLLM needs --enable-auto-tool-choice "
        "and --tool-call-parser), so this answer comes without them."
    ]
    run = await run_pipe(pipe, vllm, chat_body(MODEL, tools=[TIME_TOOL]))  # remembered: one request, no notice again
    assert run.content == "Hello! How can I help you today?"
    assert ["tools" in r["body"] for r in vllm_emulator.requests] == [True, False, False]
    assert not [s for s in run.statuses if s["description"].startswith("Tools are off")]


async def test_the_tools_valve_overrides(vllm, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.tool_call_parser = None
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, TOOLS="on")  # a refusal is then an error, not a retry
    run = await run_pipe(pipe, vllm, chat_body(MODEL, tools=[TIME_TOOL]))
    assert len(run.errors) == 1 and "HTTP 400" in run.errors[0] and "enable-auto-tool-choice" in run.errors[0]
    assert len(vllm_emulator.requests) == 1
    vllm_emulator.tool_call_parser = "hermes"
    vllm_emulator.tool_call = ("get_current_timestamp", {})
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, TOOLS="off")
    run = await run_pipe(pipe, vllm, chat_body(MODEL, tools=[TIME_TOOL]))
    assert "tools" not in vllm_emulator.requests[-1]["body"]
    assert run.content == "Hello! How can I help you today?" and not run.tool_call_pieces


def test_the_emulator_refuses_tools_with_vllms_own_sentence(vllm_emulator: VLLMEmulator) -> None:
    import requests

    vllm_emulator.tool_call_parser = None
    body = {"model": "deepseek-ai/DeepSeek-R1", "messages": [{"role": "user", "content": "Hi"}], "tools": [TIME_TOOL]}
    reply = requests.post(f"{vllm_emulator.base_url}/chat/completions", json=body, timeout=10)
    assert reply.status_code == 400 and reply.json()["error"]["message"] == TOOLS_REFUSED


async def test_the_memory_of_a_refusal_runs_out(vllm, vllm_emulator: VLLMEmulator) -> None:
    """A server restarted with tool calling gets tools again once the memory runs out."""
    vllm_emulator.tool_call_parser = None
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url)
    await run_pipe(pipe, vllm, chat_body(MODEL, tools=[TIME_TOOL]))
    assert vllm._refused_tools.until  # remembered for NO_TOOLS_FOR seconds
    vllm_emulator.tool_call_parser = "hermes"
    vllm_emulator.tool_call = ("get_current_timestamp", {})
    for url in vllm._refused_tools.until:
        vllm._refused_tools.until[url] -= vllm.NO_TOOLS_FOR + 1  # as if ten minutes had passed
    run = await run_pipe(pipe, vllm, chat_body(MODEL, tools=[TIME_TOOL]))
    assert vllm_emulator.requests[-1]["body"]["tools"] == [TIME_TOOL]
    assert run.tool_call_pieces[0]["function"]["name"] == "get_current_timestamp"
