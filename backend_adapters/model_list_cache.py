"""The model picker never waits on a backend: the last list is served at once, refreshed behind it.

Open WebUI asks every pipe for its models on each model-list view, one pipe
after the other; a backend that accepts the connection and never answers used
to hold the whole list for the fetch's timeout (5 s for vLLM, 10 s for
KTransformers) on every refresh. Here a stale list is returned immediately
and one background task per deployment fetches the new one; only a list never
fetched before waits, and at most FIRST_LIST_WAIT seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable

from backend_adapters.errors import BackendError

FIRST_LIST_WAIT = 2.0  # seconds a never-fetched list may hold the model picker
MODELS_TTL = 60.0  # seconds a list is fresh; older lists are still served, and refreshed behind

# Caches, not request state: the last good list per deployment, and the fetch in flight for it.
_lists: dict[Hashable, tuple[float, list[str]]] = {}
_refreshing: dict[Hashable, asyncio.Task] = {}


async def _fetch_and_keep(key: Hashable, load: Callable[[], Awaitable[list[str]]]) -> list[str]:
    ids = await load()
    _lists[key] = (time.monotonic(), ids)
    return ids


def _refresh(key: Hashable, load: Callable[[], Awaitable[list[str]]]) -> asyncio.Task:
    """The fetch in flight for `key`, started if none is (a task of a closed event loop counts as none)."""
    task = _refreshing.get(key)
    if task is None or task.done() or task.get_loop().is_closed():
        task = _refreshing[key] = asyncio.get_running_loop().create_task(_fetch_and_keep(key, load))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failed refresh is not an unhandled error
    return task


async def cached_model_list(key: Hashable, load: Callable[[], Awaitable[list[str]]], where: str) -> list[str]:
    """The model ids for `key`: cached at once (refreshed behind when stale), or fetched, waiting ≤ FIRST_LIST_WAIT."""
    cached = _lists.get(key)
    if cached is not None:
        if time.monotonic() - cached[0] >= MODELS_TTL:
            _refresh(key, load)
        return cached[1]
    task = _refresh(key, load)
    done, _ = await asyncio.wait({task}, timeout=FIRST_LIST_WAIT)
    if not done:
        raise BackendError(
            f"The backend at {where} has not sent its model list yet (asked {FIRST_LIST_WAIT:g} s ago); "
            "its models appear once it answers."
        )
    return task.result()
