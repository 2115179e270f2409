"""The built vLLM pipe inside a real Open WebUI 0.12.4, registered over its REST API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators.vllm import VLLMEmulator
from tests.support.openwebui import OpenWebUI

MODEL_ID = "r1relay_vllm.deepseek-ai/DeepSeek-R1"


@pytest.fixture
def vllm_in_openwebui(openwebui: OpenWebUI, built_dir: Path, vllm_emulator: VLLMEmulator) -> Iterator[OpenWebUI]:
    content = (built_dir / "r1relay_vllm.py").read_text()
    openwebui.register_function("r1relay_vllm", "r1relay vLLM", content, "vLLM pipe", type_hint="pipe")
    openwebui.set_valves("r1relay_vllm", {"BASE_URLS": vllm_emulator.base_url, "API_KEY": "", "MODELS": ""})
    openwebui.models()  # as a page load does: chats look models up in the list fetched last (a lone test failed)
    yield openwebui


def deltas(chunks: list[dict], field: str) -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c.get("choices"))


def test_models_are_listed_and_a_chat_streams_thinking_apart(vllm_in_openwebui: OpenWebUI) -> None:
    ids = [m["id"] for m in vllm_in_openwebui.models()]
    assert MODEL_ID in ids

    chunks = vllm_in_openwebui.chat(MODEL_ID, [{"role": "user", "content": "Hello"}])
    assert deltas(chunks, "reasoning_content") == "Okay, the user greets me.\nI should greet back.\n"
    assert deltas(chunks, "content") == "Hello! How can I help you today?"
    assert not [c for c in chunks if "error" in c]


def test_backend_faults_reach_the_client_as_one_sentence(vllm_in_openwebui: OpenWebUI, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.fault = "drop_mid_stream"
    chunks = vllm_in_openwebui.chat(MODEL_ID, [{"role": "user", "content": "Hello"}])
    errors = [c["error"] for c in chunks if "error" in c]
    assert deltas(chunks, "reasoning_content").startswith("Okay, the user")
    assert len(errors) == 1 and "dropped mid-answer" in str(errors[0])
    assert vllm_in_openwebui.api("GET", "/health").ok


def test_stop_in_open_webui_closes_the_backend_request(vllm_in_openwebui: OpenWebUI, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.token_delay = 0.05
    vllm_emulator.script = "thinking " * 2000
    chat_id, task_ids = vllm_in_openwebui.start_chat_task(MODEL_ID, [{"role": "user", "content": "Think long"}])
    assert task_ids
    for _ in range(500):
        if vllm_emulator.requests:
            break
        time.sleep(0.02)
    assert vllm_emulator.requests, "the pipe never called the backend"
    time.sleep(0.3)  # let a few tokens flow
    vllm_in_openwebui.stop_chat(chat_id)
    stopped_at = time.monotonic()
    for _ in range(150):
        if vllm_emulator.disconnects:
            break
        time.sleep(0.02)
    assert vllm_emulator.disconnects, "the backend kept generating after Stop"
    assert vllm_emulator.disconnects[0] - stopped_at < 1.0
    assert vllm_emulator.finished == 0


def test_a_users_own_key_is_used_for_that_user_only(vllm_in_openwebui: OpenWebUI, vllm_emulator: VLLMEmulator) -> None:
    vllm_emulator.api_key = "sk-alice-own-key-1"
    # Without an admin key the backend's model list is closed to the pipe: the admin names the model.
    vllm_in_openwebui.set_valves("r1relay_vllm", {"MODELS": "deepseek-ai/DeepSeek-R1"})
    suffix = time.monotonic_ns()
    alice = vllm_in_openwebui.create_user("Alice", f"alice{suffix}@example.com", "alice-pass-123")
    bob = vllm_in_openwebui.create_user("Bob", f"bob{suffix}@example.com", "bob-pass-123")
    vllm_in_openwebui.set_user_valves("r1relay_vllm", {"API_KEY": "sk-alice-own-key-1"}, token=alice)
    # Admin > Models: the admin sees the pipe's model and makes it public, as for any plain user.
    assert MODEL_ID in [m["id"] for m in vllm_in_openwebui.models()]
    public = [{"principal_type": "user", "principal_id": "*", "permission": "read"}]
    form = {"id": MODEL_ID, "name": "DeepSeek-R1", "meta": {}, "params": {}, "access_grants": public}
    created = vllm_in_openwebui.api("POST", "/api/v1/models/create", json=form, check=False)
    assert created.ok or "taken" in created.text.lower(), created.text
    for token in (alice, bob):
        listed = [m["id"] for m in vllm_in_openwebui.models(token=token)]
        assert MODEL_ID in listed, listed

    alice_chunks = vllm_in_openwebui.chat(MODEL_ID, [{"role": "user", "content": "Hi"}], token=alice)
    bob_chunks = vllm_in_openwebui.chat(MODEL_ID, [{"role": "user", "content": "Hi"}], token=bob)

    assert deltas(alice_chunks, "content") == "Hello! How can I help you today?"
    bob_errors = [str(c["error"]) for c in bob_chunks if "error" in c]
    assert len(bob_errors) == 1 and "rejected the API key" in bob_errors[0]
    assert [r["headers"].get("Authorization") for r in vllm_emulator.requests] == ["Bearer sk-alice-own-key-1"]
    assert vllm_emulator.refused_auth == ["Bearer EMPTY"]  # Bob's request carried no key of Alice's
    assert "sk-alice-own-key-1" not in repr(bob_chunks)
