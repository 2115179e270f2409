"""httpx's API on aiohttp's sockets: a token read costs about 35 µs instead of httpx's own 100 µs.

On Open WebUI's UI path every token is its own network read inside Open
WebUI's process, so the read is most of what a pipe costs per token
(bench/pipe_read_cost.py). The openai SDK and our httpx-based adapters keep
their request, auth, error and timeout handling; only the socket work moves to
aiohttp, which Open WebUI ships (its own connection uses it). Hand-written
because `httpx-aiohttp`, the SDK's aiohttp extra, is not in Open WebUI's
environment. Exceptions come out as httpx's, so the SDK and errors.py read them
as before; a response closed before its end closes its connection, which is
what cancels the backend's request when a user presses Stop. Inside a pipe's
stream, reads are held for the batching window (read_pacing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx

from backend_adapters.read_pacing import READ_PACE, ReadPace

# Most specific first: the first match wins.
_BEFORE_RESPONSE: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.TransportError),
    (TimeoutError, httpx.TimeoutException),
)
_IN_BODY: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientError, httpx.ReadError),
    (TimeoutError, httpx.ReadTimeout),
)


@contextlib.contextmanager
def _as_httpx(table: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...],
              request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except (TimeoutError, aiohttp.ClientError) as exc:
        for theirs, ours in table:
            if isinstance(exc, theirs):
                raise ours(str(exc) or type(exc).__name__, request=request) from exc
        raise


def _close_quietly(connector: aiohttp.BaseConnector) -> None:
    # TCPConnector.close is a coroutine and no loop may be running here; _close is its synchronous part.
    with contextlib.suppress(Exception):
        connector._close()


async def _joining(content: aiohttp.StreamReader, pace: ReadPace, arrived: float) -> bytes:
    """What joins a chunk while its read is held for the stream's window (aiohttp buffers it and wakes no coroutine)."""
    hold = pace.hold(arrived)
    if hold <= 0 or content.is_eof():
        return b""
    # TimeoutError: the window closed. A dropped connection ends the hold too; it surfaces at the next read,
    # after what arrived before it.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(hold):
            await content.wait_eof()
    more = content.read_nowait() if content.exception() is None else b""
    pace.held(bool(more))
    return more


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        pace = READ_PACE.get()
        loop = asyncio.get_running_loop()
        with _as_httpx(_IN_BODY, self._request):
            while chunk := await content.readany():
                if pace is not None:
                    chunk += await _joining(content, pace, loop.time())
                yield chunk

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # read to the end: the connection goes back to the pool
        else:
            self._response.close()  # cut short (Stop, an error): drop the connection, which ends the backend's work


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session per transport, opened on first use (it belongs to the event loop that opens it)."""

    def __init__(self, verify: bool = True) -> None:
        self._ssl: ssl.SSLContext | bool = httpx.create_ssl_context() if verify else False  # httpx's CAs: certifi, SSL_CERT_FILE
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # limit=0: the pipe's MAX_CONCURRENCY, not a pool size, decides how many streams run at once.
            connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)
            # Cached clients are never closed by hand: close the sockets when the transport goes (or at exit),
            # so a dropped cache or a reloaded function leaves no "Unclosed client session" error in the log.
            weakref.finalize(self, _close_quietly, connector)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in (b"host", b"transfer-encoding")]  # as spelled: some hand-written servers care
        with _as_httpx(_BEFORE_RESPONSE, request):
            response = await self._session_now().request(
                request.method, str(request.url), headers=headers, data=body or None, allow_redirects=False,
                compress=None, timeout=aiohttp.ClientTimeout(
                    total=None, connect=timeout.get("pool"), sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx.Response(
            response.status, headers=response.raw_headers, stream=_Body(response, request), request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
