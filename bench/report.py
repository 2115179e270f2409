"""The bench's outputs: the markdown table, the goals met or missed, results.json and docs/bench.svg."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.api_concurrency import STREAM_RATE, LoadRow
from bench.common import REPO
from bench.relay_cost import RelayRow
from bench.svg import write_svg
from bench.ui_chats import UI_RATE, UIRow
from bench.ui_cost_split import CostSplit, split_goal, split_table


def markdown(relay: list[RelayRow], load: list[LoadRow], splitter: list[dict[str, Any]], ui: list[UIRow], goals: list[str],
             split: list[CostSplit] | None = None) -> str:
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
    lines += ["", *ui_table(ui)]
    lines += ["", *split_table(split or [])]
    lines += ["", *[f"- {g}" for g in goals]]
    return "\n".join(lines) + "\n"


def judge(relay: list[RelayRow], load: list[LoadRow], ui: list[UIRow], production: list[UIRow], max_concurrency: int,
          split: list[CostSplit] | None = None) -> list[str]:
    goals = []
    fast = {r.path[:3]: r for r in relay if r.mode == "max"}
    if "(c)" in fast and "(b)" in fast:
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
    goals += ui_goals(ui, (16, 32), health_goal_ms=None)
    goals += split_goal(split or [])
    goals += ui_goals(production, (128, 256), health_goal_ms=200.0)
    for row in production:
        if row.path == "r1relay pipe":
            ok = row.peak_backend_streams <= max_concurrency
            goals.append(f"MAX_CONCURRENCY={max_concurrency} held across both replicas at {row.chats} chats: "
                         f"{'met' if ok else 'MISSED'} (the backend saw at most {row.peak_backend_streams} at once)")
            goals.append(f"every queue ticket left Redis after the {row.chats}-chat row: "
                         f"{'met' if row.slots_left == 0 else 'MISSED'} ({row.slots_left} left 5 s after the last chat)")
    return goals


def _pairs(rows: list[UIRow]) -> dict[int, dict[str, UIRow]]:
    pairs: dict[int, dict[str, UIRow]] = {}
    for row in rows:
        pairs.setdefault(row.chats, {})[row.path] = row
    return pairs


def ui_goals(rows: list[UIRow], levels: tuple[int, ...], health_goal_ms: float | None) -> list[str]:
    """Issue 11's goals for the UI path, per number of chats: met or missed, with the figure and the reason."""
    goals = []
    for chats, pair in sorted(_pairs(rows).items()):
        if chats not in levels or len(pair) < 2:
            continue
        builtin, pipe = pair["built-in connection"], pair["r1relay pipe"]
        where = f"{pipe.setup}, {chats} chats"
        ratio = pipe.cpu_per_1k / builtin.cpu_per_1k if builtin.cpu_per_1k else float("nan")
        goals.append(f"{where}: pipe CPU per token ≤ 0.5× the built-in connection's: "
                     f"{'met' if ratio <= 0.5 else 'MISSED'} ({ratio:.2f}×: {pipe.cpu_per_1k:.2f} vs {builtin.cpu_per_1k:.2f} s per 1,000 tokens)")
        ok = pipe.exact == pipe.chats
        goals.append(f"{where}: every chat saved byte-exact through the pipe: {'met' if ok else 'MISSED'} "
                     f"({pipe.exact}/{pipe.chats}; built-in connection {builtin.exact}/{builtin.chats})"
                     + ("" if ok else f"; first error: {pipe.first_error or builtin.first_error or 'none reported'}"))
        goals.append(f"{where}: added delay p99 ≤ 100 ms through the pipe: {'met' if pipe.delay_p99_ms <= 100 else 'MISSED'} "
                     f"({pipe.delay_p99_ms:.0f} ms; built-in connection {builtin.delay_p99_ms:.0f} ms)")
        if health_goal_ms is not None:
            worst = max(pipe.health_p99_by_replica or [pipe.health_p99_ms])
            goals.append(f"{where}: /health p99 < {health_goal_ms:.0f} ms on each replica through the pipe: "
                         f"{'met' if worst < health_goal_ms else 'MISSED'} "
                         f"({' / '.join(f'{p:.0f}' for p in pipe.health_p99_by_replica)} ms)")
    return goals


def ui_table(rows: list[UIRow]) -> list[str]:
    if not rows:
        return []
    lines = [f"| UI path, chats × {UI_RATE:g} tok/s | setup | chats | saved byte-exact / finished | errors | "
             "Open WebUI CPU s / 1k tokens | /health p50 ms | /health p99 ms (per replica) | added delay p50 ms | "
             "added delay p99 ms | backend peak streams | load (1/5/15 min) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.path} | {r.setup} | {r.chats} | {r.exact}/{r.finished} | {r.errors} | {r.cpu_per_1k:.3f} | "
                     f"{r.health_p50_ms:.1f} | {' / '.join(f'{p:.0f}' for p in r.health_p99_by_replica)} | "
                     f"{r.delay_p50_ms:.0f} | {r.delay_p99_ms:.0f} | {r.peak_backend_streams} | {r.load} |")
    return lines


def write_outputs(out_dir: Path, table: str, results: dict[str, Any], relay: list[RelayRow], load: list[LoadRow], ui: list[UIRow]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(table)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    svg = REPO / "docs" / "bench.svg" if out_dir.resolve() == (REPO / "bench").resolve() else out_dir / "bench.svg"
    write_svg(svg, relay, load, ui)
    print(f"\nWrote {out_dir / 'results.md'}, {out_dir / 'results.json'}, {svg}\n")
