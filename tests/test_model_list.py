"""The model picker never waits on a backend: a hung server, a stale list refreshed behind, a first list."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.emulators.server import ThreadedServer
from tests.support.built import load_function
from tests.support.pipe_driver import make_pipe


class SilentServer:
    """Accepts TCP connections and never answers: a backend whose process is stuck."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.socket.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.socket.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def open_unanswered(self) -> int:
        """Connections accepted and still open from the client's side (nothing was ever sent on them)."""
        still = 0
        for conn in self.accepted:
            conn.setblocking(False)
            try:
                still += conn.recv(65536, socket.MSG_PEEK) != b""
            except BlockingIOError:
                still += 1
            except OSError:
                pass
        return still

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self.accepted:
            conn.close()
        self.socket.close()


class HeldModels:
    """`/v1/models` that answers at once, or holds each request until released (bounded)."""

    def __init__(self) -> None:
        self.models = ["first-model"]
        self.hold = False
        self.started = 0
        self.answered = 0

    async def models_route(self, request: web.Request) -> web.Response:
        self.started += 1
        for _ in range(3000):  # at most 30 s
            if not self.hold:
                break
            await asyncio.sleep(0.01)
        self.answered += 1
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models_route)
        return app


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["r1relay_vllm", "r1relay_ktransformers"])
def module(request: pytest.FixtureRequest, built_dir: Path):
    return load_function(built_dir / f"{request.param}.py")


async def test_a_first_list_from_a_hung_backend_shows_unavailable_while_the_backend_still_holds_it(
    module, silent: SilentServer
) -> None:
    pipe = make_pipe(module, BASE_URLS=silent.url, CONNECT_TIMEOUT=30)
    (entry,) = await pipe.pipes()
    assert entry["id"] == "unavailable"
    assert "has not sent its model list yet" in entry["name"] and "Set MODELS" in entry["name"]
    # The list came back while the backend still held the request open: it did not wait for the fetch's timeout.
    assert silent.open_unanswered() >= 1


async def test_a_stale_list_is_served_at_once_and_refreshed_behind(
    module, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = HeldModels()
    with ThreadedServer(backend.app) as server:
        pipe = make_pipe(module, BASE_URLS=server.url)
        assert [m["id"] for m in await pipe.pipes()] == ["first-model"]
        assert backend.answered == 1

        monkeypatch.setattr(module, "MODELS_TTL", 0.0)  # every list is stale from now on
        backend.models, backend.hold = ["second-model"], True
        assert [m["id"] for m in await pipe.pipes()] == ["first-model"]  # served from the cache…
        for _ in range(500):  # …while the refresh it started is held by the backend
            if backend.started == 2:
                break
            await asyncio.sleep(0.01)
        assert (backend.started, backend.answered) == (2, 1)
        assert [m["id"] for m in await pipe.pipes()] == ["first-model"]
        assert backend.started == 2  # one refresh in flight per deployment, not one per model-list view

        backend.hold = False
        listed: list[str] = []
        for _ in range(500):  # bounded: the refreshed list shows once the backend has answered
            listed = [m["id"] for m in await pipe.pipes()]
            if listed == ["second-model"]:
                break
            await asyncio.sleep(0.01)
        assert listed == ["second-model"]
