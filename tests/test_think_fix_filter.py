"""The built think-fix filter, driven the way Open WebUI 0.12.4's middleware drives a filter.

utils/middleware.py `streaming_chat_response_handler` parses each `data:` line
of the backend's stream into a dict and calls `stream(event=chunk, **extra)`,
where utils/filter.py `get_filter_params` passes only the `__x__` names the
hook declares: `__metadata__`, `__chat_id__`, `__message_id__`, `__model__`,
`__body__`, `__user__` (with `valves` set to the user's UserValves), …
`outlet_filter_handler` calls `outlet(body=…)` after the reply with the chat's
messages, each `{id, role, content, info, timestamp, output?}`.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
import json
import os
import secrets
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installer import bundle
from tests.emulators.vllm import DEFAULT_SCRIPT, VLLMEmulator
from tests.emulators.vllm_variants import VLLMWithCORS
from tests.support.built import load_function_source
from tests.support.ports import free_port

R1 = "deepseek-ai/DeepSeek-R1"
REASONING = "Okay, the user greets me.\nI should greet back."
ANSWER = "Hello! How can I help you today?"


@pytest.fixture(scope="module")
def think_fix() -> types.ModuleType:
    spec = next(s for s in bundle.FUNCTIONS if s.id == "r1relay_think_fix")
    return load_function_source(spec.id, bundle.build_function(spec))


def make_filter(module: types.ModuleType, **valves: Any) -> Any:
    filt = module.Filter()
    filt.valves = module.Filter.Valves(**valves)
    return filt


def connection_model(upstream_id: str, prefix: str = "") -> dict:
    """`__model__` of an admin OpenAI-connection model (routers/openai.py get_all_models)."""
    upstream = {"id": upstream_id, "object": "model", "owned_by": "vllm", "max_model_len": 8192}
    model_id = f"{prefix}.{upstream_id}" if prefix else upstream_id
    return {**upstream, "id": model_id, "name": model_id, "owned_by": "openai", "openai": upstream, "urlIdx": 0}


def chunk(delta: dict, finish: str | None = None, model: str = R1, cid: str = "chatcmpl-1") -> dict:
    """A parsed vLLM chunk, as the stream hook receives it."""
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def stream_chunks(pieces: list[str], model: str = R1, cid: str = "chatcmpl-1") -> list[dict]:
    """A content-only stream (no reasoning parser): role chunk, one chunk per piece, finish on the last."""
    out = [chunk({"role": "assistant", "content": ""}, model=model, cid=cid)]
    out += [chunk({"content": p}, "stop" if i == len(pieces) - 1 else None, model, cid) for i, p in enumerate(pieces)]
    return out


def emulator_chunks(reasoning_field: str, script: str = DEFAULT_SCRIPT) -> list[dict]:
    """The exact deltas the vLLM emulator would stream for `script`."""
    deltas = VLLMEmulator(reasoning_field=reasoning_field, script=script)._deltas()  # type: ignore[arg-type]
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk(d, "stop" if i == len(deltas) - 1 else None) for i, d in enumerate(deltas)]
    return out


class Chat:
    """One streamed answer in one chat, with the extra params middleware.py builds for it."""

    def __init__(
        self, module: types.ModuleType, chat_id: str, message_id: str, model: dict, enabled: bool = True
    ) -> None:
        self.metadata = {"chat_id": chat_id, "message_id": message_id, "session_id": "s", "user_id": "u"}
        self.extra = {
            "__event_emitter__": None,
            "__event_call__": None,
            "__user__": {"id": "u", "role": "user", "valves": module.Filter.UserValves(ENABLED=enabled)},
            "__metadata__": self.metadata,
            "__request__": None,
            "__model__": model,
            "__chat_id__": chat_id,
            "__message_id__": message_id,
            "__body__": {"model": model["id"], "messages": [], "stream": True},
            "__id__": "r1relay_think_fix",
        }
        self.out: list[dict] = []

    async def send(self, filt: Any, event: dict) -> dict:
        """utils/filter.py get_filter_params + run_filter_handler for filter_type='stream'."""
        sig = inspect.signature(filt.stream)
        params = {"event": event} | {k: v for k, v in self.extra.items() if k in sig.parameters}
        result = await filt.stream(**params)
        self.out.append(result)
        return result

    @property
    def reasoning(self) -> str:
        return "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in self.out if c.get("choices"))

    @property
    def content(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.out if c.get("choices"))


async def run(filt: Any, module: types.ModuleType, chunks: list[dict], model: dict | None = None) -> Chat:
    chat = Chat(module, "chat-1", "msg-1", model or connection_model(R1))
    for c in chunks:
        await chat.send(filt, c)
    return chat


async def test_bare_close_tag_split_at_every_character(think_fix) -> None:
    filt = make_filter(think_fix)
    chat = await run(filt, think_fix, stream_chunks(list(DEFAULT_SCRIPT)))
    assert chat.reasoning.strip() == REASONING
    assert chat.content == ANSWER
    assert not any("</think>" in (c["choices"][0]["delta"].get("content") or "") for c in chat.out)
    first_content = next(
        c["choices"][0]["delta"]["content"] for c in chat.out if c["choices"][0]["delta"].get("content")
    )
    assert first_content.strip(), "a whitespace-only content delta would close the reasoning block early"
    assert len(filt.streams) == 0, "state ends with the stream"


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(DEFAULT_SCRIPT)), max_size=12))
async def test_any_chunking_gives_the_same_split(think_fix, cuts: list[int]) -> None:
    points = sorted({0, len(DEFAULT_SCRIPT), *cuts})
    pieces = [DEFAULT_SCRIPT[a:b] for a, b in itertools.pairwise(points) if b > a]
    chat = await run(make_filter(think_fix), think_fix, stream_chunks(pieces))
    assert (chat.reasoning.strip(), chat.content) == (REASONING, ANSWER)


async def test_emulator_stream_without_reasoning_parser(think_fix) -> None:
    chat = await run(make_filter(think_fix), think_fix, emulator_chunks("none"))
    assert (chat.reasoning.strip(), chat.content) == (REASONING, ANSWER)


async def test_think_tagged_content_of_any_model_when_all_models_are_on(think_fix) -> None:
    filt = make_filter(think_fix, MODELS="*")
    text = "<think>\nLet me think.\n</think>\n\nDone."
    chat = await run(
        filt, think_fix, stream_chunks(list(text), model="Qwen/Qwen3-8B"), connection_model("Qwen/Qwen3-8B")
    )
    assert (chat.reasoning, chat.content) == ("Let me think.\n", "Done.")


async def test_two_interleaved_chats_never_mix(think_fix) -> None:
    filt = make_filter(think_fix)
    other = "Second chat thinks differently.</think>Second answer."
    a = Chat(think_fix, "chat-A", "msg-A", connection_model(R1))
    b = Chat(think_fix, "chat-B", "msg-B", connection_model(R1))
    stream_a = stream_chunks(list(DEFAULT_SCRIPT), cid="chatcmpl-same")
    stream_b = stream_chunks(list(other), cid="chatcmpl-same")  # even identical backend ids stay apart
    for ca, cb in itertools.zip_longest(stream_a, stream_b):
        if ca:
            await a.send(filt, ca)
        if cb:
            await b.send(filt, cb)
    assert (a.reasoning.strip(), a.content) == (REASONING, ANSWER)
    assert (b.reasoning, b.content) == ("Second chat thinks differently.", "Second answer.")
    assert len(filt.streams) == 0


@pytest.mark.parametrize("reasoning_field", ["reasoning_content", "both", "reasoning"])
async def test_well_formed_reasoning_fields_pass_untouched(think_fix, reasoning_field: str) -> None:
    chunks = emulator_chunks(reasoning_field)
    before = copy.deepcopy(chunks)
    chat = await run(make_filter(think_fix, MODELS="*"), think_fix, chunks)
    assert chat.out == before
    assert all(out is original for out, original in zip(chat.out, chunks, strict=True))


async def test_plain_model_without_tags_is_untouched(think_fix) -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"
    chunks = stream_chunks(["Just ", "an answer ", "with a < b ", "and </think> quoted."], model=model)
    for valves in ({}, {"MODELS": "*"}):
        filt = make_filter(think_fix, **valves)
        chat = await run(filt, think_fix, chunks, connection_model(model))
        assert chat.content == "Just an answer with a < b and </think> quoted."
        assert chat.reasoning == ""
    default = await run(make_filter(think_fix), think_fix, chunks, connection_model(model))
    assert all(out is original for out, original in zip(default.out, chunks, strict=True))


async def test_listed_model_with_an_opaque_name_is_fixed(think_fix) -> None:
    """A vLLM `--served-model-name my-model` hides the family: naming it in MODELS turns fixing on."""
    chunks = stream_chunks(list(DEFAULT_SCRIPT), model="my-model")
    unlisted = await run(make_filter(think_fix), think_fix, chunks, connection_model("my-model"))
    assert "</think>" in unlisted.content
    listed = await run(
        make_filter(think_fix, MODELS="my-*"),
        think_fix,
        stream_chunks(list(DEFAULT_SCRIPT), model="my-model"),
        connection_model("my-model"),
    )
    assert (listed.reasoning.strip(), listed.content) == (REASONING, ANSWER)


async def test_own_pipes_and_disabled_users_are_left_alone(think_fix) -> None:
    pipe_model = {"id": f"r1relay_vllm.{R1}", "name": R1, "owned_by": "openai", "pipe": {"type": "pipe"}}
    chunks = stream_chunks(list(DEFAULT_SCRIPT))
    own = await run(make_filter(think_fix, MODELS="*"), think_fix, chunks, pipe_model)
    assert all(out is original for out, original in zip(own.out, chunks, strict=True))
    filt = make_filter(think_fix)
    off = Chat(think_fix, "c", "m", connection_model(R1), enabled=False)
    for c in chunks:
        await off.send(filt, c)
    assert "</think>" in off.content and off.reasoning == ""


async def test_reasoning_cut_off_by_max_tokens_is_all_reasoning(think_fix) -> None:
    chat = await run(make_filter(think_fix), think_fix, stream_chunks(list("Still thinking </thi")))
    assert (chat.reasoning, chat.content) == ("Still thinking </thi", "")


async def test_a_second_response_in_the_same_message_starts_fresh(think_fix) -> None:
    """Tool-call rounds stream several backend responses into one message."""
    filt = make_filter(think_fix)
    chat = Chat(think_fix, "c", "m", connection_model(R1))
    for c in stream_chunks(list("First thought.</think>Calling a tool.")):
        await chat.send(filt, c)
    for c in stream_chunks(list("Second thought.</think>Final."), cid="chatcmpl-2"):
        await chat.send(filt, c)
    assert (chat.reasoning, chat.content) == ("First thought.Second thought.", "Calling a tool.Final.")


async def test_unfinished_streams_do_not_leak(think_fix) -> None:
    filt = make_filter(think_fix)
    now = [0.0]
    filt.streams = think_fix.ThinkStreamStore(max_streams=50, max_idle=60.0, clock=lambda: now[0])
    for i in range(200):  # clients that vanished mid-answer: no finish_reason ever arrives
        c = Chat(think_fix, f"chat-{i}", f"msg-{i}", connection_model(R1))
        await c.send(filt, chunk({"content": "thinking"}))
    assert len(filt.streams) <= 50
    now[0] = 61.0
    await Chat(think_fix, "late", "late", connection_model(R1)).send(filt, chunk({"content": "x"}))
    assert len(filt.streams) == 1


async def test_outlet_ends_the_stream_state(think_fix) -> None:
    filt = make_filter(think_fix)
    chat = Chat(think_fix, "c", "m", connection_model(R1))
    await chat.send(filt, chunk({"content": "thinking"}))
    assert len(filt.streams) == 1
    await filt.outlet(body={"model": R1, "messages": []}, __metadata__=chat.metadata, __model__=connection_model(R1))
    assert len(filt.streams) == 0


def outlet_body(content: str, output: list | None = None) -> dict:
    """utils/middleware.py outlet_filter_handler's body for a chat whose last reply is `content`."""
    last = {"id": "msg-2", "role": "assistant", "content": content, "info": None, "timestamp": 2}
    if output is not None:
        last["output"] = output
    return {
        "model": R1,
        "messages": [{"id": "msg-1", "role": "user", "content": "Hi", "info": None, "timestamp": 1}, last],
        "chat_id": "chat-1",
        "session_id": "s",
        "id": "msg-2",
    }


async def test_outlet_fixes_a_non_streamed_reply_into_the_stored_form(think_fix) -> None:
    raw = DEFAULT_SCRIPT
    body = outlet_body(
        raw,
        [
            {
                "type": "message",
                "id": "msg_x",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": raw}],
            }
        ],
    )
    result = await make_filter(think_fix).outlet(
        body=body, __metadata__={"chat_id": "chat-1", "message_id": "msg-2"}, __model__=connection_model(R1)
    )
    last = result["messages"][-1]
    assert last["content"] == ANSWER
    reasoning, message = last["output"]
    assert reasoning["type"] == "reasoning" and reasoning["attributes"] == {"type": "reasoning_content"}
    assert reasoning["content"] == [{"type": "output_text", "text": REASONING}]
    assert message["type"] == "message" and message["id"] == "msg_x"
    assert message["content"] == [{"type": "output_text", "text": ANSWER}]


async def test_outlet_leaves_well_formed_replies_alone(think_fix) -> None:
    stored = [
        {"type": "reasoning", "id": "r_1", "status": "completed", "content": [{"type": "output_text", "text": "x"}]},
        {
            "type": "message",
            "id": "m_1",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Quoting </think> here."}],
        },
    ]
    for body in (outlet_body(ANSWER), outlet_body("Quoting </think> here.", stored)):
        before = copy.deepcopy(body)
        assert await make_filter(think_fix).outlet(body=body, __model__=connection_model(R1)) == before


# ---- in a real Open WebUI and a real browser ----
# Self-contained (tests/support/openwebui.py had not landed when these were written): one server per
# module, the vLLM emulator streaming bare `</think>` as plain content, both filters active and global.

OPEN_WEBUI = Path(sys.executable).parent / "open-webui"
CHROMIUM = Path("/usr/bin/chromium")
EMAIL, PASSWORD = "admin@example.com", "think-fix-test-pw"
DIRECT_MODEL = "deepseek-r1-distill-qwen-7b"

needs_open_webui = pytest.mark.skipif(not OPEN_WEBUI.exists(), reason="open-webui is not installed")
needs_browser = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


@dataclass
class RealOpenWebUI:
    url: str
    token: str
    direct: VLLMEmulator

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}



@pytest.fixture(scope="module")
def real_open_webui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOpenWebUI]:
    if not OPEN_WEBUI.exists():
        pytest.skip("open-webui is not installed")
    admin_backend = VLLMEmulator(reasoning_field="none", token_delay=0.02).start()
    direct_backend = VLLMWithCORS(reasoning_field="none", token_delay=0.02, models=(DIRECT_MODEL,)).start()
    data = tmp_path_factory.mktemp("open-webui")
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "ENABLE_OLLAMA_API": "false",
        "ENABLE_OPENAI_API": "false",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "WEBUI_SECRET_KEY": secrets.token_hex(16),
    }
    with (data / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                pytest.fail(f"open-webui exited; see {data / 'server.log'}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        signup = {"name": "Admin", "email": EMAIL, "password": PASSWORD}
        token = httpx.post(f"{url}/api/v1/auths/signup", json=signup, timeout=30).json()["token"]
        ui = RealOpenWebUI(url, token, direct_backend)
        connection = {
            "ENABLE_OPENAI_API": True,
            "OPENAI_API_BASE_URLS": [admin_backend.base_url],
            "OPENAI_API_KEYS": [""],
            "OPENAI_API_CONFIGS": {"0": {"enable": True}},
        }
        httpx.post(f"{url}/openai/config/update", headers=ui.headers, json=connection, timeout=30).raise_for_status()
        for spec in bundle.FUNCTIONS:
            if spec.type == "filter":
                form = {
                    "id": spec.id,
                    "name": spec.id,
                    "content": bundle.build_function(spec),
                    "meta": {"description": spec.id},
                }
                httpx.post(
                    f"{url}/api/v1/functions/create", headers=ui.headers, json=form, timeout=60
                ).raise_for_status()
                for switch in ("toggle", "toggle/global"):
                    httpx.post(f"{url}/api/v1/functions/id/{spec.id}/{switch}", headers=ui.headers, timeout=30)
        direct = {"ENABLE_DIRECT_CONNECTIONS": True, "ENABLE_BASE_MODELS_CACHE": False}
        httpx.post(f"{url}/api/v1/configs/connections", headers=ui.headers, json=direct, timeout=30).raise_for_status()
        settings = httpx.get(f"{url}/api/v1/users/user/settings", headers=ui.headers, timeout=30).json() or {}
        settings["ui"] = {
            **(settings.get("ui") or {}),
            "directConnections": {
                "OPENAI_API_BASE_URLS": [direct_backend.base_url],
                "OPENAI_API_KEYS": [""],
                "OPENAI_API_CONFIGS": {"0": {"enable": True}},
            },
        }
        httpx.post(f"{url}/api/v1/users/user/settings/update", headers=ui.headers, json=settings, timeout=30)
        yield ui
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        admin_backend.stop()
        direct_backend.stop()


@needs_open_webui
def test_real_open_webui_api_stream_carries_reasoning_separately(real_open_webui: RealOpenWebUI) -> None:
    body = {"model": R1, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    reasoning = content = ""
    with httpx.stream(
        "POST", f"{real_open_webui.url}/api/chat/completions", headers=real_open_webui.headers, json=body, timeout=60
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                parsed = json.loads(line[6:])
                for choice in parsed.get("choices") or []:
                    reasoning += choice["delta"].get("reasoning_content") or ""
                    content += choice["delta"].get("content") or ""
    assert (reasoning.strip(), content) == (REASONING, ANSWER)


def _browser_answer(ui: RealOpenWebUI, model: str) -> str:
    """Log in, ask `model` in a new chat, return the text of the messages pane once the answer is there."""
    sync_api = pytest.importorskip("playwright.sync_api")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*args, "--disable-sync", "--no-first-run"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{ui.url}/auth")
            page.fill("input[type=email]", EMAIL)
            page.fill("input[type=password]", PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(lambda url: "/auth" not in url, timeout=60_000)
            page.goto(f"{ui.url}/?model={model}")
            page.wait_for_selector("#chat-input", timeout=60_000)
            for label in ("Okay, Let's Go!", "Close"):  # the release-notes modal of a first login
                button = page.get_by_role("button", name=label)
                if button.count():
                    with contextlib.suppress(Exception):
                        button.first.click(timeout=2_000)
            page.click("#chat-input")
            page.keyboard.type("Hi there")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "() => { const m = document.querySelector('#messages-container');"
                " return m && m.innerText.includes('How can I help you today?') && m.innerText.includes('Thought for'); }",
                timeout=90_000,
            )
            return page.inner_text("#messages-container")
        finally:
            browser.close()


@needs_open_webui
@needs_browser
def test_real_browser_admin_connection_shows_thought_block(real_open_webui: RealOpenWebUI) -> None:
    text = _browser_answer(real_open_webui, R1)
    assert "Thought for" in text and ANSWER in text
    assert "</think>" not in text and "I should greet back" not in text


@needs_open_webui
@needs_browser
def test_real_browser_direct_connection_shows_thought_block(real_open_webui: RealOpenWebUI) -> None:
    before = len(real_open_webui.direct.requests)
    text = _browser_answer(real_open_webui, DIRECT_MODEL)
    assert len(real_open_webui.direct.requests) == before + 1, "the browser fetched the direct connection itself"
    assert "Thought for" in text and ANSWER in text
    assert "</think>" not in text and "I should greet back" not in text
