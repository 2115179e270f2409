"""r1relay benchmarks, one command: `.venv/bin/python bench/run.py` (or `make bench`).

Starts a real Open WebUI (tests/support/openwebui.py), the vLLM emulator in a
process of its own (bench/emulator_process.py), registers the built vLLM pipe
and, for comparison, Open WebUI's own OpenAI connection and a pipe written the
blocking way (bench/blocking_pipe.py, the anti-pattern), then measures:

1. Relay cost: one stream read (a) directly from the emulator, (b) through Open
   WebUI's own OpenAI connection, (c) through the r1relay pipe in Open WebUI, and
   (d) through the same built pipe driven in this process without Open WebUI
   (our code alone): tokens/s, time to first token, inter-token latency p50/p99,
   Open WebUI CPU seconds per 1,000 tokens. Once as fast as the socket allows,
   once paced at a fixed rate.
2. Concurrency: 1, 16, 64, 256 streams at 20 tokens/s through the pipe: every
   stream checked byte-exact and in order, Open WebUI's /health latency measured
   from a separate process while they run; the same load through the blocking pipe.
3. The think splitter's throughput (bench/think_splitter.py).

Prints tables, writes bench/results.md, bench/results.json and docs/bench.svg.
Everything listens and connects on 127.0.0.1 only, every loop is bounded.
`--quick` runs a smaller load (for a smoke check); `--profile` profiles (d).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

import install  # noqa: E402
from bench.svg import write_svg  # noqa: E402
from tests.emulators.vllm import vllm_tokens  # noqa: E402
from tests.support.built import load_function  # noqa: E402
from tests.support.openwebui import OpenWebUI  # noqa: E402
from tests.support.pipe_driver import chat_body, make_pipe  # noqa: E402

BACKEND_MODEL = "deepseek-ai/DeepSeek-R1"
PIPE_ID = "r1relay_vllm"
BLOCKING_ID = "bench_blocking"
PIPE_MODEL = f"{PIPE_ID}.{BACKEND_MODEL}"
BLOCKING_MODEL = f"{BLOCKING_ID}.{BACKEND_MODEL}"
CONNECTION_MODEL = BACKEND_MODEL
STREAM_RATE = 20.0  # tokens/s per stream in the concurrency runs
HEALTH_EVERY = 0.05  # seconds between /health probes


# ---------------------------------------------------------------------------
# Scripts: numbered words, so a lost or reordered token cannot go unnoticed
# ---------------------------------------------------------------------------


def r1_script(words: int) -> str:
    """R1 output with `words` reasoning words and `words` answer words (about 4 × words deltas)."""
    reasoning = " ".join(f"r{i:05d}" for i in range(words))
    answer = " ".join(f"c{i:05d}" for i in range(words))
    return f"{reasoning}\n</think>\n\n{answer}"


def expected_split(prompt: str, script: str) -> tuple[str, str]:
    """What the pipe must deliver for `prompt` (the emulator prefixes it): thinking and answer, leading space trimmed."""
    reasoning, _, answer = f"{prompt} {script}".partition("</think>")
    return reasoning.lstrip(), answer.lstrip()


# ---------------------------------------------------------------------------
# Helpers: emulator process, health prober process, CPU of Open WebUI
# ---------------------------------------------------------------------------


class EmulatorProcess:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "emulator_process.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = json.loads(self.process.stdout.readline())["url"]
        self.base_url = f"{self.url}/v1"

    def set(self, drop: bool = False, **fields: Any) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"set": fields, "drop": drop}) + "\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def probe_main(url: str) -> None:
    """`run.py --probe URL`: GET /health every HEALTH_EVERY s until stdin closes, then print latencies (ms)."""
    import requests

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    latencies: list[float] = []
    sent_at: list[float] = []
    failures = 0
    with requests.Session() as session:
        while not stop.is_set() and len(latencies) < 20_000:
            started = time.perf_counter()
            sent_at.append(time.time())
            try:
                ok = session.get(f"{url}/health", timeout=30).ok
            except requests.RequestException:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok
            stop.wait(HEALTH_EVERY)
    print(json.dumps({"latencies_ms": latencies, "sent_at": sent_at, "failures": failures}), flush=True)


class HealthProbe:
    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--probe", url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def finish(self) -> dict[str, Any]:
        out, _ = self.process.communicate("", timeout=60)
        return dict(json.loads(out))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------
# One stream, read as a client
# ---------------------------------------------------------------------------


@dataclass
class StreamResult:
    tokens: int = 0
    first_token: float | None = None  # seconds after the request was sent
    arrivals: list[float] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    first_token_at: float = 0.0  # wall clock, to line up with the /health probes
    ended_at: float = 0.0

    def arrived(self, now: float, text: str) -> None:
        """A chunk came in: count the backend tokens it carries, not the chunk (merged chunks carry many)."""
        count = max(1, len(vllm_tokens(text)))
        self.tokens += count
        self.arrivals.extend([now] * count)

    @property
    def gaps_ms(self) -> list[float]:
        return [(b - a) * 1000 for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]


async def read_stream(session: aiohttp.ClientSession, url: str, body: dict, token: str = "") -> StreamResult:
    result = StreamResult()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.perf_counter()
    try:
        async with session.post(url, json=body, headers=headers) as response:
            if response.status != 200:
                result.errors.append(f"HTTP {response.status}: {(await response.text())[:200]}")
                return result
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if not data or data == b"[DONE]":
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    result.errors.append(str(chunk["error"]))
                    continue
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
                    content = delta.get("content") or ""
                    if reasoning or content:
                        now = time.perf_counter()
                        if result.first_token is None:
                            result.first_token, result.first_token_at = now - started, time.time()
                        result.arrived(now, reasoning + content)
                        result.reasoning.append(reasoning)
                        result.content.append(content)
    except (TimeoutError, aiohttp.ClientError) as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - started
    result.ended_at = time.time()
    return result


# ---------------------------------------------------------------------------
# 1. Relay cost
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# 2. Concurrency
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# 3. Think splitter
# ---------------------------------------------------------------------------


def splitter_bench() -> list[dict[str, Any]]:
    output = subprocess.run(
        [sys.executable, str(REPO / "bench" / "think_splitter.py")], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    print(output, end="")
    rows = []
    for line in output.splitlines()[1:]:
        label, _, numbers = line.rpartition(")")
        parts = numbers.split()
        if len(parts) == 3:
            rows.append({"chunking": f"{label})", "chunks": int(parts[0]), "seconds": float(parts[1]), "mb_per_s": float(parts[2])})
    return rows


# ---------------------------------------------------------------------------
# Profile of our code path
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def markdown(relay: list[RelayRow], load: list[LoadRow], splitter: list[dict[str, Any]], goals: list[str]) -> str:
    lines = ["| path | emulator | tokens/s | TTFT ms | ITL p50 ms | ITL p99 ms | CPU s / 1k tokens (Open WebUI; (d): the pipe) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in relay:
        cpu = f"{r.cpu_per_1k:.3f}" if r.cpu_per_1k is not None else "–"
        lines.append(f"| {r.path} | {r.mode} | {r.tokens_per_s:,.0f} | {r.ttft_ms:.1f} | {r.itl_p50_ms:.3f} | {r.itl_p99_ms:.3f} | {cpu} |")
    for mode in dict.fromkeys(r.mode for r in relay):
        by = {r.path[:3]: r for r in relay if r.mode == mode}
        lines.append(f"\nRatios ({mode}): (c)/(b) = {by['(c)'].tokens_per_s / by['(b)'].tokens_per_s:.2f}, "
                     f"(c)/(a) = {by['(c)'].tokens_per_s / by['(a)'].tokens_per_s:.2f}, "
                     f"(d)/(a) = {by['(d)'].tokens_per_s / by['(a)'].tokens_per_s:.2f}")
    lines += ["", f"| pipe | streams × {STREAM_RATE:g} tok/s | byte-exact | lost chars | errors | unfinished | seconds | "
              "tokens/s | /health p50 ms | /health p99 ms | /health max ms | /health p99 ms, all streaming | Open WebUI CPU % |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in load:
        steady = "–" if r.steady_p99_ms != r.steady_p99_ms else f"{r.steady_p99_ms:.1f}"  # NaN: no probe in that window
        lines.append(f"| {r.pipe} | {r.streams} | {r.exact}/{r.streams} | {r.lost_tokens} | {r.errors} | {r.unfinished} | "
                     f"{r.seconds:.1f} | {r.tokens_per_s:,.0f} | {r.health_p50_ms:.1f} | {r.health_p99_ms:.1f} | "
                     f"{r.health_max_ms:.1f} | {steady} | {r.cpu_percent:.0f} |")
    lines += ["", "| think splitter, 10 MB | chunks | seconds | MB/s |", "|---|---:|---:|---:|"]
    for s in splitter:
        lines.append(f"| {s['chunking']} | {s['chunks']:,} | {s['seconds']:.3f} | {s['mb_per_s']:.1f} |")
    lines += ["", *[f"- {g}" for g in goals]]
    return "\n".join(lines) + "\n"


def judge(relay: list[RelayRow], load: list[LoadRow]) -> list[str]:
    goals = []
    fast = {r.path[:3]: r for r in relay if r.mode == "max"}
    ratio = fast["(c)"].tokens_per_s / fast["(b)"].tokens_per_s
    goals.append(f"(c)/(b) throughput ≥ 0.95: {'met' if ratio >= 0.95 else 'MISSED'} ({ratio:.2f})")
    ours = {r.streams: r for r in load if r.pipe == "r1relay (async)"}
    if 64 in ours:
        p99 = ours[64].health_p99_ms
        goals.append(f"/health p99 < 50 ms at 64 streams: {'met' if p99 < 50 else 'MISSED'} ({p99:.1f} ms over the "
                     f"whole run; {ours[64].steady_p99_ms:.1f} ms once all 64 are streaming)")
    if 256 in ours:
        r = ours[256]
        ok = r.exact == r.streams and r.lost_tokens == 0 and not r.unfinished
        goals.append(f"zero lost or reordered tokens at 256 streams: {'met' if ok else 'MISSED'} ({r.exact}/{r.streams} byte-exact)")
    return goals


def write_outputs(out_dir: Path, table: str, results: dict[str, Any], relay: list[RelayRow], load: list[LoadRow]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(table)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    svg = REPO / "docs" / "bench.svg"
    write_svg(svg, relay, load)
    print(f"\nWrote {out_dir / 'results.md'}, {out_dir / 'results.json'}, {svg}\n")


async def main_async(args: argparse.Namespace) -> int:
    quick = args.quick
    levels = [1, 16] if quick else [1, 16, 64, 256]
    words = 1000 if quick else 3000  # deltas ≈ 4 × words
    load_words = 10 if quick else 50  # 50 → ~200 deltas, 10 s at 20 tok/s
    built = Path(tempfile.mkdtemp(prefix="r1relay-bench-"))
    install.export(built)
    pipe_module = load_function(built / f"{PIPE_ID}.py")
    emulator = EmulatorProcess()
    print(f"emulator at {emulator.url}; starting Open WebUI (about 30 s)…", flush=True)
    owui = OpenWebUI(built / "openwebui")
    results: dict[str, Any] = {}
    try:
        owui.start()
        owui.register_function(PIPE_ID, "r1relay vLLM", (built / f"{PIPE_ID}.py").read_text(), "bench", type_hint="pipe")
        owui.set_valves(PIPE_ID, {"BASE_URLS": emulator.base_url, "MODELS": BACKEND_MODEL})
        blocking = (REPO / "bench" / "blocking_pipe.py").read_text()
        owui.register_function(BLOCKING_ID, "blocking (anti-pattern)", blocking, "bench anti-pattern", type_hint="pipe")
        owui.set_valves(BLOCKING_ID, {"BASE_URL": emulator.base_url, "MODEL": BACKEND_MODEL})
        owui.add_openai_connection(emulator.base_url)
        ids = {m["id"] for m in owui.models()}
        missing = {PIPE_MODEL, BLOCKING_MODEL, CONNECTION_MODEL} - ids
        if missing:
            raise RuntimeError(f"models missing in Open WebUI: {missing} (have {sorted(ids)})")
        print(f"Open WebUI {owui.url} up in {owui.startup_seconds:.0f} s\n", flush=True)

        print("1. Relay cost (one stream)")
        print(f"  {'path':<34} {'emulator':<11} {'tokens':>6} {'tokens/s':>10} {'TTFT ms':>9} {'ITL p50':>9} "
              f"{'ITL p99':>9} {'CPU s/1k':>9}")
        relay = await relay_cost(owui, emulator, pipe_module, words, reps=3, paced_rate=200.0, paced_words=100)

        print(f"\n2. Concurrency ({STREAM_RATE:g} tokens/s per stream, /health probed every {HEALTH_EVERY * 1000:.0f} ms)")
        print(f"  {'pipe':<22} {'streams':>7} {'exact':>10} {'lost':>6} {'errors':>6} {'unfin.':>6} {'seconds':>7} "
              f"{'tok/s':>8} {'hlth p50':>8} {'hlth p99':>8} {'hlth max':>8} {'steady99':>8} {'CPU%':>6}")
        stream_seconds = (4 * load_words + 4) / STREAM_RATE
        load: list[LoadRow] = []
        for streams in levels:
            load.append(await concurrency_run(owui, emulator, "r1relay (async)", PIPE_MODEL, streams, load_words,
                                              deadline=stream_seconds * 3 + 30))
        # The blocking pipe serves one stream at a time with the whole server frozen: at 16 streams most never
        # finish and /health takes tens of seconds; 64 and 256 would only take longer to say the same.
        for streams in levels[:2]:
            load.append(await concurrency_run(owui, emulator, "blocking (anti-pattern)", BLOCKING_MODEL, streams,
                                              load_words, deadline=stream_seconds * 2 + 15, last=streams == levels[1]))

        print("\n3. Think splitter (bench/think_splitter.py)")
        splitter = splitter_bench()

        goals = judge(relay, load)
        print("\nGoals:")
        for goal in goals:
            print(f"  {goal}")
        if args.profile or any("MISSED" in g and "(c)/(b)" in g for g in goals):
            print("\nProfile of (d), our code path without Open WebUI (cProfile, by own time):")
            print(await profile_pipe(pipe_module, emulator, words))
        results = {"relay": [asdict(r) for r in relay], "load": [asdict(r) for r in load], "splitter": splitter, "goals": goals}
        table = markdown(relay, load, splitter, goals)
        write_outputs(Path(args.out), table, results, relay, load)
        print(table)
    finally:
        owui.stop()
        emulator.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small load, for a smoke check")
    parser.add_argument("--profile", action="store_true", help="always print a cProfile of our code path")
    parser.add_argument("--out", default=str(REPO / "bench"), help="where results.md and results.json go")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_main(args.probe)
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
