"""The status line under a message, kept cheap: on a saved chat each status Open WebUI gets is a database write.

So a status goes out only when its text changes; progress notes ("Connecting…",
"Queued: 2 ahead of you") only once a wait has lasted STATUS_GRACE seconds
without a token (a wait that short is not worth a write, nor visible) and then
at most once per STATUS_GRACE with the latest text; and the hidden status that
clears the line only if something was shown on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

Emitter = Callable[[dict], Awaitable[Any]]

STATUS_GRACE = 1.0  # seconds a progress note waits before it is worth showing


class StatusLine:
    """One message's status line (per request: made by the renderer for each stream)."""

    def __init__(self, emit: Emitter | None) -> None:
        self.emit = emit
        self.last: tuple[str, bool, bool] | None = None
        self._pending: asyncio.Task | None = None
        self._note = ""  # the latest progress note, shown when the pending task wakes

    async def show(self, description: str, done: bool = False, hidden: bool = False) -> None:
        """Send now, unless it is what the line already says (or a hide of a line never shown)."""
        self.drop_pending()
        if self.emit is None or (description, done, hidden) == self.last or (hidden and self.last is None):
            return
        self.last = (description, done, hidden)
        await self.emit({"type": "status", "data": {"description": description, "done": done, "hidden": hidden}})

    def soon(self, description: str) -> None:
        """Show a progress note once it has lasted STATUS_GRACE seconds, then its updates at most that often."""
        self._note = description
        if self.emit is None or self._pending is not None:
            return  # the pending task shows the latest note when it wakes

        async def later() -> None:
            await asyncio.sleep(STATUS_GRACE)
            self._pending = None
            await self.show(self._note)

        self._pending = asyncio.get_running_loop().create_task(later())

    def drop_pending(self) -> None:
        task, self._pending = self._pending, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def close(self) -> None:
        """Cancel a note not yet shown (the stream ended or was stopped)."""
        task, self._pending = self._pending, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
