"""Fault suite: the BUILT pipe files (vLLM, KTransformers, Flask) against emulators of a hostile network.

Every case checks what a user of Open WebUI would meet: one clear sentence (no
traceback, no raw body), what already streamed kept, no API key anywhere in what
is shown, a stream Open WebUI can consume (JSON chunk dicts, no exception), and a
status line that ends. Cases already covered elsewhere (401, 404, 400 context,
429, HTML 502, drop mid-stream, malformed chunk, error chunk, refused connection,
failover, Stop, per-user keys) are not repeated here.
"""

from __future__ import annotations

import json
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from tests.emulators.ktransformers import KTransformersEmulator
from tests.emulators.prompt_server import PromptServerEmulator
from tests.emulators.server import ThreadedServer
from tests.emulators.vllm import VLLMEmulator
from tests.support.built import load_function
from tests.support.openwebui import OpenWebUI
from tests.support.pipe_driver import PipeRun, chat_body, make_pipe, run_pipe
from tests.support.ports import free_port

SECRET = "sk-r1relay-fault-suite-7f3a9c"
R1_REASONING = "Okay, the user greets me.\nI should greet back.\n"
R1_ANSWER = "Hello! How can I help you today?"
NO_SUCH_HOST = "http://r1relay-no-such-host.invalid:8000"



class FixedPortServer(ThreadedServer):
    """A ThreadedServer on a port chosen beforehand: a backend that comes back where it was."""

    def __init__(self, make_app: Callable[[], web.Application], port: int) -> None:
        super().__init__(make_app)
        self.port = port

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._make_app(), shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()


@dataclass
class Backend:
    """One pipe kind with its emulator, as a test sees it."""

    kind: str
    module: types.ModuleType
    emulator: Any
    model: str
    reasoning: str
    answer: str

    def base_url(self, emulator: Any | None = None) -> str:
        emulator = emulator or self.emulator
        return str(emulator.base_url if self.kind == "vllm" else emulator.url)

    def pipe(self, **valves: Any) -> Any:
        return make_pipe(self.module, **{"BASE_URLS": self.base_url(), "API_KEY": SECRET, **valves})

    async def run(self, pipe: Any) -> PipeRun:
        return await run_pipe(pipe, self.module, chat_body(self.model))


EMULATORS: dict[str, Callable[[], Any]] = {
    "vllm": lambda: VLLMEmulator(api_key=SECRET),
    "ktransformers": lambda: KTransformersEmulator(shape="builtin", api_key=SECRET),
    "flask": lambda: PromptServerEmulator(api_key=SECRET),
}
MODELS = {
    "vllm": "r1relay_vllm.deepseek-ai/DeepSeek-R1",
    "ktransformers": "r1relay_ktransformers.DeepSeek-R1",
    "flask": "r1relay_flask.tiny-r1",
}
OUTPUT = {
    "vllm": (R1_REASONING, R1_ANSWER),
    "ktransformers": (R1_REASONING, R1_ANSWER),
    "flask": ("The user says hi.\nGreet them naïvely 🤔.\n", "Hello,\nfriend! Bye."),
}


def start_emulator(kind: str, port: int | None = None) -> Any:
    emulator = EMULATORS[kind]()
    if port is None:
        return emulator.start()
    emulator._server = FixedPortServer(emulator._app, port).start()
    return emulator


@pytest.fixture(params=["vllm", "ktransformers", "flask"])
def backend(request: pytest.FixtureRequest, built_dir: Path) -> Iterator[Backend]:
    kind = request.param
    module = load_function(built_dir / f"r1relay_{kind}.py")
    emulator = start_emulator(kind)
    try:
        yield Backend(kind, module, emulator, MODELS[kind], *OUTPUT[kind])
    finally:
        emulator.stop()


VLLM_ONLY = pytest.mark.parametrize("backend", ["vllm"], indirect=True)  # faults only vLLM's emulator can show


def assert_user_sees_one_sentence(run: PipeRun, *fragments: str) -> str:
    """One short, single-line error naming the cause; no secret, no traceback; a stream Open WebUI can consume."""
    assert len(run.errors) == 1, run.errors
    message = run.errors[0]
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message and len(message) < 300 and message.rstrip().endswith((".", "?", "…")), message
    assert_clean(run)
    return message


def assert_clean(run: PipeRun) -> None:
    shown = run.everything()
    assert SECRET not in shown
    assert "Traceback" not in shown and "<html" not in shown.lower()
    assert all(isinstance(chunk, dict) for chunk in run.chunks)
    json.dumps(run.chunks)  # Open WebUI serialises each chunk
    assert run.statuses and run.statuses[-1]["done"] is True


class ShiftedClock:
    """The built module's `time`, running `shift` seconds ahead: the 30 s down-mark passes without waiting."""

    def __init__(self) -> None:
        self.shift = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.shift

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


# ---- cases ----


async def test_dns_failure_names_the_host_that_does_not_resolve(backend: Backend) -> None:
    """A base URL whose host name cannot resolve: one sentence saying so, naming scheme://host:port only."""
    run = await backend.run(backend.pipe(BASE_URLS=NO_SUCH_HOST))
    assert_user_sees_one_sentence(run, "r1relay-no-such-host.invalid:8000", "does not resolve")
    assert run.reasoning == run.content == ""


@VLLM_ONLY
async def test_vllm_403_forbidden_points_at_the_key(backend: Backend) -> None:
    """vLLM (or its gateway) answering 403 with its JSON error: the key is named as the likely cause."""
    backend.emulator.fault, backend.emulator.fault_status = "status", 403
    run = await backend.run(backend.pipe())
    assert_user_sees_one_sentence(run, "rejected the API key", "HTTP 403 (Forbidden)")


async def test_a_proxy_403_html_page_is_one_sentence(backend: Backend) -> None:
    """A reverse proxy in front of any backend refusing with an HTML 403 page: no HTML reaches the chat."""

    def proxy() -> web.Application:
        app = web.Application()
        page = "<html><body><h1>403 Forbidden</h1><p>nginx</p></body></html>"
        app.router.add_route("*", "/{tail:.*}", lambda r: web.Response(status=403, text=page, content_type="text/html"))
        return app

    with ThreadedServer(proxy) as server:
        run = await backend.run(backend.pipe(BASE_URLS=server.url))
    assert_user_sees_one_sentence(run, "HTTP 403 (Forbidden)")


async def test_a_stall_past_the_read_timeout_keeps_what_streamed(backend: Backend) -> None:
    """The backend stops sending but keeps the socket open: after REQUEST_TIMEOUT one sentence, earlier text kept."""
    if backend.kind == "vllm":
        backend.emulator.fault = "stall"  # after half the tokens
    elif backend.kind == "ktransformers":
        backend.emulator.prefill_delay = 30.0  # a prefill that never ends, from the client's point of view
    else:
        backend.emulator.token_delay = 30.0
    run = await backend.run(backend.pipe(REQUEST_TIMEOUT=0.5))
    assert_user_sees_one_sentence(run, "sent nothing for 0.5 seconds")
    if backend.kind == "vllm":
        assert run.reasoning.startswith("Okay, the user") and R1_REASONING.startswith(run.reasoning)


@VLLM_ONLY
async def test_data_lines_split_across_network_reads(backend: Backend) -> None:
    """Every SSE frame written a few bytes at a time (inside JSON, inside UTF-8 characters): the same text arrives."""
    # (the Flask emulator's split writes are covered in test_flask_pipe.py)
    backend.emulator.write_size = 7
    backend.emulator.script = "Hmm… naïve 🤔 thought.\n</think>\n\nAnswer: 答案 ✓ done."
    run = await backend.run(backend.pipe())
    assert (run.reasoning, run.content) == ("Hmm… naïve 🤔 thought.\n", "Answer: 答案 ✓ done.")
    assert not run.errors
    assert_clean(run)


async def test_a_one_megabyte_single_chunk_arrives_whole(backend: Backend) -> None:
    """One 1 MB token (one SSE frame of 1 MB): it arrives intact, thinking still apart from the answer."""
    big = "A" * 1_000_000
    if backend.kind == "flask":
        backend.emulator.pieces = (big, "\n</think>\n\n", "ok")
    else:
        backend.emulator.script = f"{big}\n</think>\n\nok"
    run = await backend.run(backend.pipe())
    assert not run.errors
    assert (run.reasoning, run.content) == (f"{big}\n", "ok")
    assert_clean(run)


async def test_a_failed_backend_that_recovers_serves_the_next_request(backend: Backend) -> None:
    """The only backend is down (connection refused), then restarts on the same port: the next request works."""
    port = free_port()
    pipe = backend.pipe(BASE_URLS=backend.base_url(types.SimpleNamespace(url=f"http://127.0.0.1:{port}",
                                                                          base_url=f"http://127.0.0.1:{port}/v1")))
    down = await backend.run(pipe)
    assert_user_sees_one_sentence(down, f"127.0.0.1:{port}", "is the server running?")
    revived = start_emulator(backend.kind, port)
    try:
        up = await backend.run(pipe)
    finally:
        revived.stop()
    assert not up.errors
    assert (up.reasoning, up.content) == (backend.reasoning, backend.answer)


@VLLM_ONLY
async def test_vllm_recovers_after_server_errors(backend: Backend) -> None:
    """vLLM failing with 500s, then healthy again: each failure one sentence, the next request after it works."""
    pipe = backend.pipe()
    backend.emulator.fault, backend.emulator.fault_status = "status", 503
    for _ in range(2):
        assert_user_sees_one_sentence(await backend.run(pipe), "HTTP 503 (Service Unavailable)")
    backend.emulator.fault = "none"
    run = await backend.run(pipe)
    assert (run.reasoning, run.content, run.errors) == (backend.reasoning, backend.answer, [])


async def test_a_failed_replica_is_skipped_then_retried_later(backend: Backend) -> None:
    """Replica A refuses connections: requests go to B. A comes back: it stays skipped while marked down (30 s),
    then gets requests again."""
    clock = ShiftedClock()
    backend.module.time = clock  # the built file's own `time`: the engine's down-marks read it
    port = free_port()
    dead = backend.base_url(types.SimpleNamespace(url=f"http://127.0.0.1:{port}", base_url=f"http://127.0.0.1:{port}/v1"))
    pipe = backend.pipe(BASE_URLS=f"{dead}, {backend.base_url()}")
    for _ in range(2):  # the rotation starts at A once: A fails over to B
        run = await backend.run(pipe)
        assert (run.content, run.errors) == (backend.answer, [])
        assert_clean(run)
    replica_a = start_emulator(backend.kind, port)
    try:
        for _ in range(2):
            assert (await backend.run(pipe)).content == backend.answer
        assert replica_a.requests == [], "a replica marked down was tried before the healthy one"
        clock.shift = 31.0
        for _ in range(2):
            assert (await backend.run(pipe)).content == backend.answer
        assert len(replica_a.requests) == 1, "the recovered replica never got a request again"
    finally:
        replica_a.stop()


# ---- Open WebUI stays healthy ----


def test_open_webui_answers_health_while_a_pipe_stream_is_stalled(
    openwebui: OpenWebUI, built_dir: Path, vllm_emulator: VLLMEmulator
) -> None:
    """A backend stalls mid-answer inside a real Open WebUI: /health keeps answering; the chat then ends in one sentence."""
    function_id = "faults_vllm"
    openwebui.register_function(function_id, "faults vLLM", (built_dir / "r1relay_vllm.py").read_text(), type_hint="pipe")
    openwebui.set_valves(function_id, {"BASE_URLS": vllm_emulator.base_url, "MODELS": "deepseek-ai/DeepSeek-R1",
                                       "API_KEY": SECRET, "REQUEST_TIMEOUT": 4.0})
    vllm_emulator.api_key = SECRET
    vllm_emulator.fault = "stall"
    model = f"{function_id}.deepseek-ai/DeepSeek-R1"
    assert model in [m["id"] for m in openwebui.models()]  # also refreshes Open WebUI's model cache
    chunks: list[dict] = []

    def chat() -> None:
        chunks.extend(openwebui.chat(model, [{"role": "user", "content": "Hi"}]))

    chatting = threading.Thread(target=chat)
    chatting.start()
    try:
        for _ in range(1000):
            if vllm_emulator.requests or not chatting.is_alive():
                break
            time.sleep(0.01)
        assert vllm_emulator.requests, f"the pipe never called the backend: {chunks}"
        answers = [requests.get(f"{openwebui.url}/health", timeout=5) for _ in range(5)]
        stalled_meanwhile = chatting.is_alive() and not vllm_emulator.disconnects
    finally:
        chatting.join(60)
    assert stalled_meanwhile, "the stall ended before /health was asked (raise REQUEST_TIMEOUT in this test)"
    assert all(a.status_code == 200 for a in answers)
    errors = [str(c["error"]) for c in chunks if "error" in c]
    assert len(errors) == 1 and "sent nothing for 4 seconds" in errors[0]
    assert "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c.get("choices")).startswith("Okay")
    assert SECRET not in repr(chunks)

