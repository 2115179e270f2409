"""Lets a stream's batching window pace its socket reads, so that one read carries every token of a batch.

On Open WebUI's UI path a pipe pays most per network read, not per byte:
waking the reader and walking each chunk up through the HTTP client, SSE
decoding and our event layers costs about the same for one token as for ten.
Under load the coalescer (coalesce.py) already sends a stream's tokens in
batches of one window; holding the read for that window, while aiohttp buffers
what arrives, builds the same batches from one read each. The end of the body
ends a hold at once, so the last token never waits for the window.

The coalescer owns a ReadPace and hands it to its reader task through a
context variable, because the transport sits layers below it, behind the
openai SDK; a transport that holds its reads sets `honoured`, and the
coalescer then stops holding batches itself.
"""

from __future__ import annotations

from contextvars import ContextVar

from backend_adapters.batch_window import Pace


class ReadPace:
    """One stream's read pacing: the window comes from the coalescer, the stream's own pace decides whether to hold."""

    def __init__(self, window: float = 0.0) -> None:
        self.window = window  # s a read may wait for more after data arrived; 0: read as data comes
        self.honoured = False  # a transport holds its reads by this pace
        self._gaps = Pace()  # the gap between arrivals, measured while reads are not held
        self._held = False

    def hold(self, now: float) -> float:
        """Data arrived at `now`: how long to leave it in the buffer for more to join it."""
        self.honoured = True
        if not self._held:
            self._gaps.saw(now)  # the read before was not held: this interval is a real gap
        else:
            self._gaps.last = now
        gap = self._gaps.gap
        self._held = self.window > 0 and not (gap and gap >= self.window)  # nothing would join within the window
        return self.window if self._held else 0.0

    def held(self, got_more: bool) -> None:
        """After a hold: when nothing joined, this stream is slower than the window, so read its next piece at once."""
        if not got_more:
            self._gaps.gap = max(self._gaps.gap, self.window)
            self._held = False


READ_PACE: ContextVar[ReadPace | None] = ContextVar("r1relay_read_pace", default=None)
