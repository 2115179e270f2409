"""r1relay benchmarks, one command: `.venv/bin/python bench/run.py` (or `make bench`).

Runs each measurement (one module each) and writes bench/results.md,
bench/results.json and docs/bench.svg:

1. relay cost, one stream over the API path (bench/relay_cost.py);
2. API-path concurrency, async pipe versus a blocking one (bench/api_concurrency.py);
3. the think splitter's throughput (bench/think_splitter.py);
4. the UI path: browser-shaped chats × 30 tokens/s, built-in connection versus
   the pipe, on SQLite with one worker (bench/ui_chats.py);
5. the UI path's CPU split into a cost per chat and a cost per token (bench/ui_cost_split.py);
6. the same chats, production-shaped: PostgreSQL + Redis + two replicas (bench/stacks.py).

Everything listens and connects on 127.0.0.1 only, every loop is bounded.
`--quick` runs a smaller load; `--only ui,production` runs some sections (the
results of the others are kept from the last full run); `--profile` profiles (d).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import install  # noqa: E402
from bench.api_concurrency import STREAM_RATE, LoadRow, concurrency_run  # noqa: E402
from bench.common import (  # noqa: E402
    BACKEND_MODEL,
    BLOCKING_ID,
    BLOCKING_MODEL,
    CONNECTION_MODEL,
    PIPE_ID,
    PIPE_MODEL,
    EmulatorProcess,
)
from bench.relay_cost import RelayRow, profile_pipe, relay_cost  # noqa: E402
from bench.report import judge, markdown, write_outputs  # noqa: E402
from bench.stacks import add_users, production_stack, register, sqlite_stack  # noqa: E402
from bench.ui_chats import UI_HEADER, UIRow, print_ui_row, ui_run  # noqa: E402
from bench.ui_cost_split import CostSplit, cost_split  # noqa: E402
from tests.support.built import load_function  # noqa: E402
from tests.support.openwebui import OpenWebUI  # noqa: E402

SECTIONS = ("relay", "api", "splitter", "ui", "split", "production")
PRODUCTION_MAX_CONCURRENCY = 64  # the pipe's MAX_CONCURRENCY in the production rows: the backend's slots


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


async def api_sections(built: Path, emulator: EmulatorProcess, pipe_module: Any, quick: bool, sections: set[str],
                       profile: bool) -> dict[str, Any]:
    """Sections 1 and 2, on one Open WebUI with the pipe, the built-in connection and the blocking pipe."""
    levels = [1, 16] if quick else [1, 16, 64, 256]
    words = 1000 if quick else 3000  # deltas ≈ 4 × words
    load_words = 10 if quick else 50  # 50 → ~200 deltas, 10 s at 20 tok/s
    owui = OpenWebUI(built / "openwebui")
    out: dict[str, Any] = {}
    try:
        owui.start()
        register(owui, built, emulator)
        blocking = (REPO / "bench" / "blocking_pipe.py").read_text()
        owui.register_function(BLOCKING_ID, "blocking (anti-pattern)", blocking, "bench anti-pattern", type_hint="pipe")
        owui.set_valves(BLOCKING_ID, {"BASE_URL": emulator.base_url, "MODEL": BACKEND_MODEL})
        if BLOCKING_MODEL not in {m["id"] for m in owui.models()}:
            raise RuntimeError(f"{BLOCKING_MODEL} missing in Open WebUI")
        print(f"Open WebUI {owui.url} up in {owui.startup_seconds:.0f} s\n", flush=True)
        if "relay" in sections:
            print("1. Relay cost (one stream)")
            print(f"  {'path':<34} {'emulator':<11} {'tokens':>6} {'tokens/s':>10} {'TTFT ms':>9} {'ITL p50':>9} "
                  f"{'ITL p99':>9} {'CPU s/1k':>9}")
            out["relay"] = await relay_cost(owui, emulator, pipe_module, words, reps=3, paced_rate=200.0, paced_words=100)
            if profile:
                print("\nProfile of (d), our code path without Open WebUI (cProfile, by own time):")
                print(await profile_pipe(pipe_module, emulator, words))
        if "api" in sections:
            print(f"\n2. Concurrency ({STREAM_RATE:g} tokens/s per stream, /health probed every 50 ms)")
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
            out["load"] = load
    finally:
        owui.stop()
    return out


async def ui_rows(stack_of: Any, built: Path, emulator: EmulatorProcess, levels: list[int], words: int,
                  paths: str = "built-in,pipe") -> list[UIRow]:
    """For each number of chats: the built-in connection, then the pipe, on a fresh stack's shared users."""
    rows: list[UIRow] = []
    with stack_of(built, emulator) as stack:
        print(f"\n{stack.label}: {', '.join(r.url for r in stack.replicas)}", flush=True)
        stack.users = await add_users(stack.replicas[0], max(levels), stack.users)
        print(UI_HEADER, flush=True)
        for chats in levels:
            for path, model in (("built-in connection", CONNECTION_MODEL), ("r1relay pipe", PIPE_MODEL)):
                if path.split()[0].replace("r1relay", "pipe") not in paths.split(","):
                    continue
                row = await ui_run(stack.replicas, stack.users, emulator, path, model, chats, words, stack.label,
                                   stack.redis_url)
                print_ui_row(row)
                rows.append(row)
    return rows


def _rows(data: list[dict], kind: type) -> list:
    return [kind(**row) for row in data]


async def main_async(args: argparse.Namespace) -> int:
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    if sections - set(SECTIONS):
        raise SystemExit(f"--only takes {','.join(SECTIONS)}")
    out_dir = Path(args.out)
    previous = json.loads((out_dir / "results.json").read_text()) if (out_dir / "results.json").exists() else {}
    built = Path(tempfile.mkdtemp(prefix="r1relay-bench-"))
    install.export(built)
    pipe_module = load_function(built / f"{PIPE_ID}.py")
    emulator = EmulatorProcess()
    pipe_valves = {} if args.batch_window_ms is None else {"BATCH_WINDOW_MS": args.batch_window_ms}
    ui_words = 10 if args.quick else 37  # 37 → 150 tokens a chat with the prompt: 5 s at 30 tokens/s
    try:
        found: dict[str, Any] = {}
        if sections & {"relay", "api"}:
            found |= await api_sections(built, emulator, pipe_module, args.quick, sections, args.profile)
        if "splitter" in sections:
            print("\n3. Think splitter (bench/think_splitter.py)")
            found["splitter"] = splitter_bench()
        if "ui" in sections:
            print("\n4. UI path: browser-shaped chats at 30 tokens/s")
            levels = [int(n) for n in args.ui_chats.split(",")]

            def sqlite_of(built: Path, emulator: EmulatorProcess) -> Any:
                return sqlite_stack(built, emulator, pipe_valves)

            found["ui"] = await ui_rows(sqlite_of, built, emulator, levels, ui_words, args.paths)
        if "split" in sections:
            print("\n5. UI path, fixed cost per chat and cost per token (16 chats, short then long)")

            with sqlite_stack(built, emulator, pipe_valves, name="openwebui-split") as stack:
                stack.users = await add_users(stack.replicas[0], 16, stack.users)
                print(UI_HEADER, flush=True)
                found["split"] = await cost_split(stack, emulator, 16)
        if "production" in sections:
            print("\n6. Production-shaped: PostgreSQL + Redis + two Open WebUI replicas")
            levels = [int(n) for n in args.production_chats.split(",")]

            def stack_of(built: Path, emulator: EmulatorProcess) -> Any:
                return production_stack(built, emulator, PRODUCTION_MAX_CONCURRENCY, pipe_valves)

            found["production"] = await ui_rows(stack_of, built, emulator, levels, ui_words, args.paths)
    finally:
        emulator.stop()
    relay = found.get("relay") or _rows(previous.get("relay", []), RelayRow)
    load = found.get("load") or _rows(previous.get("load", []), LoadRow)
    splitter = found.get("splitter") or previous.get("splitter", [])
    ui = found.get("ui") or _rows(previous.get("ui", []), UIRow)
    production = found.get("production") or _rows(previous.get("production", []), UIRow)
    split = found.get("split") or _rows(previous.get("split", []), CostSplit)
    goals = judge(relay, load, ui, production, PRODUCTION_MAX_CONCURRENCY, split)
    print("\nGoals:")
    for goal in goals:
        print(f"  {goal}")
    results = {"relay": [asdict(r) for r in relay], "load": [asdict(r) for r in load], "splitter": splitter,
               "ui": [asdict(r) for r in ui], "production": [asdict(r) for r in production],
               "split": [asdict(r) for r in split], "goals": goals}
    table = markdown(relay, load, splitter, ui + production, goals, split)
    write_outputs(out_dir, table, results, relay, load, ui + production)
    print(table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small load, for a smoke check")
    parser.add_argument("--only", default="", help=f"comma-separated sections to run: {','.join(SECTIONS)}")
    parser.add_argument("--ui-chats", default="16,32,64", help="chats per UI-path row (SQLite, one worker)")
    parser.add_argument("--production-chats", default="128,256", help="chats per production-shaped row")
    parser.add_argument("--batch-window-ms", type=int, help="the pipe's BATCH_WINDOW_MS valve (default: the valve's)")
    parser.add_argument("--paths", default="built-in,pipe", help="which UI paths to run: built-in,pipe")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of our code path")
    parser.add_argument("--out", default=str(REPO / "bench"), help="where results.md and results.json go")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
