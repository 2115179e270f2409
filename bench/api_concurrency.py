"""API-path concurrency: N streams at 20 tokens/s through `POST /api/chat/completions` with no chat.

Every stream is checked byte-exact and in order, Open WebUI's /health latency
is measured from a separate process while they run; the same load goes through
the blocking pipe (bench/blocking_pipe.py, the anti-pattern).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from bench.common import (
    BLOCKING_MODEL,
    EmulatorProcess,
    HealthProbe,
    cpu_seconds,
    expected_split,
    percentile,
    r1_script,
    read_stream,
)
from tests.support.openwebui import OpenWebUI

STREAM_RATE = 20.0  # tokens/s per stream


@dataclass
class LoadRow:
    pipe: str
    streams: int
    exact: int  # streams whose thinking and answer arrived byte-exact, in order
    lost_tokens: int
    errors: int
    unfinished: int
    seconds: float
    tokens_per_s: float
    health_p50_ms: float
    health_p99_ms: float
    health_max_ms: float
    steady_p99_ms: float  # /health p99 once every stream has its first token, until the first one ends
    health_failures: int
    cpu_percent: float


async def concurrency_run(
    owui: OpenWebUI, emulator: EmulatorProcess, label: str, model: str, streams: int, words: int, deadline: float,
    last: bool = False,
) -> LoadRow:
    script = r1_script(words)
    emulator.set(script=script, token_rate=STREAM_RATE)
    pid = owui._process.pid if owui._process else 0
    probe = HealthProbe(owui.url)
    await asyncio.sleep(0.5)  # a few idle probes first
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        tasks = [
            asyncio.create_task(
                read_stream(session, f"{owui.url}/api/chat/completions",
                            {"model": model, "messages": [{"role": "user", "content": f"s{k:03d}"}], "stream": True},
                            owui.token)
            )
            for k in range(streams)
        ]
        done, pending = await asyncio.wait(tasks, timeout=deadline)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    health = probe.finish()
    exact = lost = errors = 0
    received = 0
    for k, task in enumerate(tasks):
        if task not in done:
            continue
        result = task.result()
        received += result.tokens
        errors += bool(result.errors)
        want_reasoning, want_content = expected_split(f"s{k:03d}", script)
        got_reasoning, got_content = "".join(result.reasoning), "".join(result.content)
        if model == BLOCKING_MODEL:  # the blocking pipe passes leading whitespace through
            got_reasoning, got_content = got_reasoning.lstrip(), got_content.lstrip()
        if (got_reasoning, got_content) == (want_reasoning, want_content):
            exact += 1
        else:
            lost += max(0, len(want_reasoning + want_content) - len(got_reasoning + got_content))
    latencies = health["latencies_ms"]
    finished = [t.result() for t in tasks if t in done]
    steady = float("nan")
    if finished and all(r.first_token_at for r in finished) and len(finished) == streams:
        begin, end = max(r.first_token_at for r in finished), min(r.ended_at for r in finished)
        steady = percentile([ms for ms, at in zip(latencies, health["sent_at"], strict=False) if begin <= at <= end], 99)
    row = LoadRow(
        pipe=label,
        streams=streams,
        exact=exact,
        lost_tokens=lost,
        errors=errors,
        unfinished=len(pending),
        seconds=seconds,
        tokens_per_s=received / seconds,
        health_p50_ms=percentile(latencies, 50),
        health_p99_ms=percentile(latencies, 99),
        health_max_ms=max(latencies) if latencies else float("nan"),
        steady_p99_ms=steady,
        health_failures=int(health["failures"]),
        cpu_percent=cpu / seconds * 100,
    )
    print(
        f"  {row.pipe:<22} {row.streams:>7} {row.exact:>5}/{row.streams:<4} {row.lost_tokens:>6} {row.errors:>6} "
        f"{row.unfinished:>6} {row.seconds:>7.1f} {row.tokens_per_s:>8.0f} {row.health_p50_ms:>8.1f} "
        f"{row.health_p99_ms:>8.1f} {row.health_max_ms:>8.1f} {row.steady_p99_ms:>8.1f} {row.cpu_percent:>6.0f}",
        flush=True,
    )
    if last:  # Open WebUI is stopped next: no need to wait for it to work off what the blocking pipe left queued
        return row
    if model == BLOCKING_MODEL:
        # Requests the blocking pipe has not served yet would each freeze Open WebUI for a whole stream once
        # their turn comes: fail them fast and cut the open ones, so the next run starts on a free server.
        emulator.set(fault="status", fault_status=503, drop=True)
        await settle(owui, 120)
        emulator.set(fault="none", drop=True)
    await settle(owui)
    return row


async def settle(owui: OpenWebUI, seconds: float = 60) -> None:
    """Wait (bounded) until Open WebUI answers /health quickly again, so runs do not overlap."""
    async with aiohttp.ClientSession() as session:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with session.get(f"{owui.url}/health") as response:
                    await response.read()
            except aiohttp.ClientError:
                pass
            if time.perf_counter() - started < 0.02:
                return
            await asyncio.sleep(0.2)
