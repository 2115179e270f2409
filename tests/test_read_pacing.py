"""Paced reads: under load one socket read carries a window's tokens, and nothing is lost, late past the body's end, or left running.

The transport holds a read for the coalescer's window while aiohttp buffers
what arrives. These tests open the window very wide (an hour) where they prove
something ends a hold at once, so a hold that waited for the window would hang
the test (bounded by `asyncio.wait_for`) instead of passing.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from backend_adapters.aiohttp_transport import AiohttpTransport
from backend_adapters.read_pacing import READ_PACE, ReadPace
from tests.emulators.server import served, wait_or_disconnect
from tests.emulators.vllm import VLLMEmulator
from tests.support.pipe_driver import chat_body, make_pipe, run_pipe
from tests.support.waiting import until

HOUR = 3600.0
BOUND = 10.0  # seconds a step may take before the test fails instead of hanging
PIECES = 40


class Peer:
    def __init__(self) -> None:
        self.left: list[bool] = []
        self.sent = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get(f"/{name}", getattr(self, name)) for name in ("steady", "one", "cut", "endless")])
        return app

    async def _open(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        return response

    async def steady(self, request: web.Request) -> web.StreamResponse:
        response = await self._open(request)
        for n in range(PIECES):
            await response.write(f"data: {n}\n\n".encode())
            await asyncio.sleep(0.005)
        return response

    async def one(self, request: web.Request) -> web.StreamResponse:
        response = await self._open(request)
        await response.write(b"data: last\n\n")
        return response  # the body ends right after the piece

    async def cut(self, request: web.Request) -> web.StreamResponse:
        response = await self._open(request)
        await response.write(b"data: kept\n\n")
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()  # mid-stream drop: no end of the chunked body
        return response

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = await self._open(request)
        while True:
            await response.write(b"data: more\n\n")
            self.sent += 1
            if not await wait_or_disconnect(request, 0.02):
                self.left.append(True)
                return response


@pytest.fixture
def peer() -> Iterator[tuple[Peer, str]]:
    yield from served(Peer())


async def read_all(url: str, pace: ReadPace | None, into: list[bytes] | None = None) -> list[bytes]:
    """The body's reads as the pipe's reader task makes them: with `pace` in its context."""
    chunks = into if into is not None else []

    async def reader() -> None:
        async with httpx.AsyncClient(transport=AiohttpTransport()) as http, http.stream("GET", url) as response:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)

    context = contextvars.copy_context()
    context.run(READ_PACE.set, pace)
    await asyncio.create_task(reader(), context=context)
    return chunks


async def test_a_window_turns_many_reads_into_few_and_keeps_every_byte_in_order(peer: tuple[Peer, str]) -> None:
    _, url = peer
    pace = ReadPace(window=0.1)  # 20 pieces' worth at this server's pace
    chunks = await asyncio.wait_for(read_all(f"{url}/steady", pace), BOUND)
    assert b"".join(chunks) == b"".join(f"data: {n}\n\n".encode() for n in range(PIECES))
    assert len(chunks) <= PIECES // 4
    assert pace.honoured


async def test_without_a_pace_reads_are_not_held(peer: tuple[Peer, str]) -> None:
    _, url = peer
    chunks = await asyncio.wait_for(read_all(f"{url}/steady", None), BOUND)
    assert b"".join(chunks) == b"".join(f"data: {n}\n\n".encode() for n in range(PIECES))
    assert len(chunks) > PIECES // 4  # each piece came on its own, give or take a few that met in the socket


async def test_the_end_of_the_body_ends_a_hold_at_once(peer: tuple[Peer, str]) -> None:
    _, url = peer
    chunks = await asyncio.wait_for(read_all(f"{url}/one", ReadPace(window=HOUR)), BOUND)
    assert b"".join(chunks) == b"data: last\n\n"


async def test_a_connection_dropped_during_a_hold_keeps_what_arrived_then_fails(peer: tuple[Peer, str]) -> None:
    _, url = peer
    chunks: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError):
        await asyncio.wait_for(read_all(f"{url}/cut", ReadPace(window=HOUR), chunks), BOUND)
    assert b"".join(chunks) == b"data: kept\n\n"


async def test_stop_during_a_hold_closes_the_connection(peer: tuple[Peer, str]) -> None:
    state, url = peer
    task = asyncio.create_task(read_all(f"{url}/endless", ReadPace(window=HOUR)))
    assert await until(lambda: state.sent >= 3)  # the read is being held: the server keeps writing into the buffer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await until(lambda: state.left)
    assert state.left == [True]


def test_a_stream_slower_than_the_window_is_read_at_once_and_held_again_once_it_speeds_up() -> None:
    pace = ReadPace(window=0.08)
    assert pace.hold(0.0) == 0.08  # pace unknown: hold
    pace.held(got_more=False)  # nothing joined within the window: slower than it
    assert pace.hold(0.5) == 0.0
    assert pace.hold(1.0) == 0.0  # 0.5 s apart: still slower
    for step in range(1, 8):  # then 30 tokens/s
        hold = pace.hold(1.0 + step / 30)
    assert hold == 0.08
    assert ReadPace(window=0.0).hold(0.0) == 0.0  # no window (one live stream): never held


async def test_the_pipe_under_load_reads_a_window_at_a_time_and_the_text_is_exact(
    vllm, vllm_emulator: VLLMEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm.LiveStreams, "count", vllm.FULL_WINDOW_AT)  # as many other chats as open the window fully
    holds: list[float] = []
    hold = vllm.ReadPace.hold

    def spy(self: ReadPace, now: float) -> float:
        holds.append(hold(self, now))
        return holds[-1]

    monkeypatch.setattr(vllm.ReadPace, "hold", spy)
    vllm_emulator.token_delay = 0.004
    vllm_emulator.script = "<think>" + "why " * 40 + "</think>" + "so " * 40
    pipe = make_pipe(vllm, BASE_URLS=vllm_emulator.base_url, BATCH_WINDOW_MS=100)
    run = await asyncio.wait_for(run_pipe(pipe, vllm, chat_body("r1relay_vllm.deepseek-ai/DeepSeek-R1")), BOUND)
    assert run.reasoning == "why " * 40
    assert run.content == "so " * 40
    assert any(holds)  # the transport held its reads: the window reached it through the SDK
    text_chunks = [c for c in run.chunks if c.get("choices") and c["choices"][0]["delta"]]
    assert len(text_chunks) <= 80 // 4

