"""Relay cost: one stream read directly, through Open WebUI's own connection, through the pipe, and the pipe alone.

(a) directly from the emulator, (b) through Open WebUI's own OpenAI connection,
(c) through the r1relay pipe in Open WebUI, (d) through the same built pipe
driven in this process without Open WebUI (our code alone): tokens/s, time to
first token, inter-token latency p50/p99, Open WebUI CPU seconds per 1,000
tokens. Once as fast as the socket allows, once paced at a fixed rate.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.common import (
    BACKEND_MODEL,
    CONNECTION_MODEL,
    PIPE_MODEL,
    EmulatorProcess,
    StreamResult,
    cpu_seconds,
    percentile,
    r1_script,
    read_stream,
)
from tests.support.openwebui import OpenWebUI
from tests.support.pipe_driver import chat_body, make_pipe


@dataclass
class RelayRow:
    path: str
    mode: str
    tokens: int
    tokens_per_s: float
    ttft_ms: float
    itl_p50_ms: float
    itl_p99_ms: float
    cpu_per_1k: float | None


def relay_row(path: str, mode: str, runs: list[StreamResult], cpu: float | None) -> RelayRow:
    rates = [r.tokens / (r.arrivals[-1] - r.arrivals[0]) if len(r.arrivals) > 1 else 0.0 for r in runs]
    tokens = sum(r.tokens for r in runs)
    gaps = [g for r in runs for g in r.gaps_ms]
    return RelayRow(
        path=path,
        mode=mode,
        tokens=runs[0].tokens,
        tokens_per_s=statistics.median(rates),
        ttft_ms=statistics.median((r.first_token or float("nan")) * 1000 for r in runs),
        itl_p50_ms=percentile(gaps, 50),
        itl_p99_ms=percentile(gaps, 99),
        cpu_per_1k=None if cpu is None else cpu / max(tokens, 1) * 1000,
    )


async def in_process_pipe_run(module: Any, base_url: str, body: dict) -> StreamResult:
    """(d): the built pipe driven in this process, as Open WebUI would drive it, minus Open WebUI."""
    pipe = make_pipe(module, BASE_URLS=base_url, MODELS=BACKEND_MODEL, SHOW_STATS=True)
    result = StreamResult()

    async def emit(event: dict) -> None:
        return None

    started = time.perf_counter()
    stream = await pipe.pipe(body=body, __user__={"valves": module.Pipe.UserValves()}, __event_emitter__=emit)
    async for chunk in stream:
        if "error" in chunk:
            result.errors.append(chunk["error"])
            continue
        delta = chunk["choices"][0]["delta"] if chunk.get("choices") else {}
        text = (delta.get("reasoning_content") or "") + (delta.get("content") or "")
        if text:
            now = time.perf_counter()
            result.first_token = result.first_token if result.first_token is not None else now - started
            result.arrived(now, text)
    result.seconds = time.perf_counter() - started
    return result


async def relay_cost(
    owui: OpenWebUI, emulator: EmulatorProcess, pipe_module: Any, words: int, reps: int, paced_rate: float, paced_words: int
) -> list[RelayRow]:
    rows: list[RelayRow] = []
    pid = owui._process.pid if owui._process else 0
    paths = {
        "(a) direct from the emulator": (f"{emulator.base_url}/chat/completions", "", BACKEND_MODEL, True),
        "(b) Open WebUI OpenAI connection": (f"{owui.url}/api/chat/completions", owui.token, CONNECTION_MODEL, True),
        "(c) r1relay pipe in Open WebUI": (f"{owui.url}/api/chat/completions", owui.token, PIPE_MODEL, True),
        "(d) r1relay pipe, no Open WebUI": ("", "", PIPE_MODEL, False),
    }
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        for mode, script_words, rate in (("max", words, 0.0), (f"{paced_rate:g} tok/s", paced_words, paced_rate)):
            emulator.set(script=r1_script(script_words), token_rate=rate)
            for path, (url, token, model, through_http) in paths.items():
                body = {"model": model, "messages": [{"role": "user", "content": "bench"}], "stream": True,
                        "stream_options": {"include_usage": True}}
                runs: list[StreamResult] = []
                warm = 1 if mode == "max" else 0
                cpu_total = 0.0
                for rep in range(warm + reps):
                    # Open WebUI's CPU for (b) and (c); for (d) this process's, which then runs only our pipe
                    cpu_before = cpu_seconds(pid) if through_http else time.process_time()
                    if through_http:
                        run = await read_stream(session, url, body, token)
                    else:
                        run = await in_process_pipe_run(pipe_module, emulator.base_url, chat_body(model, "bench"))
                    if run.errors:
                        raise RuntimeError(f"{path}: {run.errors[0]}")
                    if rep >= warm:
                        cpu_total += (cpu_seconds(pid) if through_http else time.process_time()) - cpu_before
                        runs.append(run)
                cpu = None if path.startswith("(a)") else cpu_total
                rows.append(relay_row(path, mode, runs, cpu))
                print_relay_row(rows[-1])
    return rows


def print_relay_row(row: RelayRow) -> None:
    cpu = f"{row.cpu_per_1k:.3f}" if row.cpu_per_1k is not None else "–"
    print(
        f"  {row.path:<34} {row.mode:<11} {row.tokens:>6} {row.tokens_per_s:>10.0f} {row.ttft_ms:>9.1f} "
        f"{row.itl_p50_ms:>9.3f} {row.itl_p99_ms:>9.3f} {cpu:>9}",
        flush=True,
    )


async def profile_pipe(pipe_module: Any, emulator: EmulatorProcess, words: int) -> str:
    emulator.set(script=r1_script(words), token_rate=0.0)
    profiler = cProfile.Profile()
    profiler.enable()
    await in_process_pipe_run(pipe_module, emulator.base_url, chat_body(PIPE_MODEL, "bench"))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(18)
    return out.getvalue()
