"""Waiting in tests for what a server in another thread or process reports: polled and bounded, never a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(done: Callable[[], object], seconds: float = 4.0, step: float = 0.02) -> bool:
    """Poll `done` until it is true or `seconds` have passed; whether it ended true."""
    for _ in range(max(1, round(seconds / step))):
        if done():
            return True
        await asyncio.sleep(step)
    return bool(done())
