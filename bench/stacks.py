"""The Open WebUI deployments the bench measures: one worker on SQLite, or two replicas on PostgreSQL + Redis.

Each gets the built r1relay vLLM pipe and, for comparison, Open WebUI's own
OpenAI connection, both pointed at the same emulator; background tasks off
(one message, one backend call); one user per simulated person.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.common import BACKEND_MODEL, CONNECTION_MODEL, PIPE_ID, PIPE_MODEL, EmulatorProcess
from bench.services import Replica, ScratchPostgres, ScratchRedis
from tests.support.openwebui import OpenWebUI

# Non-admin users see models nobody has set access rights on; no title generation for the bench's chats.
BENCH_ENV = {"BYPASS_MODEL_ACCESS_CONTROL": "true", "ENABLE_TITLE_GENERATION": "false"}


@dataclass
class Stack:
    label: str
    replicas: list[OpenWebUI]
    users: list[str] = field(default_factory=list)  # bearer tokens, one per simulated person
    redis_url: str = ""  # the shared Redis, where the pipe's MAX_CONCURRENCY queue lives


def register(owui: OpenWebUI, built: Path, emulator: EmulatorProcess, pipe_valves: dict | None = None) -> None:
    owui.register_function(PIPE_ID, "r1relay vLLM", (built / f"{PIPE_ID}.py").read_text(), "bench", type_hint="pipe")
    owui.set_valves(PIPE_ID, {"BASE_URLS": emulator.base_url, "MODELS": BACKEND_MODEL, **(pipe_valves or {})})
    owui.add_openai_connection(emulator.base_url)
    owui.set_tasks(enabled=False)
    ids = {m["id"] for m in owui.models()}
    missing = {PIPE_MODEL, CONNECTION_MODEL} - ids
    if missing:
        raise RuntimeError(f"models missing in Open WebUI: {missing} (have {sorted(ids)})")


async def add_users(owui: OpenWebUI, count: int, have: list[str]) -> list[str]:
    """`count` users in all (admin-made, as Admin > Users > Add does); returns their tokens."""
    limit = asyncio.Semaphore(4)

    async def one(session: aiohttp.ClientSession, k: int) -> str:
        form = {"name": f"Bench {k}", "email": f"bench{k}-{secrets.token_hex(3)}@example.com",
                "password": secrets.token_urlsafe(12), "role": "user"}
        async with limit, session.post(f"{owui.url}/api/v1/auths/add", json=form,
                                       headers={"Authorization": f"Bearer {owui.token}"}) as response:
            response.raise_for_status()
            return str((await response.json())["token"])

    async with aiohttp.ClientSession() as session:
        return have + list(await asyncio.gather(*(one(session, k) for k in range(len(have), count))))


@contextlib.contextmanager
def sqlite_stack(built: Path, emulator: EmulatorProcess, pipe_valves: dict | None = None,
                 name: str = "openwebui-sqlite") -> Iterator[Stack]:
    owui = OpenWebUI(built / name, env=BENCH_ENV)  # a fresh data directory per stack: its own admin, its own chats
    try:
        owui.start()
        register(owui, built, emulator, pipe_valves)
        yield Stack("SQLite, 1 worker", [owui])
    finally:
        owui.stop()


@contextlib.contextmanager
def production_stack(
    built: Path, emulator: EmulatorProcess, max_concurrency: int, pipe_valves: dict | None = None
) -> Iterator[Stack]:
    """PostgreSQL + Redis + two replicas; the pipe's MAX_CONCURRENCY queue lives in the shared Redis."""
    postgres, redis = ScratchPostgres(), ScratchRedis()
    replicas: list[OpenWebUI] = []
    try:
        postgres.start()
        redis.start()
        env = {**BENCH_ENV, "DATABASE_URL": postgres.url, "REDIS_URL": redis.url, "WEBSOCKET_MANAGER": "redis",
               "ENABLE_WEBSOCKET_SUPPORT": "true", "DATABASE_POOL_SIZE": "20", "DATABASE_POOL_MAX_OVERFLOW": "30"}
        first = OpenWebUI(built / "openwebui-pg-1", env=env)
        replicas.append(first)
        first.start()  # alone first: it creates the schema
        register(first, built, emulator, {"MAX_CONCURRENCY": max_concurrency, **(pipe_valves or {})})
        second = Replica(first, built / "openwebui-pg-2", env=env)
        replicas.append(second)
        second.start()
        yield Stack("PostgreSQL + Redis, 2 replicas", replicas, redis_url=redis.url)
    finally:
        for replica in replicas:
            replica.stop()
        redis.stop()
        postgres.stop()
