"""Runs an aiohttp app on a free loopback port in a thread of its own.

A separate thread and loop keep the emulator independent of the loop under
test: a pipe that blocked its loop would then show up as a stalled client,
not as a stalled server.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Protocol, Self, TypeVar

from aiohttp import web


class ServesApp(Protocol):
    def app(self) -> web.Application: ...


S = TypeVar("S", bound=ServesApp)


class ThreadedServer:
    def __init__(self, make_app: Callable[[], web.Application], ssl_context: ssl.SSLContext | None = None) -> None:
        self._make_app = make_app
        self._ssl_context = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._make_app(), shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def wait_or_disconnect(request: web.Request, seconds: float) -> bool:
    """Sleep, but return False as soon as the client has gone (polled: aiohttp does not cancel handlers)."""
    step = 0.02
    waited = 0.0
    while waited < seconds:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        await asyncio.sleep(min(step, seconds - waited))
        waited += step
    transport = request.transport
    return transport is not None and not transport.is_closing()


def served(state: S) -> Iterator[tuple[S, str]]:
    """A fixture's body: `state.app` served on a free port for the test, yielding the state and the server's URL."""
    with ThreadedServer(state.app) as server:
        yield state, server.url


class Emulator:
    """Start, stop and address of an emulator; subclasses build their aiohttp app in `_app()`."""

    _server: ThreadedServer | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = ThreadedServer(self._app).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url
