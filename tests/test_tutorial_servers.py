"""The built pipes against prompt servers written the way tutorials write them, on the real tiny R1 model.

One process serves every tutorial app (tests/tutorial_servers/), started once for this module.
Each style is asked two turns; the answers must be exactly the tiny model's thinking and answer,
line breaks included, and the server's own log must show the second prompt carrying the first
turn (the history reached the model).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.make_tiny_r1 import TINY_R1_ANSWER, TINY_R1_COMPLETION, TINY_R1_REASONING
from tests.support.built import load_function
from tests.support.fixtures_models import OFFLINE_ENV, REPO, STARTUP_TIMEOUT
from tests.support.pipe_driver import PipeRun, make_pipe, run_pipe
from tests.support.ports import free_port, wait_for_port

APPS = ("flask_generate", "flask_sse_raw", "flask_plain_text", "fastapi_ndjson", "fastapi_generate_key", "kt_wrapper")
API_KEY = "tutorial-key-42"
FLASK_MODEL = "r1relay_flask.tiny-r1"
# What the tiny model says, as the pipe shows it: thinking up to `</think>` (its newline kept), the
# answer after it (the blank line before an answer is not sent, as for every backend).
REASONING = TINY_R1_REASONING + "\n"
ANSWER = TINY_R1_ANSWER
FIRST, SECOND = "Hello there", "Count to ten"


@dataclass
class TutorialServers:
    urls: dict[str, str]
    log: Path

    def log_text(self, since: int = 0) -> str:
        return self.log.read_text(errors="replace")[since:]

    def mark(self) -> int:
        """Where the log ends now: what a test's own requests print comes after it."""
        return len(self.log_text())


@pytest.fixture(scope="module")
def tutorial_servers(tiny_model_dir: Path) -> Iterator[TutorialServers]:
    ports = {name: free_port() for name in APPS}
    with tempfile.NamedTemporaryFile(prefix="r1relay-tutorials-", suffix=".log", delete=False) as out:
        log = Path(out.name)
        env = {**OFFLINE_ENV, "MODEL_PATH": str(tiny_model_dir), "API_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.tutorial_servers.serve_all", *(f"{n}={p}" for n, p in ports.items())],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=REPO,
        )
    try:
        for port in ports.values():
            wait_for_port(port, STARTUP_TIMEOUT, process, log)
        yield TutorialServers({name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def flask_module(built_dir: Path):
    return load_function(built_dir / "r1relay_flask.py")


@pytest.fixture(scope="module")
def kt_module(built_dir: Path):
    return load_function(built_dir / "r1relay_ktransformers.py")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def body(model: str, messages: list[dict], **params) -> dict:
    return {"model": model, "messages": messages, "stream": True, **params}


async def two_turns(pipe, module, model: str, **params) -> tuple[PipeRun, PipeRun, list[dict]]:
    """Turn one, then turn two with turn one's answer in the history, as Open WebUI sends it (no thinking)."""
    first = await run_pipe(pipe, module, body(model, [{"role": "user", "content": FIRST}], **params))
    history = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": SECOND},
    ]
    second = await run_pipe(pipe, module, body(model, history, **params))
    return first, second, history


def assert_exact(run: PipeRun, reasoning: str = REASONING, answer: str = ANSWER) -> None:
    assert not run.errors, run.errors
    assert (run.reasoning, run.content) == (reasoning, answer)


def assert_prompt_reached(servers: TutorialServers, tokenizer, history: list[dict], since: int) -> None:
    """Since `since`, the server printed the second prompt, and it holds the first question and answer."""
    prompt = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    assert FIRST in prompt and TINY_R1_ANSWER in prompt
    assert f"Prompt: {prompt}" in servers.log_text(since)


@pytest.mark.parametrize(
    ("app", "valves"),
    [
        ("flask_generate", {"USE_STREAM": False}),
        ("flask_sse_raw", {}),
        ("flask_plain_text", {}),
        ("flask_plain_text", {"STREAM_PATH": "/stream_all"}),
        ("fastapi_ndjson", {}),
        ("fastapi_ndjson", {"STREAM_PATH": "/api/generate"}),
        ("fastapi_generate_key", {"USE_STREAM": False, "API_KEY": API_KEY}),
    ],
    ids=["generate-echo", "sse-raw-tokens", "plain-text", "plain-text-streamed-echo", "ndjson-token", "ndjson-ollama-no-type", "fastapi-api-key"],
)
async def test_tutorial_server_two_turns_exact(flask_module, tutorial_servers, tokenizer, app: str, valves: dict) -> None:
    pipe = make_pipe(flask_module, BASE_URLS=tutorial_servers.urls[app], **valves)
    since = tutorial_servers.mark()
    first, second, history = await two_turns(pipe, flask_module, FLASK_MODEL, temperature=0)
    assert_exact(first)
    assert_exact(second)
    assert_prompt_reached(tutorial_servers, tokenizer, history, since)


async def test_strict_sse_loses_the_line_breaks_raw_tokens_keep(flask_module, tutorial_servers) -> None:
    """The bug this fixes, on the real raw-token server: a spec decoder drops every token's trailing newline."""
    url = tutorial_servers.urls["flask_sse_raw"]
    messages = [{"role": "user", "content": FIRST}]
    strict = await run_pipe(make_pipe(flask_module, BASE_URLS=url, SSE_STYLE="strict"), flask_module, body(FLASK_MODEL, messages))
    assert (strict.reasoning, strict.content) == (TINY_R1_REASONING, ANSWER)  # "short.\n" lost its newline
    raw = await run_pipe(make_pipe(flask_module, BASE_URLS=url, SSE_STYLE="raw-tokens"), flask_module, body(FLASK_MODEL, messages))
    assert_exact(raw)


async def test_echo_valve_keep_shows_the_echo(flask_module, tutorial_servers) -> None:
    pipe = make_pipe(flask_module, BASE_URLS=tutorial_servers.urls["flask_generate"], USE_STREAM=False, ECHO="keep")
    run = await run_pipe(pipe, flask_module, body(FLASK_MODEL, [{"role": "user", "content": FIRST}]))
    assert run.reasoning == f"{FIRST}<think>\n{REASONING}"  # the echoed prompt, minus its special tokens, is not thinking


async def test_generate_cut_by_max_length(flask_module, tutorial_servers, tokenizer) -> None:
    """`max_tokens` used as `max_length` (which counts the prompt): prompt echo plus a cut completion, both turns."""
    pipe = make_pipe(flask_module, BASE_URLS=tutorial_servers.urls["flask_generate"], USE_STREAM=False)
    completion_ids = tokenizer.encode(TINY_R1_COMPLETION, add_special_tokens=False)
    history: list[dict] = []
    for question in (FIRST, SECOND):
        history.append({"role": "user", "content": question})
        prompt = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
        new_tokens = 9
        max_length = len(tokenizer(prompt)["input_ids"]) + new_tokens
        run = await run_pipe(pipe, flask_module, body(FLASK_MODEL, list(history), max_tokens=max_length))
        cut = tokenizer.decode(completion_ids[:new_tokens], skip_special_tokens=True)
        assert "</think>" not in cut and cut.strip()
        assert_exact(run, reasoning=cut, answer="")
        history.append({"role": "assistant", "content": run.content or "…"})


async def test_fastapi_wrong_key_is_one_sentence(flask_module, tutorial_servers) -> None:
    pipe = make_pipe(flask_module, BASE_URLS=tutorial_servers.urls["fastapi_generate_key"], USE_STREAM=False, API_KEY="nope-123")
    run = await run_pipe(pipe, flask_module, body(FLASK_MODEL, [{"role": "user", "content": FIRST}]))
    (error,) = run.errors
    assert "401" in error and "nope-123" not in run.everything()


async def test_chat_template_valve_renders_the_model_template(flask_module, tutorial_servers, tokenizer, tiny_model_dir) -> None:
    """CHAT_TEMPLATE (here the model dir's tokenizer_config.json) wins over PROMPT_TEMPLATE and renders as transformers does."""
    pipe = make_pipe(
        flask_module, BASE_URLS=tutorial_servers.urls["flask_sse_raw"], PROMPT_TEMPLATE="plain", CHAT_TEMPLATE=str(tiny_model_dir)
    )
    since = tutorial_servers.mark()
    first, second, history = await two_turns(pipe, flask_module, FLASK_MODEL)
    assert_exact(first)
    assert_exact(second)
    assert_prompt_reached(tutorial_servers, tokenizer, history, since)
    config = (tiny_model_dir / "tokenizer_config.json").read_text()
    pasted = make_pipe(flask_module, BASE_URLS=tutorial_servers.urls["flask_plain_text"], PROMPT_TEMPLATE="plain", CHAT_TEMPLATE=config)
    assert_exact(await run_pipe(pasted, flask_module, body(FLASK_MODEL, history)))


@pytest.mark.parametrize(
    ("model", "valves"),
    [("tiny-r1", {}), ("house-model", {}), ("house-model", {"FORCE_THINK": True})],
    ids=["r1-name-defaults", "other-name-defaults", "other-name-force-think"],
)
async def test_ktransformers_wrapper_tutorial_style(kt_module, tutorial_servers, model: str, valves: dict) -> None:
    """`content: str` only, force_think true by default, one JSON body for a stream request, decoded inside the thinking."""
    pipe = make_pipe(kt_module, BASE_URLS=tutorial_servers.urls["kt_wrapper"], MODELS=model, **valves)
    kt_model = f"r1relay_ktransformers.{model}"
    since = tutorial_servers.mark()
    parts = [{"type": "text", "text": FIRST}]  # Open WebUI sends a list of parts with attachments: the wrapper would 422
    first = await run_pipe(pipe, kt_module, body(kt_model, [{"role": "user", "content": parts}]))
    assert_exact(first)
    history = [{"role": "user", "content": parts}, {"role": "assistant", "content": first.content}, {"role": "user", "content": SECOND}]
    second = await run_pipe(pipe, kt_module, body(kt_model, history))
    assert_exact(second)
    seen = f"{{'role': 'user', 'content': '{FIRST}'}}, {{'role': 'assistant', 'content': {first.content!r}}}, {{'role': 'user', 'content': '{SECOND}'}}"
    assert seen in tutorial_servers.log_text(since)


def test_raw_token_server_through_a_real_open_webui(openwebui, built_dir: Path, tutorial_servers, tokenizer) -> None:
    """The built Flask pipe registered in a real Open WebUI, on the raw-token SSE tutorial server, two turns."""
    function_id = "r1relay_flask_tutorial"
    openwebui.register_function(function_id, "Flask tutorial", (built_dir / "r1relay_flask.py").read_text(), type_hint="pipe")
    openwebui.set_valves(function_id, {"BASE_URLS": tutorial_servers.urls["flask_sse_raw"], "MODELS": "tiny-r1"})

    def ask(messages: list[dict]) -> tuple[str, str]:
        chunks = openwebui.chat(f"{function_id}.tiny-r1", messages)
        deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
        return "".join(d.get("reasoning_content") or "" for d in deltas), "".join(d.get("content") or "" for d in deltas)

    since = tutorial_servers.mark()
    try:
        assert ask([{"role": "user", "content": FIRST}]) == (REASONING, ANSWER)
        history = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": ANSWER}, {"role": "user", "content": SECOND}]
        assert ask(history) == (REASONING, ANSWER)
        assert_prompt_reached(tutorial_servers, tokenizer, history, since)
    finally:
        openwebui.delete_function(function_id)
