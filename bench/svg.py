"""docs/bench.svg, drawn by hand (no plotting library needed on a fresh clone)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

WIDTH, HEIGHT = 980, 760
COLORS = {"(a)": "#7f8c8d", "(b)": "#2980b9", "(c)": "#27ae60", "(d)": "#8e44ad"}
ASYNC, BLOCKING = "#27ae60", "#c0392b"
BUILTIN = "#2980b9"


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "middle", weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'font-family="sans-serif">{escape(text)}</text>')


def _bar(x: float, y: float, w: float, h: float, color: str) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{max(h, 0.5):.1f}" fill="{color}"/>'


def _throughput_panel(relay: list[Any], x0: float, y0: float, w: float, h: float) -> list[str]:
    rows = [r for r in relay if r.mode == "max"]
    if not rows:
        return []
    top = max(r.tokens_per_s for r in rows) * 1.15 or 1.0
    out = [_text(x0 + w / 2, y0 - 12, "One stream, emulator at full speed: tokens/s", 14, weight="bold")]
    out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#333"/>')
    step = w / len(rows)
    for i, r in enumerate(rows):
        bh = r.tokens_per_s / top * h
        x = x0 + i * step + step * 0.2
        out.append(_bar(x, y0 + h - bh, step * 0.6, bh, COLORS.get(r.path[:3], "#555")))
        out.append(_text(x + step * 0.3, y0 + h - bh - 5, f"{r.tokens_per_s:,.0f}", 11))
        label = r.path[4:]
        out.append(_text(x + step * 0.3, y0 + h + 16, r.path[:3], 11, weight="bold"))
        for j, part in enumerate(_wrap(label, 18)):
            out.append(_text(x + step * 0.3, y0 + h + 30 + 13 * j, part, 10))
    return out


def _health_panel(load: list[Any], x0: float, y0: float, w: float, h: float) -> list[str]:
    levels = sorted({r.streams for r in load})
    if not levels:
        return []
    by = {(r.pipe.split()[0], r.streams): r for r in load}
    top = max([r.health_p99_ms for r in load] + [60.0]) * 1.15
    out = [_text(x0 + w / 2, y0 - 12, "Open WebUI /health p99 (ms) while N streams run at 20 tok/s", 14, weight="bold")]
    out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#333"/>')
    goal_y = y0 + h - 50 / top * h
    out.append(f'<line x1="{x0}" y1="{goal_y:.1f}" x2="{x0 + w}" y2="{goal_y:.1f}" stroke="#e67e22" stroke-dasharray="5,4"/>')
    out.append(_text(x0 + w - 2, goal_y - 4, "goal 50 ms", 10, anchor="end"))
    step = w / max(len(levels), 1)
    for i, n in enumerate(levels):
        for j, (name, color) in enumerate((("r1relay", ASYNC), ("blocking", BLOCKING))):
            r = by.get((name, n))
            if r is None:
                continue
            bh = min(r.health_p99_ms, top) / top * h
            x = x0 + i * step + step * (0.15 + 0.35 * j)
            out.append(_bar(x, y0 + h - bh, step * 0.32, bh, color))
            out.append(_text(x + step * 0.16, y0 + h - bh - 4, f"{r.health_p99_ms:.0f}", 10))
        out.append(_text(x0 + i * step + step / 2, y0 + h + 16, f"{n} streams", 11))
    out.append(_bar(x0 + 10, y0 + h + 30, 12, 12, ASYNC))
    out.append(_text(x0 + 28, y0 + h + 40, "r1relay (async pipe)", 11, anchor="start"))
    out.append(_bar(x0 + 170, y0 + h + 30, 12, 12, BLOCKING))
    out.append(_text(x0 + 188, y0 + h + 40, "blocking pipe (sync requests, anti-pattern)", 11, anchor="start"))
    return out


def _ui_panel(ui: list[Any], x0: float, y0: float, w: float, h: float) -> list[str]:
    """Per setup and number of chats: Open WebUI CPU per 1,000 tokens, built-in connection vs pipe, with the delay."""
    groups = list(dict.fromkeys((r.setup, r.chats) for r in ui))
    if not groups:
        return []
    by = {(r.setup, r.chats, r.path): r for r in ui}
    top = max(r.cpu_per_1k for r in ui) * 1.25 or 1.0
    out = [_text(x0 + w / 2, y0 - 28, "UI path (saved chats, socket.io), 30 tok/s per chat: Open WebUI CPU s per "
                 "1,000 tokens (lower is better)", 13, weight="bold"),
           _text(x0 + w / 2, y0 - 12, "above each bar: p99 added delay, chats saved byte-exact", 12)]
    out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#333"/>')
    step = w / len(groups)
    for i, (setup, chats) in enumerate(groups):
        for j, (path, color) in enumerate((("built-in connection", BUILTIN), ("r1relay pipe", ASYNC))):
            r = by.get((setup, chats, path))
            if r is None:
                continue
            bh = r.cpu_per_1k / top * h
            x = x0 + i * step + step * (0.12 + 0.38 * j)
            out.append(_bar(x, y0 + h - bh, step * 0.34, bh, color))
            out.append(_text(x + step * 0.17, y0 + h - bh - 28, f"{r.cpu_per_1k:.2f} s", 10, weight="bold"))
            out.append(_text(x + step * 0.17, y0 + h - bh - 16, f"{r.delay_p99_ms:.0f} ms", 10))
            out.append(_text(x + step * 0.17, y0 + h - bh - 4, f"{r.exact}/{r.chats}", 10))
        short = "SQLite" if setup.startswith("SQLite") else "PG+Redis ×2"
        out.append(_text(x0 + i * step + step / 2, y0 + h + 16, f"{chats} chats", 11))
        out.append(_text(x0 + i * step + step / 2, y0 + h + 30, short, 10))
    out.append(_bar(x0 + 10, y0 + h + 44, 12, 12, BUILTIN))
    out.append(_text(x0 + 28, y0 + h + 54, "Open WebUI's own OpenAI connection", 11, anchor="start"))
    out.append(_bar(x0 + 260, y0 + h + 44, 12, 12, ASYNC))
    out.append(_text(x0 + 278, y0 + h + 54, "r1relay pipe (goal: ≤ 0.5× the connection's CPU, p99 delay ≤ 100 ms)", 11,
                     anchor="start"))
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def write_svg(path: Path, relay: list[Any], load: list[Any], ui: list[Any] | None = None) -> None:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    parts += _throughput_panel(relay, 40, 50, 400, 240)
    parts += _health_panel(load, 530, 50, 420, 240)
    parts += _ui_panel(ui or [], 40, 440, 900, 220)
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")
