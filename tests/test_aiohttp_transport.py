"""The aiohttp transport under httpx: what the SDK and errors.py rely on comes out as it did with httpx's own.

Stop must still cancel the backend's work (a response closed early drops its
connection), a finished response must go back to the pool, headers keep their
spelling, and each fault raises the httpx exception httpx would have raised.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp import web

from backend_adapters.aiohttp_transport import AiohttpTransport
from backend_adapters.errors import ErrorContext, describe
from tests.emulators.server import ThreadedServer, served, wait_or_disconnect
from tests.support.ports import free_port


class Peer:
    """A server that streams, stalls, cuts a body short and records what it saw."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.peers: list[object] = []
        self.client_left = asyncio.Event()
        self.left: list[bool] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/stream", self.stream)
        app.router.add_get("/small", self.small)
        app.router.add_get("/stall", self.stall)
        app.router.add_get("/cut", self.cut)
        return app

    async def small(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(text="ok")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n in range(200):
            await response.write(f"data: {n}\n\n".encode())
            if not await wait_or_disconnect(request, 0.02):
                self.left.append(True)
                return response
        self.left.append(False)
        return response

    async def stall(self, request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    async def cut(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.close()
        return response


@pytest.fixture
def peer() -> Iterator[tuple[Peer, str]]:
    yield from served(Peer())


def client(read: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AiohttpTransport(), timeout=httpx.Timeout(read, connect=2.0))


async def test_closing_a_stream_early_drops_the_connection_so_the_server_stops(peer: tuple[Peer, str]) -> None:
    state, url = peer
    async with client() as http, http.stream("POST", f"{url}/stream", json={}) as response:
        async for chunk in response.aiter_bytes():
            assert chunk.startswith(b"data: 0")
            break
    for _ in range(100):
        if state.left:
            break
        await asyncio.sleep(0.05)
    assert state.left == [True]


async def test_finished_responses_reuse_one_connection_and_headers_keep_their_spelling(peer: tuple[Peer, str]) -> None:
    state, url = peer
    async with client() as http:
        for _ in range(3):
            response = await http.get(f"{url}/small", headers={"X-API-Key": "k-123"})
            assert response.text == "ok"
    assert len(set(state.peers)) == 1
    assert all(h.get("X-API-Key") == "k-123" for h in state.headers)
    assert "X-API-Key" in state.headers[0]  # as spelled, not lower-cased


async def test_faults_raise_the_httpx_exceptions_httpx_would(peer: tuple[Peer, str]) -> None:
    _, url = peer
    async with client(read=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{url}/stall")
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"{url}/cut")
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    """A server with a self-signed certificate, as many home setups put in front of vLLM."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def app() -> web.Application:
        application = web.Application()
        application.router.add_get("/v1/models", lambda r: web.json_response({"data": [{"id": "m"}]}))
        return application

    server = ThreadedServer(app, ssl_context=context)
    with server:
        yield f"https://127.0.0.1:{server.port}/v1"


async def test_an_untrusted_certificate_is_one_sentence_and_verify_off_reaches_the_server(tls_server: str) -> None:
    strict = openai.AsyncOpenAI(base_url=tls_server, api_key="k", max_retries=0,
                                http_client=httpx.AsyncClient(transport=AiohttpTransport(verify=True)))
    with pytest.raises(openai.APIConnectionError) as caught:
        await strict.get("/models", cast_to=httpx.Response)
    assert "TLS certificate this server does not trust" in describe(caught.value, ErrorContext(url=tls_server))
    relaxed = openai.AsyncOpenAI(base_url=tls_server, api_key="k", max_retries=0,
                                 http_client=httpx.AsyncClient(transport=AiohttpTransport(verify=False)))
    assert (await relaxed.get("/models", cast_to=httpx.Response)).json()["data"][0]["id"] == "m"
