"""Tools, the thinking toggle and images in a real Open WebUI 0.12.4 driven by chromium.

"What time is it?" goes once through an admin OpenAI connection and once through the
vLLM pipe to the same emulated vLLM with tool calling on: Open WebUI offers its built-in
`get_current_timestamp` (browser chats only: `use_builtin_tools` needs a session), the
emulator calls it, Open WebUI runs it and asks again with the result, and the answer
quotes it. Background tasks are off so each chat is exactly those two requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulators.vllm import VLLMEmulator
from tests.support.browser import (
    CHROMIUM,
    chromium_context,
    last_answer,
    login,
    send_message,
    switch_on_filter,
    wait_for_answer,
)
from tests.support.openwebui import OPEN_WEBUI_BIN, OpenWebUI

R1 = "deepseek-ai/DeepSeek-R1"
QWEN3 = "Qwen/Qwen3-8B"
PIPE = "r1relay_vllm"
TOGGLE = "r1relay_thinking_toggle"
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f00f0004850180a4a98c210000000049454e44ae426082"
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def tool_server() -> Iterator[VLLMEmulator]:
    """vLLM with `--enable-auto-tool-choice --tool-call-parser hermes`, serving R1 and Qwen3."""
    server = VLLMEmulator(models=(R1, QWEN3), thinking_switch=True, tool_call=("get_current_timestamp", {})).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plain_server() -> Iterator[VLLMEmulator]:
    """vLLM whose model calls no tool: Qwen3 honours enable_thinking, and images are counted."""
    server = VLLMEmulator(models=(R1, QWEN3), thinking_switch=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, built_dir: Path, tool_server: VLLMEmulator) -> Iterator[OpenWebUI]:
    if not OPEN_WEBUI_BIN.exists():
        pytest.skip(f"open-webui is not installed ({OPEN_WEBUI_BIN})")
    with OpenWebUI(tmp_path_factory.mktemp("openwebui-tools")) as server:
        server.set_tasks(enabled=False)
        server.add_openai_connection(tool_server.base_url)
        server.register_function(PIPE, "r1relay vLLM", (built_dir / f"{PIPE}.py").read_text(), type_hint="pipe")
        server.register_function(
            TOGGLE, "Thinking off", (built_dir / f"{TOGGLE}.py").read_text(), type_hint="filter", is_global=True
        )
        yield server


@pytest.fixture
def page(ui: OpenWebUI, tmp_path: Path) -> Iterator[Any]:
    with chromium_context(tmp_path / "chromium-profile") as context:
        page = context.pages[0] if context.pages else context.new_page()
        login(page, ui.url, ui.admin_email, ui.admin_password)
        yield page


def use_backend(ui: OpenWebUI, server: VLLMEmulator) -> None:
    ui.set_valves(PIPE, {"BASE_URLS": server.base_url, "MODELS": ",".join(server.models)})
    server.requests.clear()


def ask(page: Any, ui: OpenWebUI, model: str, text: str) -> str:
    send_message(page, ui.url, model, text)
    return wait_for_answer(page)


def assert_answered_from_the_tool(server: VLLMEmulator, page_text: str) -> None:
    first, second = (r["body"] for r in server.requests)
    assert "get_current_timestamp" in [t["function"]["name"] for t in first["tools"]]
    calls = [m for m in second["messages"] if m.get("tool_calls")]
    results = [m for m in second["messages"] if m.get("role") == "tool"]
    assert [c["function"]["name"] for c in calls[-1]["tool_calls"]] == ["get_current_timestamp"]
    assert results and results[-1]["tool_call_id"] == calls[-1]["tool_calls"][0]["id"]
    timestamp = json.loads(results[-1]["content"])["current_timestamp"]
    assert "The tool says:" in page_text and str(timestamp) in page_text


@pytest.mark.parametrize("model", [R1, f"{PIPE}.{R1}"], ids=["admin-connection", "vllm-pipe"])
def test_what_time_is_it_is_answered_from_the_tool(ui: OpenWebUI, page: Any, tool_server: VLLMEmulator, model: str) -> None:
    use_backend(ui, tool_server)
    text = ask(page, ui, model, "What time is it?")
    assert_answered_from_the_tool(tool_server, text)
    # Open WebUI groups the thinking and the call into one "Explored …" block; opened, it shows the Thought block.
    answer = last_answer(page)
    answer.get_by_text("Explored get_current_timestamp").click()
    answer.get_by_text("Thought for").first.wait_for()


def test_a_server_that_refuses_tools_still_answers_through_the_pipe(ui: OpenWebUI, page: Any) -> None:
    server = VLLMEmulator(tool_call_parser=None).start()
    try:
        use_backend(ui, server)
        text = ask(page, ui, f"{PIPE}.{R1}", "What time is it?")
        assert "Hello! How can I help you today?" in text
        assert "refused" not in text and "HTTP 400" not in text and "tool choice" not in text
        assert ["tools" in r["body"] for r in server.requests] == [True, False]
    finally:
        server.stop()


def test_the_thinking_toggle_reaches_the_backend_and_no_thought_block_shows(
    ui: OpenWebUI, page: Any, plain_server: VLLMEmulator
) -> None:
    use_backend(ui, plain_server)
    text = ask(page, ui, f"{PIPE}.{QWEN3}", "Hello")
    assert "Thought for" in text  # the control: thinking on
    assert "chat_template_kwargs" not in plain_server.requests[-1]["body"]

    page.goto(f"{ui.url}/?model={PIPE}.{QWEN3}")
    page.wait_for_selector("#chat-input")
    switch_on_filter(page, "Thinking off")
    page.click("#chat-input")
    page.keyboard.type("Hello again")
    page.keyboard.press("Enter")
    text = wait_for_answer(page)
    assert plain_server.requests[-1]["body"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert "Hello! How can I help you today?" in text and "Thought for" not in text


def test_an_image_sent_in_the_chat_reaches_the_vllm_emulator(
    ui: OpenWebUI, page: Any, plain_server: VLLMEmulator, tmp_path: Path
) -> None:
    use_backend(ui, plain_server)
    image = tmp_path / "pixel.png"
    image.write_bytes(PIXEL_PNG)
    page.goto(f"{ui.url}/?model={PIPE}.{R1}")
    page.wait_for_selector("#chat-input")
    page.locator('input[type="file"][multiple]').first.set_input_files(str(image))
    page.wait_for_selector("#chat-input")
    page.click("#chat-input")
    page.keyboard.type("What is in this picture?")
    page.keyboard.press("Enter")
    text = wait_for_answer(page)
    assert "I saw 1 image(s)." in text
    (url,) = plain_server.images
    assert url.startswith("data:image/png;base64,")


def test_the_toggle_also_works_over_an_admin_connection(ui: OpenWebUI, tool_server: VLLMEmulator) -> None:
    """The switch is Open WebUI's `filter_ids`; an API client sends it too, and no tools are offered without a session."""

    def reasoning(chunks: list[dict]) -> str:  # the API path relays vLLM's own `reasoning` field as is
        deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
        return "".join(d.get("reasoning") or d.get("reasoning_content") or "" for d in deltas)

    tool_server.requests.clear()
    thinking = ui.chat(QWEN3, [{"role": "user", "content": "Hello"}])
    assert reasoning(thinking).startswith("Okay, the user greets me.")
    quiet = ui.chat(QWEN3, [{"role": "user", "content": "Hello"}], filter_ids=[TOGGLE])
    first, second = (r["body"] for r in tool_server.requests)
    assert "chat_template_kwargs" not in first
    assert second["chat_template_kwargs"] == {"enable_thinking": False}
    assert reasoning(quiet) == ""
