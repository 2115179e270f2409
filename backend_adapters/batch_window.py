"""How long a token may wait to go out with the next ones: nothing while few chats stream, up to ~80 ms under load.

On Open WebUI's UI path every chunk a pipe yields costs a JSON round trip, a
socket.io event and bookkeeping in its middleware, and at a human-facing 30
tokens/s every token arrives alone, so coalescing what piles up never kicks in.
A reader cannot see 50–100 ms, so while many streams are live each stream holds
its pieces for a short window and sends them as one chunk. The window widens
with the number of live streams (none for a lone chat), and a batch goes out
early when the next piece, at this stream's pace, would miss the window anyway.
"""

from __future__ import annotations

FULL_WINDOW_AT = 8  # live streams at which the window reaches its maximum; one stream alone never waits


class LiveStreams:
    """How many streams this process is rendering right now (a gauge shared by all users, not request state)."""

    count = 0

    @classmethod
    def enter(cls) -> None:
        cls.count += 1

    @classmethod
    def leave(cls) -> None:
        cls.count = max(0, cls.count - 1)


def batch_window(max_window: float, live: int) -> float:
    """Seconds a batch may stay open with `live` streams: 0 for one, growing linearly to `max_window`."""
    if max_window <= 0 or live <= 1:
        return 0.0
    return max_window * min(1.0, (live - 1) / (FULL_WINDOW_AT - 1))


class Pace:
    """One stream's gap between pieces (smoothed), to see when waiting for the next one cannot pay."""

    def __init__(self) -> None:
        self.gap = 0.0
        self.last: float | None = None

    def saw(self, now: float) -> None:
        if self.last is not None:
            gap = now - self.last
            self.gap = gap if self.gap == 0.0 else 0.7 * self.gap + 0.3 * gap
        self.last = now

    def next_misses(self, now: float, deadline: float) -> bool:
        """Would the next piece, at this pace, arrive after the batch closes?"""
        return self.gap > 0.0 and now + self.gap > deadline
