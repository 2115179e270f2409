"""The pipe alone at chat rates: N streams × 30 tokens/s, CPU per 1,000 tokens of our reading path, no Open WebUI.

On the UI path every token arrives as its own network read, so what the pipe
spends per read (HTTP client, SSE decoding, our event layers) is paid once per
token inside Open WebUI's process. This isolates that cost, paced as real
chats are, with `--profile` for a cProfile by own time. Run:
`.venv/bin/python bench/pipe_read_cost.py [--streams 16] [--words 75] [--profile]`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import install  # noqa: E402
from bench.common import PIPE_ID, PIPE_MODEL, EmulatorProcess, r1_script  # noqa: E402
from bench.relay_cost import in_process_pipe_run  # noqa: E402
from tests.support.built import load_function  # noqa: E402
from tests.support.pipe_driver import chat_body  # noqa: E402

UI_RATE = 30.0


async def run(streams: int, words: int, rate: float, profile: bool) -> None:
    built = Path(tempfile.mkdtemp(prefix="r1relay-read-"))
    install.export(built)
    module = load_function(built / f"{PIPE_ID}.py")
    emulator = EmulatorProcess()
    try:
        emulator.set(script=r1_script(2), token_rate=0.0)
        await in_process_pipe_run(module, emulator.base_url, chat_body(PIPE_MODEL, "warm"))  # imports, clients
        emulator.set(script=r1_script(words), token_rate=rate)
        profiler = cProfile.Profile() if profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        runs = await asyncio.gather(*(in_process_pipe_run(module, emulator.base_url, chat_body(PIPE_MODEL, f"s{k}"))
                                      for k in range(streams)))
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        tokens = sum(r.tokens for r in runs)
        errors = [e for r in runs for e in r.errors]
        print(f"{streams} streams × {rate:g} tok/s, {tokens} tokens in {wall:.1f} s: "
              f"{cpu / tokens * 1000:.3f} CPU s per 1,000 tokens, {cpu / streams * 1000:.1f} ms per stream"
              + (f"; errors: {errors[:1]}" if errors else ""))
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
            print(out.getvalue())
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--words", type=int, default=75, help="reasoning words and answer words (≈ 4 × words tokens)")
    parser.add_argument("--rate", type=float, default=UI_RATE, help="tokens/s per stream (0: as fast as possible)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    import uvloop  # what Open WebUI runs on (uvicorn picks it when installed)

    uvloop.run(run(args.streams, args.words, args.rate, args.profile))


if __name__ == "__main__":
    main()
