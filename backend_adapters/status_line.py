"""The status line under a message, kept cheap: on a saved chat each status Open WebUI gets is a database write.

So a status goes out only when its text changes; progress notes ("Connecting…",
"Queued: 2 ahead of you") at most once per STATUS_GRACE seconds (a queue
position that changes every few hundred ms is not worth a write each time);
and the hidden status that clears the line only if something was shown on it.
Every status is sent from the stream itself, in order with its chunks: a
second task writing to the same chat while Open WebUI saves it is avoided.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

Emitter = Callable[[dict], Awaitable[Any]]

STATUS_GRACE = 1.0  # seconds between two progress notes


class StatusLine:
    """One message's status line (per request: made by the renderer for each stream)."""

    def __init__(self, emit: Emitter | None) -> None:
        self.emit = emit
        self.last: tuple[str, bool, bool] | None = None
        self._progress_at: float | None = None

    async def show(self, description: str, done: bool = False, hidden: bool = False) -> None:
        """Send now, unless it is what the line already says (or a hide of a line never shown)."""
        if self.emit is None or (description, done, hidden) == self.last or (hidden and self.last is None):
            return
        self.last = (description, done, hidden)
        await self.emit({"type": "status", "data": {"description": description, "done": done, "hidden": hidden}})

    async def progress(self, description: str) -> None:
        """A progress note: sent unless another went out less than STATUS_GRACE seconds ago."""
        now = time.monotonic()
        if self._progress_at is not None and now - self._progress_at < STATUS_GRACE:
            return
        self._progress_at = now
        await self.show(description)
