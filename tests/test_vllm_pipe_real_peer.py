"""The built vLLM pipe against a real OpenAI-compatible server: `transformers serve` on the tiny R1 model.

The model's template pre-fills `<think>\\n`, so the server streams R1's bare
`reasoning…</think>answer`; the pipe must hand Open WebUI the two apart.
"""

from __future__ import annotations

from pathlib import Path

from examples.make_tiny_r1 import TINY_R1_ANSWER, TINY_R1_REASONING
from tests.support.built import load_function
from tests.support.fixtures_models import TransformersServe
from tests.support.pipe_driver import chat_body, make_pipe, run_pipe


async def test_real_server_stream_comes_out_as_thinking_and_answer(
    built_dir: Path, transformers_serve: TransformersServe
) -> None:
    vllm = load_function(built_dir / "r1relay_vllm.py")
    # transformers serve's /v1/models fails without a hub cache: MODELS lists the model instead.
    pipe = make_pipe(vllm, BASE_URLS=transformers_serve.base_url, MODELS=transformers_serve.model)
    assert [m["id"] for m in await pipe.pipes()] == [transformers_serve.model]

    body = chat_body(f"r1relay_vllm.{transformers_serve.model}", "Why is the sky blue?", max_tokens=64, temperature=0)
    run = await run_pipe(pipe, vllm, body)

    assert not run.errors
    assert run.reasoning.strip() == TINY_R1_REASONING.strip()
    assert run.content.strip() == TINY_R1_ANSWER.strip()
    assert "</think>" not in run.content and "<think>" not in run.reasoning
    assert run.statuses[-1]["done"] and "tokens/s" in run.statuses[-1]["description"]

    answer = await run_pipe(pipe, vllm, {**body, "stream": False})
    assert answer.text == TINY_R1_ANSWER.strip()
