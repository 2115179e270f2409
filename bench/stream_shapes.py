"""Prompt-server stream reading cost: spec SSE against raw-token SSE, NDJSON, plain text, and the echo check.

Every prompt-server stream now goes through stream_shapes (shape sniffing, raw-token rebuilding)
and prompt_echo; this prints what that costs per MB of tokens, one `data:` frame per
TextIteratorStreamer-like token (mean 5 characters, a newline every ~12 tokens), read in
network-sized pieces (mean 1 KB) and in one-frame pieces.

Run: .venv/bin/python bench/stream_shapes.py
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend_adapters.prompt_echo import EchoStripper  # noqa: E402
from backend_adapters.stream_shapes import stream_pieces  # noqa: E402
from bench.common import chunks_of  # noqa: E402

PROMPT = "<｜begin▁of▁sentence｜><｜User｜>" + "Explain the tides. " * 50 + "<｜Assistant｜><think>\n"


def tokens(size: int, rng: random.Random) -> list[str]:
    words = ["the ", "moon ", "pulls ", "water.\n", "tides ", "rise ", "→ ", "潮汐 ", "and\n\nthen ", "fall "]
    out, total = [], 0
    while total < size:
        out.append(rng.choice(words))
        total += len(out[-1])
    return out


async def read(chunks: list[bytes], content_type: str, style: str, echo: bool) -> int:
    async def source():
        for chunk in chunks:
            yield chunk

    stripper = EchoStripper(PROMPT) if echo else None
    total = 0
    async for piece in stream_pieces(source(), content_type, style):
        total += len(stripper.feed(piece.text) if stripper else piece.text)
    return total


def main() -> None:
    rng = random.Random(7)
    toks = tokens(2_000_000, rng)
    text = "".join(toks)
    shapes = {
        "SSE raw tokens": ("text/event-stream", "".join(f"data: {t}\n\n" for t in toks).encode()),
        "NDJSON {token}": ("application/x-ndjson", "".join(json.dumps({"token": t}) + "\n" for t in toks).encode()),
        "plain text": ("text/plain", text.encode()),
    }
    print(f"{len(text) / 1e6:.1f} MB of text in {len(toks):,} tokens")
    print(f"{'shape':<16} {'style':<11} {'reads':<10} {'echo':<5} {'MB/s':>7}")
    for name, (content_type, raw) in shapes.items():
        styles = ("strict", "auto") if name.startswith("SSE") else ("auto",)
        for style in styles:
            for reads, mean in (("1 KB", 1024), ("per token", 12)):
                for echo in (False, True):
                    chunks = chunks_of(raw, random.Random(1), mean)
                    start = time.perf_counter()
                    asyncio.run(read(chunks, content_type, style, echo))
                    seconds = time.perf_counter() - start
                    print(f"{name:<16} {style:<11} {reads:<10} {'yes' if echo else 'no':<5} {len(text) / 1e6 / seconds:>7.1f}")


if __name__ == "__main__":
    main()
