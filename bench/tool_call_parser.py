"""Tool-call parser throughput: a 2 MB answer with tag-like text and calls, chunked like tokens and network reads.

It shows the parser's cost stays linear whatever the chunking (a call's body is scanned once,
never re-searched from its start). Run: .venv/bin/python bench/tool_call_parser.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend_adapters.tool_call_parser import ToolCallParser  # noqa: E402
from bench.common import chunks_of  # noqa: E402

R1_CALL = (
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{{\"q\": \"{q}\"}}\n```"
    "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
)
HERMES_CALL = '<tool_call>\n{{"name": "search", "arguments": {{"q": "{q}"}}}}\n</tool_call>'


def answer(size: int, call: str, rng: random.Random) -> str:
    words = ["the", "answer", "<tool", "<｜tool▁", "is", "→", "答案", "\n", "<", "tokens"]
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        parts.append(" ".join(rng.choice(words) for _ in range(200)))
        parts.append(call.format(q="x" * rng.randint(1, 2000)))  # long arguments too
    return "".join(parts)


def measure(chunks: list[str], tool_format: str) -> tuple[float, int]:
    parser = ToolCallParser(tool_format)  # type: ignore[arg-type]
    start = time.perf_counter()
    for chunk in chunks:
        parser.feed(chunk)
    parser.flush()
    return time.perf_counter() - start, parser.calls


def main() -> None:
    rng = random.Random(1)
    print(f"{'format':<9} {'chunking':<26} {'calls':>6} {'chunks':>9} {'seconds':>8} {'MB/s':>6}")
    for tool_format, call in (("deepseek", R1_CALL), ("hermes", HERMES_CALL)):
        text = answer(2_000_000, call, rng)
        megabytes = len(text.encode()) / 1e6
        for label, mean in (("token-sized (mean 4 chars)", 4), ("network reads (mean 1 KB)", 1024)):
            chunks = chunks_of(text, rng, mean)
            best, calls = min(measure(chunks, tool_format) for _ in range(3))
            print(f"{tool_format:<9} {label:<26} {calls:>6} {len(chunks):>9} {best:>8.3f} {megabytes / best:>6.1f}")


if __name__ == "__main__":
    main()
