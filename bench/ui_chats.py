"""The UI path at real rates: N browser-shaped chats × 30 tokens/s, built-in connection versus the r1relay pipe.

Chats are driven the way the browser drives them (bench/ui_client.py: saved chat,
socket.io session, events), one user per chat, started 30 ms apart, against the
vLLM emulator in its own process, which logs when it sent every token. A row:
Open WebUI CPU per 1,000 tokens (process CPU time of every replica, with
children), /health p50/p99 probed from another process per replica, chats saved
byte-exact out of those finished, and the delay each token gained between the
backend sending it and the socket event that carried it reaching the client.
R1RELAY_BENCH_DEBUG=1 also prints when each row starts and ends and each chat's
worst delay, to line stalls up with, for example, a log of Open WebUI's
garbage collections (docs/openwebui-notes.md).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import REPO, EmulatorProcess, HealthProbe, percentile, r1_script, replicas_cpu
from tests.emulators.vllm import vllm_tokens
from tests.support.openwebui import OpenWebUI

UI_RATE = 30.0  # tokens/s per chat, a fast human-facing model
START_EVERY = 0.03  # seconds between chat starts
CHATS_PER_CLIENT = 48  # chats per client process, so the clients keep up with what they measure


@dataclass
class UIRow:
    path: str
    setup: str
    chats: int
    exact: int
    finished: int
    errors: int
    tokens: int
    seconds: float
    cpu_per_1k: float  # Open WebUI CPU seconds per 1,000 tokens, all replicas
    health_p50_ms: float
    health_p99_ms: float  # the worst replica's
    health_p99_by_replica: list[float] = field(default_factory=list)
    delay_p50_ms: float = math.nan
    delay_p99_ms: float = math.nan
    peak_backend_streams: int = 0
    events_per_chat: float = 0.0  # socket.io events a chat's client received (token-carrying and others)
    first_error: str = ""
    load: str = ""  # `uptime` when the row ran
    slots_left: int = 0  # queue tickets still in the shared Redis after the row: a leak if not 0
    first_mismatch: str = ""  # where the first finished chat whose saved text differs went wrong


def mismatch(saved: tuple[str, str], expected: tuple[str, str], items: list | None = None) -> str:
    """Which part of a saved chat differs from what the backend sent, and how, in one line."""
    for name, got, want in zip(("thinking", "answer"), saved, expected, strict=True):
        if got != want:
            at = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
            return (f"{name} differs at {at} of {len(want)} chars (saved {len(got)}): "
                    f"saved {got[max(0, at - 20):at + 20]!r}, sent {want[max(0, at - 20):at + 20]!r}; "
                    f"saved items {items!r}"[:3000])
    return ""


def expected_deltas(prompt: str, script: str) -> list[tuple[str, int]]:
    """(kind, end offset within that kind's text) of every delta the emulator sends for `prompt`, in order."""
    out, lengths, kind = [], {"reasoning": 0, "content": 0}, "reasoning"
    for token in vllm_tokens(f"{prompt} {script}"):
        if token in ("<think>", "</think>"):
            kind = "content" if token == "</think>" else kind
            continue
        lengths[kind] += len(token)
        out.append((kind, lengths[kind]))
    return out


def expected_texts(prompt: str, script: str) -> tuple[str, str]:
    """What a saved chat must hold: the thinking as sent, the answer as Open WebUI stores it (stripped)."""
    reasoning, _, answer = f"{prompt} {script}".partition("</think>")
    return reasoning.lstrip(), answer.strip()


def token_delays(result: dict[str, Any], script: str, emits: list[float]) -> list[float]:
    """Seconds from the backend sending each token to the arrival of the event that carried it."""
    deltas = expected_deltas(result["prompt"], script)
    delays: list[float] = []
    full = {"reasoning": 0, "content": 0}
    for kind, end in deltas:
        full[kind] = end
    for (kind, end), sent in zip(deltas, emits, strict=False):
        arrivals = result["arrivals"][kind]
        if not arrivals:
            continue
        dropped = max(0, full[kind] - arrivals[-1][0])  # leading (and final) whitespace a path leaves out
        wanted = min(end - dropped, arrivals[-1][0])
        if wanted <= 0:
            continue
        arrived = next(at for length, at in arrivals if length >= wanted)
        delays.append(arrived - sent)
    return delays


def start_clients(specs: list[dict[str, Any]]) -> list[subprocess.Popen[str]]:
    clients = []
    for at in range(0, len(specs), CHATS_PER_CLIENT):
        process = subprocess.Popen([sys.executable, str(REPO / "bench" / "ui_client.py")], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert process.stdin is not None
        process.stdin.write(json.dumps({"chats": specs[at : at + CHATS_PER_CLIENT]}) + "\n")
        process.stdin.flush()
        clients.append(process)
    for process in clients:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"a chat client did not get ready: {line!r}")
    return clients


def tickets_left(redis_url: str, settle: float = 5.0) -> int:
    """Tickets of the pipe's Redis queue still there `settle` s after every chat ended (each chat's ticket must go)."""
    import redis  # Open WebUI's dependency

    client = redis.Redis.from_url(redis_url)
    time.sleep(settle)
    return sum(int(client.zcard(key)) for key in client.scan_iter("r1relay:slots:*") if not key.endswith(b":beats"))


def start_profilers(pids: list[int], label: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on every replica while the chats run, when R1RELAY_PYSPY_DIR names where the collapsed stacks go."""
    where = os.environ.get("R1RELAY_PYSPY_DIR")
    if not where:
        return []
    os.makedirs(where, exist_ok=True)
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return [subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking",
                              "--output", os.path.join(where, f"{label}-replica{at}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for at, pid in enumerate(pids)]


def stop_profilers(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(60)


async def ui_run(
    replicas: list[OpenWebUI], tokens: list[str], emulator: EmulatorProcess, path: str, model: str, chats: int,
    words: int, setup: str, redis_url: str = "",
) -> UIRow:
    """`chats` chats spread over `replicas`, chat k by user k (`tokens[k]`)."""
    script = r1_script(words)
    emulator.set(script=script, token_rate=UI_RATE)
    emulator.emits()  # a fresh send-time log and concurrency peak
    run_id = f"{time.monotonic_ns() % 10**8:08d}"
    specs = [
        {"base_url": replicas[k % len(replicas)].url, "token": tokens[k], "model": model,
         "prompt": f"u{run_id}k{k:04d}", "offset": k * START_EVERY}
        for k in range(chats)
    ]
    clients = await asyncio.to_thread(start_clients, specs)
    probes = [HealthProbe(r.url) for r in replicas]
    await asyncio.sleep(0.5)  # a few idle probes first
    pids = [r._process.pid for r in replicas if r._process]
    spies = start_profilers(pids, f"{path.replace(' ', '-')}-{chats}-chats-{words}-words")
    cpu_before, started = replicas_cpu(replicas), time.perf_counter()
    if os.environ.get("R1RELAY_BENCH_DEBUG"):
        print(f"    DEBUG row {path} {chats} starts at {time.time():.3f}", flush=True)
    go = json.dumps({"go": time.time() + 0.2}) + "\n"
    for process in clients:
        assert process.stdin is not None
        process.stdin.write(go)
        process.stdin.flush()
    outputs = await asyncio.gather(*(asyncio.to_thread(process.communicate, None, 600) for process in clients))
    seconds = time.perf_counter() - started
    if os.environ.get("R1RELAY_BENCH_DEBUG"):
        print(f"    DEBUG row {path} {chats} ends at {time.time():.3f}", flush=True)
    cpu = replicas_cpu(replicas) - cpu_before
    stop_profilers(spies)
    healths = [probe.finish() for probe in probes]
    emits = emulator.emits()
    results = []
    for at, (out, _) in enumerate(outputs):
        lines = out.strip().splitlines()
        if lines and lines[-1].startswith("{"):
            results += json.loads(lines[-1])["chats"]
        else:  # the client process died: its chats count as unfinished, with why
            failed = specs[at * CHATS_PER_CLIENT : (at + 1) * CHATS_PER_CLIENT]
            results += [{"prompt": s["prompt"], "base_url": s["base_url"], "finished": False, "saved": None,
                         "arrivals": {"reasoning": [], "content": []}, "errors": ["the chat client process failed"],
                         "events": 0} for s in failed]
    exact = finished = errors = 0
    delays: list[float] = []
    first_error = first_mismatch = ""
    for result in results:
        errors += bool(result["errors"])
        first_error = first_error or (result["errors"][0] if result["errors"] else "")
        finished += bool(result["finished"])
        if result["saved"] and tuple(result["saved"]) == expected_texts(result["prompt"], script):
            exact += 1
        elif result["saved"] and result["finished"]:
            first_mismatch = first_mismatch or mismatch(tuple(result["saved"]), expected_texts(result["prompt"], script),
                                                      result.get("saved_items"))
        chat_delays = token_delays(result, script, emits.get(result["prompt"], []))
        delays += chat_delays
        if chat_delays and os.environ.get("R1RELAY_BENCH_DEBUG"):
            worst = max(range(len(chat_delays)), key=chat_delays.__getitem__)
            late = [k for k, d in enumerate(chat_delays) if d > 0.2]
            print(f"    DEBUG {result['prompt']} worst {chat_delays[worst] * 1000:.0f} ms at token {worst}/"
                  f"{len(chat_delays)}; >200 ms: {len(late)} tokens {late[:3]}..{late[-3:]}", flush=True)
    all_latencies = [ms for h in healths for ms in h["latencies_ms"]]
    slots_left = await asyncio.to_thread(tickets_left, redis_url) if redis_url else 0
    sent_tokens = sum(len(v) for v in emits.values())
    return UIRow(
        path=path, setup=setup, chats=chats, exact=exact, finished=finished, errors=errors, tokens=sent_tokens,
        seconds=seconds, cpu_per_1k=cpu / max(sent_tokens, 1) * 1000,
        health_p50_ms=percentile(all_latencies, 50),
        health_p99_ms=max(percentile(h["latencies_ms"], 99) for h in healths),
        health_p99_by_replica=[percentile(h["latencies_ms"], 99) for h in healths],
        delay_p50_ms=percentile(delays, 50) * 1000, delay_p99_ms=percentile(delays, 99) * 1000,
        peak_backend_streams=emulator.peak_active, first_error=first_error,
        events_per_chat=sum(r["events"] for r in results) / max(len(results), 1),
        load=" / ".join(f"{x:.2f}" for x in os.getloadavg()), slots_left=slots_left, first_mismatch=first_mismatch,
    )


def print_ui_row(row: UIRow) -> None:
    by_replica = "/".join(f"{p:.0f}" for p in row.health_p99_by_replica)
    print(
        f"  {row.path:<20} {row.setup:<26} {row.chats:>5} {row.exact:>4}/{row.finished:<4} {row.errors:>4} "
        f"{row.cpu_per_1k:>8.3f} {row.health_p50_ms:>7.1f} {by_replica:>11} {row.delay_p50_ms:>7.0f} "
        f"{row.delay_p99_ms:>7.0f} {row.peak_backend_streams:>5} {row.events_per_chat:>6.0f}  load {row.load}"
        + (f"\n    first error: {row.first_error}" if row.first_error else "")
        + (f"\n    first saved chat that differs: {row.first_mismatch}" if row.first_mismatch else "")
        + (f"\n    queue tickets left in Redis after the row: {row.slots_left}" if row.slots_left else ""),
        flush=True,
    )


UI_HEADER = (f"  {'path':<20} {'setup':<26} {'chats':>5} {'exact/fin':>9} {'err':>4} {'CPU s/1k':>8} {'hlth50':>7} "
             f"{'hlth99/rep':>11} {'dly p50':>7} {'dly p99':>7} {'peak':>5} {'events':>6}")
