"""All three built pipes in a real Open WebUI: listed in the model picker's API, and a real backend answering."""

from __future__ import annotations

from pathlib import Path

from tests.emulators.ktransformers import KTransformersEmulator
from tests.support.fixtures_models import FlaskBackend
from tests.support.openwebui import OpenWebUI

PIPES = {"r1relay_vllm": "r1relay vLLM", "r1relay_ktransformers": "r1relay KTransformers", "r1relay_flask": "r1relay Flask"}


def register_all(openwebui: OpenWebUI, built_dir: Path) -> None:
    for function_id, name in PIPES.items():
        openwebui.register_function(function_id, name, (built_dir / f"{function_id}.py").read_text(), name, type_hint="pipe")


def test_every_pipe_lists_its_models(openwebui: OpenWebUI, built_dir: Path) -> None:
    register_all(openwebui, built_dir)
    openwebui.set_valves("r1relay_vllm", {"MODELS": "deepseek-ai/DeepSeek-R1"})
    openwebui.set_valves("r1relay_ktransformers", {"MODELS": "DeepSeek-R1"})
    openwebui.set_valves("r1relay_flask", {"MODELS": "tiny-r1"})
    models = {m["id"]: m["name"] for m in openwebui.models()}
    assert models["r1relay_vllm.deepseek-ai/DeepSeek-R1"] == "vLLM: deepseek-ai/DeepSeek-R1"
    assert models["r1relay_ktransformers.DeepSeek-R1"] == "KTransformers: DeepSeek-R1"
    assert models["r1relay_flask.tiny-r1"] == "Flask: tiny-r1"


def test_flask_pipe_relays_the_reference_server_through_open_webui(
    openwebui: OpenWebUI, built_dir: Path, flask_backend: FlaskBackend
) -> None:
    register_all(openwebui, built_dir)
    openwebui.set_valves("r1relay_flask", {"BASE_URLS": flask_backend.url, "API_KEY": flask_backend.api_key, "MODELS": "tiny-r1"})
    chunks = openwebui.chat("r1relay_flask.tiny-r1", [{"role": "user", "content": "Hello there"}], max_tokens=48)
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c.get("choices"))
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert reasoning.strip() == "The user wants an answer. I will keep it short."
    assert content.strip() == "Hello from tiny R1."
    assert flask_backend.api_key not in repr(chunks)


def test_ktransformers_pipe_relays_a_slow_one_slot_server(openwebui: OpenWebUI, built_dir: Path) -> None:
    register_all(openwebui, built_dir)
    emulator = KTransformersEmulator().start()
    try:
        openwebui.set_valves("r1relay_ktransformers", {"BASE_URLS": emulator.url, "MODELS": ""})
        model_ids = [m["id"] for m in openwebui.models()]
        kt_models = [i for i in model_ids if i.startswith("r1relay_ktransformers.")]
        assert kt_models
        chunks = openwebui.chat(kt_models[0], [{"role": "user", "content": "Hello"}])
        reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c.get("choices"))
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
        assert reasoning and content and "</think>" not in content
    finally:
        emulator.stop()
