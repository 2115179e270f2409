"""What every bench measurement shares: the emulator process, the /health prober, CPU clocks, scripts, stream reads.

Scripts are numbered words, so a lost or reordered token cannot go unnoticed.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil

from tests.emulators.vllm import vllm_tokens

REPO = Path(__file__).resolve().parent.parent
BACKEND_MODEL = "deepseek-ai/DeepSeek-R1"
PIPE_ID = "r1relay_vllm"
BLOCKING_ID = "bench_blocking"
PIPE_MODEL = f"{PIPE_ID}.{BACKEND_MODEL}"
BLOCKING_MODEL = f"{BLOCKING_ID}.{BACKEND_MODEL}"
CONNECTION_MODEL = BACKEND_MODEL


def r1_script(words: int) -> str:
    """R1 output with `words` reasoning words and `words` answer words (about 4 × words deltas)."""
    reasoning = " ".join(f"r{i:05d}" for i in range(words))
    answer = " ".join(f"c{i:05d}" for i in range(words))
    return f"{reasoning}\n</think>\n\n{answer}"


def expected_split(prompt: str, script: str) -> tuple[str, str]:
    """What the pipe must deliver for `prompt` (the emulator prefixes it): thinking and answer, leading space trimmed."""
    reasoning, _, answer = f"{prompt} {script}".partition("</think>")
    return reasoning.lstrip(), answer.lstrip()


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
        self.peak_active = 0  # the most streams the emulator sent at once, as of the last `emits()`

    def set(self, drop: bool = False, **fields: Any) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"set": fields, "drop": drop}) + "\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def emits(self) -> dict[str, list[float]]:
        """Send time of every delta since the last call, by prompt; starts a fresh log and a fresh concurrency peak."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"emits": True}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        self.peak_active = int(answer["peak_active"])
        return dict(answer["emits"])

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class HealthProbe:
    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "health_probe.py"), url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
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


def replicas_cpu(replicas: list[Any]) -> float:
    """CPU seconds so far of every Open WebUI replica (`tests.support.openwebui.OpenWebUI`), with children."""
    return sum(cpu_seconds(r._process.pid) for r in replicas if r._process)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


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


Text = TypeVar("Text", str, bytes)


def chunks_of(text: Text, rng: random.Random, mean: int) -> list[Text]:
    """`text` cut at random, `mean` long on average: how a stream arrives, token by token or read by read."""
    out, i = [], 0
    while i < len(text):
        step = max(1, int(rng.expovariate(1 / mean)))
        out.append(text[i : i + step])
        i += step
    return out
