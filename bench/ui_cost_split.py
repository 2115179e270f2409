"""Where Open WebUI's CPU goes on the UI path: a fixed cost per chat, and a cost per streamed token.

A row of bench/ui_chats.py divides all of Open WebUI's CPU by the tokens, so
at 150-token chats it mostly measures what every chat costs whatever streams
it (saving the chat, the request's middleware, socket.io, the /health probe).
Running the same chats twice, short and long, separates the two: the slope
is what a token costs (what a pipe can change), the intercept what a chat
costs. Both paths, the same Open WebUI, the same users, one after the other.

A long row also lasts ~20 s longer, and Open WebUI spends CPU on time alone
(the bench's own /health probe, 20 a second, is ~30 ms of CPU a second), which
the plain slope books to tokens. The idle rate is measured first, probes
running and no chat, and the net slope takes it out.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench.common import CONNECTION_MODEL, PIPE_MODEL, EmulatorProcess, HealthProbe, replicas_cpu
from bench.ui_chats import UIRow, print_ui_row, ui_run

SHORT_WORDS, LONG_WORDS = 2, 150  # ≈ 10 and ≈ 600 tokens a chat


@dataclass
class CostSplit:
    path: str
    chats: int
    short_tokens: float  # per chat
    long_tokens: float
    ms_per_chat: float  # the intercept: CPU ms a chat costs whatever it streams
    ms_per_token: float  # the slope: CPU ms each streamed token adds
    events_per_token: float  # socket.io events the client got per token, long chats
    idle_ms_per_s: float = 0.0  # Open WebUI's CPU with the /health probe running and no chat
    net_ms_per_token: float = 0.0  # the slope once the idle CPU of each row's duration is taken out


def split(short: UIRow, long: UIRow, idle_ms_per_s: float = 0.0) -> CostSplit:
    def per_chat(row: UIRow, idle: float) -> float:  # CPU ms
        return (row.cpu_per_1k * row.tokens - idle * row.seconds) / row.chats  # CPU s per 1k tokens × tokens = CPU ms

    tokens = [row.tokens / row.chats for row in (short, long)]
    gross = [per_chat(row, 0.0) for row in (short, long)]
    net = [per_chat(row, idle_ms_per_s) for row in (short, long)]
    slope = (gross[1] - gross[0]) / (tokens[1] - tokens[0])
    return CostSplit(path=long.path, chats=long.chats, short_tokens=tokens[0], long_tokens=tokens[1],
                     ms_per_chat=gross[0] - slope * tokens[0], ms_per_token=slope,
                     events_per_token=long.events_per_chat / tokens[1], idle_ms_per_s=idle_ms_per_s,
                     net_ms_per_token=(net[1] - net[0]) / (tokens[1] - tokens[0]))


async def idle_rate(stack: Any, seconds: float = 10.0) -> float:
    """CPU ms per second the replicas spend with the /health probe running and no chat."""
    probes = [HealthProbe(r.url) for r in stack.replicas]
    await asyncio.sleep(0.5)
    before, started = replicas_cpu(stack.replicas), time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (replicas_cpu(stack.replicas) - before) / (time.perf_counter() - started) * 1000
    for probe in probes:
        await asyncio.to_thread(probe.finish)
    return rate


async def cost_split(stack: Any, emulator: EmulatorProcess, chats: int) -> list[CostSplit]:
    idle = await idle_rate(stack)
    print(f"    idle, /health probed: {idle:.1f} CPU ms per second", flush=True)
    out = []
    for path, model in (("built-in connection", CONNECTION_MODEL), ("r1relay pipe", PIPE_MODEL)):
        rows = []
        for words in (SHORT_WORDS, LONG_WORDS):
            rows.append(await ui_run(stack.replicas, stack.users, emulator, path, model, chats, words, stack.label))
            print_ui_row(rows[-1])
        out.append(split(*rows, idle_ms_per_s=idle))
        print_split(out[-1])
    return out


def print_split(row: CostSplit) -> None:
    print(f"    {row.path}: {row.ms_per_chat:.1f} CPU ms per chat + {row.ms_per_token:.3f} CPU ms per token "
          f"({row.net_ms_per_token:.3f} net of idle; {row.events_per_token:.2f} socket events per token)", flush=True)


def split_table(rows: list[CostSplit]) -> list[str]:
    if not rows:
        return []
    lines = [f"| UI path, fixed vs per token ({rows[0].chats} chats, SQLite, 1 worker, 30 tok/s) | CPU ms per chat | "
             "CPU ms per token | CPU ms per token, net of idle | socket events per token | "
             "tokens per chat (short / long) | idle CPU ms/s (/health probed) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.path} | {r.ms_per_chat:.1f} | {r.ms_per_token:.3f} | {r.net_ms_per_token:.3f} | "
                     f"{r.events_per_token:.2f} | {r.short_tokens:.0f} / {r.long_tokens:.0f} | {r.idle_ms_per_s:.1f} |")
    return lines


def split_goal(rows: list[CostSplit]) -> list[str]:
    by = {r.path: r for r in rows}
    if {"built-in connection", "r1relay pipe"} - set(by):
        return []
    builtin, pipe = by["built-in connection"], by["r1relay pipe"]
    ratio = pipe.ms_per_token / builtin.ms_per_token
    net = pipe.net_ms_per_token / builtin.net_ms_per_token if builtin.net_ms_per_token > 0 else float("nan")
    return [f"SQLite, 1 worker, {pipe.chats} chats: CPU per streamed token (the slope) through the pipe ≤ 0.5× the "
            f"built-in connection's: {'met' if ratio <= 0.5 else 'MISSED'} ({ratio:.2f}×: {pipe.ms_per_token:.3f} vs "
            f"{builtin.ms_per_token:.3f} ms; net of idle {net:.2f}×: {pipe.net_ms_per_token:.3f} vs "
            f"{builtin.net_ms_per_token:.3f} ms; per chat {pipe.ms_per_chat:.0f} vs {builtin.ms_per_chat:.0f} ms)"]
