"""The built context-fit filter against the vLLM emulator, which enforces `max_model_len` and counts like /tokenize.

Open WebUI 0.12.4 calls `inlet(body=form_data, **extra)` (utils/filter.py
get_filter_params) after applying the model's params, so `body` holds
`max_tokens` when one is set; an exception raised there becomes the chat's
error text (main.py process_chat → `chat:message:error`).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installer import bundle
from tests.emulators.vllm import VLLMEmulator, count_prompt_tokens
from tests.emulators.vllm_variants import VLLMWithoutTokenize
from tests.support.built import load_function_source

MODEL = "deepseek-ai/DeepSeek-R1"
LIMIT = 300
MAX_TOKENS = 50


@pytest.fixture(scope="module")
def context_fit() -> types.ModuleType:
    spec = next(s for s in bundle.FUNCTIONS if s.id == "r1relay_context_fit")
    return load_function_source(spec.id, bundle.build_function(spec))


@pytest.fixture
def small_vllm() -> Iterator[VLLMEmulator]:
    emulator = VLLMEmulator(max_model_len=LIMIT).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def vllm_without_tokenize() -> Iterator[VLLMEmulator]:
    emulator = VLLMWithoutTokenize(max_model_len=LIMIT).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def long_chat(turns: int = 12, last: str = "And now, what is the answer to my final question?") -> list[dict]:
    messages = [{"role": "system", "content": "You are a careful assistant. Answer briefly."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question number {i}: tell me something about topic {i} please."})
        messages.append({"role": "assistant", "content": f"Here is something about topic {i}, in a few short words."})
    messages.append({"role": "user", "content": last})
    return messages


def connection_model(max_model_len: int | None = None) -> dict:
    """`__model__` of an admin OpenAI-connection model; vLLM's /v1/models entry sits under `openai`."""
    upstream: dict = {"id": MODEL, "object": "model", "owned_by": "vllm"}
    if max_model_len:
        upstream["max_model_len"] = max_model_len
    return {**upstream, "name": MODEL, "owned_by": "openai", "openai": upstream, "urlIdx": 0}


class Inlet:
    def __init__(self) -> None:
        self.statuses: list[dict] = []

    async def emit(self, event: dict) -> None:
        if event.get("type") == "status":
            self.statuses.append(event["data"])

    async def __call__(self, filt: Any, body: dict, model: dict) -> dict:
        """utils/filter.py get_filter_params + run_filter_handler for filter_type='inlet'."""
        extra = {
            "__event_emitter__": self.emit,
            "__event_call__": None,
            "__user__": {"id": "u", "role": "user"},
            "__metadata__": {"chat_id": "c", "message_id": "m"},
            "__model__": model,
            "__chat_id__": "c",
            "__message_id__": "m",
            "__id__": "r1relay_context_fit",
        }
        sig = inspect.signature(filt.inlet)
        return await filt.inlet(body=body, **{k: v for k, v in extra.items() if k in sig.parameters})


def make_filter(module: types.ModuleType, **valves: Any) -> Any:
    filt = module.Filter()
    filt.valves = module.Filter.Valves(**valves)
    return filt


def accepted(emulator: VLLMEmulator, messages: list[dict], max_tokens: int = MAX_TOKENS) -> httpx.Response:
    return httpx.post(
        f"{emulator.base_url}/chat/completions",
        json={"model": MODEL, "messages": messages, "max_tokens": max_tokens},
        timeout=10,
    )


def assert_shape_kept(original: list[dict], kept: list[dict]) -> None:
    assert kept[0] == original[0], "the system prompt stays"
    assert kept[-1] == original[-1], "the latest user message stays"
    middle = kept[1:-1]
    assert [m["role"] for m in middle] == ["user", "assistant"] * (len(middle) // 2), "turns stay whole"
    assert middle == original[len(original) - 1 - len(middle) : -1], "the newest turns are the ones kept"


async def test_long_chat_is_trimmed_by_exact_counts_and_then_accepted(context_fit, small_vllm: VLLMEmulator) -> None:
    messages = long_chat()
    assert accepted(small_vllm, messages).status_code == 400, "the emulator rejects the untrimmed chat"
    run = Inlet()
    filt = make_filter(context_fit, BASE_URL=small_vllm.base_url)
    body = await run(filt, {"model": MODEL, "messages": list(messages), "max_tokens": MAX_TOKENS}, connection_model())
    kept = body["messages"]
    assert_shape_kept(messages, kept)
    assert count_prompt_tokens(kept) + MAX_TOKENS <= LIMIT
    one_more = [messages[0], *messages[len(messages) - len(kept) - 2 :]]
    assert count_prompt_tokens(one_more) + MAX_TOKENS > LIMIT, "no turn was dropped needlessly"
    assert accepted(small_vllm, kept).status_code == 200
    dropped = (len(messages) - len(kept)) // 2
    assert [s["description"] for s in run.statuses] == [
        f"Dropped the {dropped} oldest turns of this chat to fit the model's {LIMIT}-token context window."
    ]
    assert run.statuses[-1]["done"] is True


async def test_estimate_mode_without_tokenize_errs_safe_and_is_accepted(
    context_fit, vllm_without_tokenize: VLLMEmulator
) -> None:
    messages = long_chat()
    run = Inlet()
    filt = make_filter(context_fit, BASE_URL=vllm_without_tokenize.url)  # limit from /v1/models, counts estimated
    body = await run(filt, {"model": MODEL, "messages": list(messages), "max_tokens": MAX_TOKENS}, connection_model())
    assert_shape_kept(messages, body["messages"])
    assert accepted(vllm_without_tokenize, body["messages"]).status_code == 200
    assert "oldest turns" in run.statuses[-1]["description"]


async def test_limit_reported_through_open_webui_needs_no_base_url(context_fit, small_vllm: VLLMEmulator) -> None:
    messages = long_chat()
    body = await Inlet()(
        make_filter(context_fit), {"model": MODEL, "messages": list(messages)}, connection_model(LIMIT)
    )
    assert_shape_kept(messages, body["messages"])
    reserve = min(context_fit.Filter.Valves().RESERVE_TOKENS, LIMIT // 4)  # the default is capped for small models
    assert count_prompt_tokens(body["messages"]) + reserve <= LIMIT
    assert accepted(small_vllm, body["messages"], max_tokens=reserve).status_code == 200


async def test_reserve_comes_from_the_valve_without_max_tokens(context_fit, small_vllm: VLLMEmulator) -> None:
    messages = long_chat()
    filt = make_filter(context_fit, BASE_URL=small_vllm.base_url, RESERVE_TOKENS=70)
    body = await Inlet()(filt, {"model": MODEL, "messages": list(messages)}, connection_model())
    assert count_prompt_tokens(body["messages"]) + 70 <= LIMIT
    assert accepted(small_vllm, body["messages"], max_tokens=70).status_code == 200


async def test_a_single_message_too_long_gets_one_sentence(context_fit, small_vllm: VLLMEmulator) -> None:
    messages = long_chat(turns=2, last="word " * 400)
    filt = make_filter(context_fit, BASE_URL=small_vllm.base_url)
    with pytest.raises(Exception) as caught:
        await Inlet()(filt, {"model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS}, connection_model())
    text = str(caught.value)
    assert text.startswith("This message is too long for the model")
    assert text.endswith(".") and text.count(". ") == 0 and "\n" not in text, "one sentence"
    assert f"holds {LIMIT}" in text and f"{MAX_TOKENS} of them" in text


async def test_a_chat_that_fits_is_untouched(context_fit, small_vllm: VLLMEmulator) -> None:
    messages = long_chat(turns=1)
    run = Inlet()
    body = {"model": MODEL, "messages": list(messages), "max_tokens": MAX_TOKENS}
    result = await run(make_filter(context_fit, BASE_URL=small_vllm.base_url), body, connection_model())
    assert result["messages"] == messages and run.statuses == []


async def test_unknown_limit_leaves_the_chat_alone_and_max_context_is_the_fallback(context_fit) -> None:
    messages = long_chat()
    unknown = await Inlet()(make_filter(context_fit), {"model": MODEL, "messages": list(messages)}, connection_model())
    assert unknown["messages"] == messages
    filt = make_filter(context_fit, MAX_CONTEXT=LIMIT, RESERVE_TOKENS=MAX_TOKENS)
    fallback = await Inlet()(filt, {"model": MODEL, "messages": list(messages)}, connection_model())
    assert_shape_kept(messages, fallback["messages"])
    assert count_prompt_tokens(fallback["messages"]) + MAX_TOKENS <= LIMIT


async def test_models_valve_limits_which_models_are_fitted(context_fit) -> None:
    messages = long_chat()
    filt = make_filter(context_fit, MAX_CONTEXT=LIMIT, MODELS="other-*")
    body = await Inlet()(filt, {"model": MODEL, "messages": list(messages)}, connection_model())
    assert body["messages"] == messages


async def test_api_key_reaches_vllm_and_never_the_user(context_fit) -> None:
    secret = "sk-context-secret-1234"
    emulator = VLLMEmulator(max_model_len=LIMIT, api_key=secret).start()
    try:
        run = Inlet()
        filt = make_filter(context_fit, BASE_URL=emulator.base_url, API_KEY=secret)
        body = await run(filt, {"model": MODEL, "messages": long_chat(), "max_tokens": MAX_TOKENS}, connection_model())
        assert count_prompt_tokens(body["messages"]) + MAX_TOKENS <= LIMIT
        assert secret not in repr(run.statuses)
    finally:
        emulator.stop()


async def test_unreachable_base_url_falls_back_to_the_estimate(context_fit) -> None:
    messages = long_chat()
    filt = make_filter(context_fit, BASE_URL="http://127.0.0.1:9", MAX_CONTEXT=LIMIT, RESERVE_TOKENS=MAX_TOKENS)
    body = await Inlet()(filt, {"model": MODEL, "messages": list(messages)}, connection_model())
    assert count_prompt_tokens(body["messages"]) + MAX_TOKENS <= LIMIT


def test_turns_keep_tool_replies_with_their_question(context_fit) -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "Welcome!"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "calling", "tool_calls": []},
        {"role": "tool", "content": "result"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    turns = context_fit.ChatTurns.of(messages)
    assert turns.turns == ((1,), (2, 3, 4, 5))
    assert turns.kept(1) == [0, 2, 3, 4, 5, 6]
    assert turns.kept(2) == [0, 6]


message_strategy = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=300)}
)


@settings(max_examples=300, deadline=None)
@given(st.lists(message_strategy, min_size=1, max_size=6))
def test_estimate_never_undercounts_the_emulator(context_fit, messages: list[dict]) -> None:
    assert context_fit.estimate_tokens(messages) >= count_prompt_tokens(messages)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>/think\n\t.,1é答😀")), max_size=400))
def test_estimate_never_undercounts_tag_and_space_heavy_text(context_fit, text: str) -> None:
    messages = [{"role": "user", "content": text}]
    assert context_fit.estimate_tokens(messages) >= count_prompt_tokens(messages)
