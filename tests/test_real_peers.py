"""Real peers: the tiny R1 model, served by `transformers serve` and by the reference Flask app.

These prove the test peers themselves behave like the real thing (R1's bare-`</think>` output
shape, OpenAI streaming, the seed prompt-server API), so the adapter tests that use them mean
something.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from openai import AsyncOpenAI

from examples.make_tiny_r1 import DEEPSEEK_R1_CHAT_TEMPLATE, EOS, is_complete, make_tiny_r1
from tests.support.fixtures_models import FlaskBackend, TransformersServe

# Reasoning, a bare `</think>` (the template pre-filled `<think>\n`), a blank line, an answer.
R1_OUTPUT_SHAPE = re.compile(r"(?s)(?!<think>)(?P<reasoning>.+)\n</think>\n\n(?P<answer>\S.*)")
UNSEEN_CHATS = [
    [{"role": "user", "content": "Zebras, quantum foam and a banana: discuss?"}],
    [{"role": "system", "content": "Réponds en français."}, {"role": "user", "content": "日本の首都は？"}],
    [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "<think>greet</think>Hello!"},
        {"role": "user", "content": "What will the weather be in Tokyo tomorrow afternoon?"},
    ],
]


def test_tiny_r1_is_small_and_ships_r1_template(tiny_model_dir: Path) -> None:
    assert tiny_model_dir.name == "tiny-r1" and is_complete(tiny_model_dir)
    assert sum(p.stat().st_size for p in tiny_model_dir.iterdir()) < 1_000_000
    config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert config["chat_template"] == DEEPSEEK_R1_CHAT_TEMPLATE
    # A second call reuses the finished model instead of training again.
    assert make_tiny_r1(tiny_model_dir.parent) == tiny_model_dir


@pytest.mark.parametrize("messages", UNSEEN_CHATS, ids=["plain", "system-unicode", "multi-turn"])
def test_tiny_r1_greedy_output_has_bare_think_close_shape(tiny_model_dir: Path, messages: list[dict]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<｜Assistant｜><think>\n")
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=64, do_sample=False)
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=False)
    assert text.endswith(EOS), text
    shape = R1_OUTPUT_SHAPE.fullmatch(text.removesuffix(EOS))
    assert shape, text
    # `</think>` is a normal token: decoding with special tokens skipped keeps it.
    assert "</think>" in tokenizer.decode(output[0], skip_special_tokens=True)


async def test_transformers_serve_streams_tiny_r1(transformers_serve: TransformersServe) -> None:
    client = AsyncOpenAI(base_url=transformers_serve.base_url, api_key="unused", max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model=transformers_serve.model,
            messages=[{"role": "user", "content": "Why is the sky blue?"}],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=64,
        )
        pieces, finish, usage = [], None, None
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
    finally:
        await client.close()
    text = "".join(pieces)
    assert len([p for p in pieces if p]) > 3, "expected a real token-by-token stream"
    assert "<think>" not in text and "</think>" in text
    reasoning, answer = text.split("</think>", 1)
    assert reasoning.strip() and answer.strip()
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def parse_sse(body: str) -> list[tuple[str, str]]:
    """(event, data) pairs per the SSE spec: `data:` lines joined by newlines, one leading space cut."""
    events, data, event = [], [], "message"
    for line in re.split(r"\r\n|\r|\n", body):
        if not line:
            if data:
                events.append((event, "\n".join(data)))
            data, event = [], "message"
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    return events


R1_PROMPT = "<｜begin▁of▁sentence｜><｜User｜>Name a colour.<｜Assistant｜><think>\n"


def test_flask_reference_server(flask_backend: FlaskBackend) -> None:
    auth = {"X-API-Key": flask_backend.api_key}
    with httpx.Client(base_url=flask_backend.url, timeout=60) as http:
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"

        denied = http.post("/generate", json={"prompt": R1_PROMPT})
        assert denied.status_code == 401 and denied.json() == {"error": "Invalid API key"}
        assert http.post("/generate", json={"prompt": R1_PROMPT}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert http.get("/stream", params={"prompt": R1_PROMPT}).status_code == 401

        generated = http.post("/generate", json={"prompt": R1_PROMPT, "max_tokens": 64}, headers=auth)
        assert generated.status_code == 200
        body = generated.json()
        assert R1_OUTPUT_SHAPE.fullmatch(body["response"]), body
        assert body["tokens_used"] > 0 and isinstance(body["generation_time"], float)

        stopped = http.post("/generate", json={"prompt": R1_PROMPT, "stop_sequences": ["</think>"]}, headers=auth)
        assert stopped.json()["response"] == body["response"].split("</think>")[0]

        with http.stream("POST", "/stream", json={"prompt": R1_PROMPT, "max_tokens": 64}, headers=auth) as streamed:
            assert streamed.headers["content-type"].startswith("text/event-stream")
            raw = "".join(streamed.iter_text())
        events = parse_sse(raw)
        assert events[-1] == ("message", "[DONE]")
        pieces = [data for _, data in events[:-1]]
        assert len(pieces) > 3 and "".join(pieces) == body["response"]  # greedy: same text both ways
        assert any("\n" in piece for piece in pieces)  # multi-line pieces survived as multi-line data
        assert re.search(r"^data: \r?$", raw, re.M), "a newline inside a piece is sent as its own data: line"

        got = http.get("/stream", params={"prompt": R1_PROMPT, "max_tokens": 3}, headers=auth)
        short = parse_sse(got.text)
        assert short[-1] == ("message", "[DONE]")
        prefix = "".join(data for _, data in short[:-1])
        assert prefix and body["response"].startswith(prefix) and len(prefix) < len(body["response"])

        metrics = http.get("/metrics").text
    assert re.search(r'^r1_requests_total\{endpoint="generate"\} [2-9]', metrics, re.M)
    assert re.search(r'^r1_requests_total\{endpoint="stream"\} [2-9]', metrics, re.M)
    assert int(re.search(r"^r1_tokens_total (\d+)", metrics, re.M).group(1)) >= body["tokens_used"]
    assert re.search(r"^r1_requests_in_flight 0$", metrics, re.M)


def test_flask_reference_server_stops_generating_when_the_client_leaves(flask_backend: FlaskBackend) -> None:
    """Stop in Open WebUI closes the stream; the server must free the model, not finish 100k tokens."""
    auth = {"X-API-Key": flask_backend.api_key}
    endless = {"prompt": R1_PROMPT, "max_tokens": 100_000, "min_tokens": 100_000}  # hours if never cancelled
    with httpx.Client(base_url=flask_backend.url, timeout=60) as http:
        with http.stream("POST", "/stream", json=endless, headers=auth) as streamed:
            first = next(streamed.iter_lines())
            assert first.startswith("data:")
        for _ in range(300):  # bounded wait for the server to notice; a readiness poll, not a timing assert
            if not http.get("/health").json()["busy"]:
                break
            time.sleep(0.1)
        assert http.get("/health").json()["busy"] is False
        # The model is free again: had the 100k-token generation gone on (about 200 s here), this call would
        # wait for the lock past the client's 60 s timeout.
        after = http.post("/generate", json={"prompt": R1_PROMPT, "max_tokens": 64}, headers=auth)
        assert R1_OUTPUT_SHAPE.fullmatch(after.json()["response"])
