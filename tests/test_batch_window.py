"""Batching under load: fewer chunks, and never a lost, reordered or boundary-crossing piece, never a held last token.

The window is only a ceiling: these tests open it very wide (an hour) where they
prove something closes a batch at once, so a batch that waited for the window
would hang the test (bounded by `asyncio.wait_for`) instead of passing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_adapters.batch_window import FULL_WINDOW_AT, LiveStreams, batch_window
from backend_adapters.coalesce import coalesced
from backend_adapters.events import Content, Event, Finish, Reasoning, ToolCall, Usage

HOUR = 3600.0
BOUND = 10.0  # seconds a step may take before the test fails instead of hanging


@pytest.fixture
def busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """As many other live streams as open the window fully."""
    monkeypatch.setattr(LiveStreams, "count", FULL_WINDOW_AT)


async def paced(events: list[Event], pause: float = 0.0, hold: asyncio.Event | None = None,
                after_hold: list[Event] | None = None) -> AsyncIterator[Event]:
    for event in events:
        if pause:
            await asyncio.sleep(pause)
        yield event
    if hold is not None:
        await hold.wait()  # the backend goes quiet with the connection open
        for event in after_hold or []:
            yield event


def texts(out: list[tuple[Event, int]], kind: type) -> str:
    return "".join(e.text for e, _ in out if isinstance(e, kind))  # type: ignore[attr-defined]


def test_the_window_is_closed_for_a_lone_stream_and_widens_with_live_streams() -> None:
    assert batch_window(0.08, 1) == 0.0
    assert 0.0 < batch_window(0.08, 2) < batch_window(0.08, 4) < batch_window(0.08, FULL_WINDOW_AT) == 0.08
    assert batch_window(0.08, 10 * FULL_WINDOW_AT) == 0.08
    assert batch_window(0.0, 100) == 0.0


async def test_under_load_pieces_go_out_in_fewer_chunks_nothing_lost_reordered_or_merged_across_the_boundary(busy) -> None:
    reasoning = [Reasoning(f"r{i} ") for i in range(40)]
    content = [Content(f"c{i} ") for i in range(40)]
    events: list[Event] = [*reasoning, *content, Usage(3, 80), Finish("stop")]
    out = [item async for item in coalesced(paced(events, pause=0.004), max_window=0.05)]
    assert len(out) < len(events)  # batched: the consumer kept up, so only the window merged pieces
    assert texts(out, Reasoning) == "".join(e.text for e in reasoning)
    assert texts(out, Content) == "".join(e.text for e in content)
    assert sum(n for e, n in out if isinstance(e, (Reasoning, Content))) == 80
    kinds = [type(e).__name__ for e, _ in out]
    switch = kinds.index("Content")
    assert set(kinds[:switch]) == {"Reasoning"} and set(kinds[switch:-2]) == {"Content"}  # one boundary, kept
    assert kinds[-2:] == ["Usage", "Finish"]


async def test_a_lone_stream_never_waits() -> None:
    events: list[Event] = [Content(f"c{i} ") for i in range(15)]
    out = [item async for item in coalesced(paced(events, pause=0.005), max_window=HOUR)]
    assert [e for e, _ in out] == events  # one live stream: a window of an hour stays shut


async def test_the_thinking_answer_boundary_sends_the_thinking_at_once(busy) -> None:
    hold = asyncio.Event()
    stream = coalesced(paced([Reasoning("a"), Reasoning("b"), Content("c")], hold=hold, after_hold=[Content("d")]),
                       max_window=HOUR)
    first = await asyncio.wait_for(anext(stream), BOUND)  # the answer's first piece closed the thinking's batch
    assert first == (Reasoning("ab"), 2)
    hold.set()
    rest = [item async for item in stream]
    assert rest == [(Content("cd"), 2)]


async def test_the_last_token_goes_out_with_the_end_of_the_answer_not_the_window(busy) -> None:
    hold = asyncio.Event()  # the backend has finished but keeps the connection open: the stream has not ended yet
    stream = coalesced(paced([Content("x"), Content("y"), Usage(1, 2), Finish("stop")], hold=hold), max_window=HOUR)
    got = [await asyncio.wait_for(anext(stream), BOUND) for _ in range(3)]
    assert got == [(Content("xy"), 2), (Usage(1, 2), 1), (Finish("stop"), 1)]
    hold.set()
    assert [item async for item in stream] == []


async def test_the_end_of_the_stream_closes_the_batch_at_once(busy) -> None:
    events: list[Event] = [Reasoning("think "), Content("last")]
    out = await asyncio.wait_for(_collect(coalesced(paced(events), max_window=HOUR)), BOUND)
    assert out == [(Reasoning("think "), 1), (Content("last"), 1)]


async def test_two_tool_calls_never_share_a_batch(busy) -> None:
    hold = asyncio.Event()
    calls: list[Event] = [ToolCall(0, "", id="a", name="f"), ToolCall(0, '{"x"'), ToolCall(0, ": 1}"),
                          ToolCall(1, "", id="b", name="g")]
    stream = coalesced(paced(calls, hold=hold, after_hold=[ToolCall(1, "{}")]), max_window=HOUR)
    first = await asyncio.wait_for(anext(stream), BOUND)
    assert first == (ToolCall(0, '{"x": 1}', id="a", name="f"), 3)
    hold.set()
    assert [item async for item in stream] == [(ToolCall(1, "{}", id="b", name="g"), 2)]


async def _collect(stream: AsyncIterator[tuple[Event, int]]) -> list[tuple[Event, int]]:
    return [item async for item in stream]


PIECES = st.lists(
    st.tuples(st.sampled_from(["reasoning", "content", "usage"]), st.text("ab \n", min_size=1, max_size=4),
              st.sampled_from([0.0, 0.0, 0.001, 0.003])),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(pieces=PIECES, live=st.integers(1, 2 * FULL_WINDOW_AT))
def test_any_stream_at_any_load_comes_out_whole_and_in_order(pieces: list[tuple[str, str, float]], live: int) -> None:
    def event(kind: str, text: str) -> Event:
        return Reasoning(text) if kind == "reasoning" else Content(text) if kind == "content" else Usage(1, len(text))

    async def source() -> AsyncIterator[Event]:
        for kind, text, pause in pieces:
            if pause:
                await asyncio.sleep(pause)
            yield event(kind, text)

    async def run() -> list[tuple[Event, int]]:
        LiveStreams.count = live - 1
        try:
            return await asyncio.wait_for(_collect(coalesced(source(), max_window=0.01)), BOUND)
        finally:
            LiveStreams.count = 0

    out = asyncio.run(run())
    # Merging adjacent pieces of one kind in the input gives exactly the output: nothing lost, reordered or crossed.
    runs: list[tuple[str, str, int]] = []
    for kind, text, _ in pieces:
        if runs and kind == runs[-1][0] and kind != "usage":
            runs[-1] = (kind, runs[-1][1] + text, runs[-1][2] + 1)
        else:
            runs.append((kind, text if kind != "usage" else str(len(text)), 1))
    merged: list[tuple[str, str, int]] = []
    for e, n in out:
        kind = "reasoning" if isinstance(e, Reasoning) else "content" if isinstance(e, Content) else "usage"
        text = e.text if isinstance(e, (Reasoning, Content)) else str(e.completion_tokens)  # type: ignore[union-attr]
        if merged and kind == merged[-1][0] and kind != "usage":
            merged[-1] = (kind, merged[-1][1] + text, merged[-1][2] + n)
        else:
            merged.append((kind, text, n))
    assert merged == runs
