"""Servers remembered for a while by URL: a dead replica, a server that refuses tools.

A failure that will repeat for every chat (a connect timeout, a 400 to `tools`)
is paid once, then skipped until the memory runs out, so a restarted or fixed
server is tried again on its own.
"""

from __future__ import annotations

import time


class UrlMemory:
    """URLs remembered for `seconds` after the last `remember`. A cache, not request state."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.until: dict[str, float] = {}

    def remember(self, url: str) -> None:
        self.until[url] = time.monotonic() + self.seconds

    def forget(self, url: str) -> None:
        self.until.pop(url, None)

    def __contains__(self, url: object) -> bool:
        return self.until.get(url, 0.0) > time.monotonic()  # type: ignore[arg-type]
