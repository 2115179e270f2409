"""The context-fit filter inside a real Open WebUI: a long chat to a small-context vLLM is trimmed before it leaves.

The other context-fit tests call the built filter's `inlet` the way Open WebUI would; this one lets Open WebUI
do it (filter installed active and global, the vLLM emulator added as an admin OpenAI connection whose
`/v1/models` entry carries `max_model_len`), so a release that calls inlets differently fails here.
`make compat` runs it on every supported release.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from installer import bundle
from tests.emulators.vllm import VLLMEmulator, count_prompt_tokens
from tests.support.openwebui import OpenWebUI
from tests.test_context_fit_filter import LIMIT, MODEL, long_chat

FILTER_ID = "r1relay_context_fit"


@pytest.fixture
def fitted(openwebui: OpenWebUI) -> Iterator[tuple[OpenWebUI, VLLMEmulator]]:
    """The shared server with the filter (global) and a 300-token vLLM connection; both taken away afterwards."""
    emulator = VLLMEmulator(max_model_len=LIMIT).start()
    connections = openwebui.json("GET", "/openai/config")
    spec = next(s for s in bundle.FUNCTIONS if s.id == FILTER_ID)
    try:
        openwebui.register_function(
            FILTER_ID, "Context fit", bundle.build_function(spec), "test", type_hint="filter", is_global=True
        )
        openwebui.add_openai_connection(emulator.base_url)
        assert MODEL in {m["id"] for m in openwebui.models()}, "the connection's model is listed"
        yield openwebui, emulator
    finally:
        openwebui.delete_function(FILTER_ID)
        openwebui.api("POST", "/openai/config/update", json=connections, check=False)
        emulator.stop()


def test_a_long_chat_is_trimmed_by_open_webui_and_answered(fitted: tuple[OpenWebUI, VLLMEmulator]) -> None:
    ui, emulator = fitted
    messages = long_chat()
    assert count_prompt_tokens(messages) > LIMIT, "untrimmed, the backend would refuse it"
    chunks = ui.chat(MODEL, messages)
    answer = "".join((c.get("choices") or [{}])[0].get("delta", {}).get("content") or "" for c in chunks)
    assert answer, f"no answer streamed: {chunks[:3]}"
    sent = emulator.requests[-1]["body"]["messages"]
    assert sent[0] == messages[0] and sent[-1] == messages[-1], "system prompt and the question kept"
    assert len(sent) < len(messages) and count_prompt_tokens(sent) <= LIMIT


def test_one_message_too_long_is_one_sentence_and_never_reaches_the_backend(
    fitted: tuple[OpenWebUI, VLLMEmulator],
) -> None:
    ui, emulator = fitted
    before = len(emulator.requests)
    messages = long_chat(turns=1, last="word " * 400)
    if ui.version >= (0, 10):  # API callers get the inlet's exception as HTTP 400
        refused = ui.api("POST", "/api/chat/completions", json={"model": MODEL, "stream": True, "messages": messages}, check=False)
        assert refused.status_code == 400, refused.text[:500]
        error = refused.json()["detail"]
    else:  # before 0.10 API callers get `200 null`; a chat (what users run) shows and stores the error
        chat_id, _ = ui.start_chat_task(MODEL, messages)
        for _ in range(300):
            if not ui.chat_task_ids(chat_id):
                break
            time.sleep(0.2)
        stored = ui.json("GET", f"/api/v1/chats/{chat_id}")["chat"]["history"]["messages"]
        error = next(m["error"]["content"] for m in stored.values() if m.get("error"))
    assert error.startswith("This message is too long for the model")
    assert len(emulator.requests) == before
