"""Think-splitter throughput: a 10 MB R1-shaped stream, chunked at random like network reads.

Run: .venv/bin/python bench/think_splitter.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend_adapters.think_splitter import ThinkSplitter  # noqa: E402
from bench.common import chunks_of  # noqa: E402


def r1_stream(size: int, rng: random.Random) -> str:
    words = ["the", "model", "thinks", "about", "</th", "<think", "answer", "→", "答案", "\n", "tokens"]
    reasoning = " ".join(rng.choice(words) for _ in range(size // 12))
    answer = " ".join(rng.choice(words) for _ in range(size // 12))
    return f"{reasoning}</think>\n\n{answer}"


def measure(chunks: list[str]) -> tuple[float, int]:
    splitter = ThinkSplitter(starts_in_thinking=True)
    start = time.perf_counter()
    events = 0
    for chunk in chunks:
        events += len(splitter.feed(chunk))
    events += len(splitter.flush())
    return time.perf_counter() - start, events


def main() -> None:
    rng = random.Random(1)
    text = r1_stream(10_000_000, rng)
    megabytes = len(text.encode()) / 1e6
    print(f"{'chunking':<26} {'chunks':>10} {'seconds':>8} {'MB/s':>8}")
    for label, mean in (("token-sized (mean 4 chars)", 4), ("network reads (mean 1 KB)", 1024)):
        chunks = chunks_of(text, rng, mean)
        best = min(measure(chunks)[0] for _ in range(3))
        print(f"{label:<26} {len(chunks):>10} {best:>8.3f} {megabytes / best:>8.1f}")


if __name__ == "__main__":
    main()
