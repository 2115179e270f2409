"""The installer's results as a user sees them, in a real chromium driven by Playwright.

One fresh Open WebUI for the module: first the exported functions.json goes through
Admin > Functions > Import JSON (Open WebUI's own importer), then `install.py install`
configures the same functions for a real backend (`transformers serve` on the tiny
R1-shaped model of tests/support/fixtures_models.py), and a chat picked from the model
picker shows the collapsed thinking. That chat is the README's docs/screenshot-chat.png:
written when missing, refreshed with R1RELAY_UPDATE_SCREENSHOTS=1 (a test run leaves the
tree clean otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.make_tiny_r1 import TINY_R1_ANSWER, TINY_R1_REASONING
from installer import bundle, openwebui
from tests.emulators.vllm import VLLMEmulator
from tests.support.browser import CHROMIUM, chromium_context, last_answer, login, screenshot, wait_for_answer
from tests.support.fixtures_models import TransformersServe
from tests.support.openwebui import OPEN_WEBUI_BIN, OpenWebUI
from tests.test_install import REPO, run_cli, wait_for

SCREENSHOT = REPO / "docs" / "screenshot-chat.png"
MODEL_NAME = "transformers serve: tiny-r1"  # NAME_PREFIX + MODELS below

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWebUI]:
    if not OPEN_WEBUI_BIN.exists():
        pytest.skip(f"open-webui is not installed ({OPEN_WEBUI_BIN})")
    with OpenWebUI(tmp_path_factory.mktemp("openwebui-browser")) as server:
        yield server


@pytest.fixture
def page(ui: OpenWebUI, tmp_path: Path) -> Iterator[Any]:
    """A logged-in admin's page, 1280×800 (the README screenshot's size)."""
    with chromium_context(tmp_path / "chromium-profile") as context:
        page = context.pages[0] if context.pages else context.new_page()
        page.set_viewport_size({"width": 1280, "height": 800})
        login(page, ui.url, ui.admin_email, ui.admin_password)
        yield page


def test_exported_functions_json_imports_through_the_admin_ui(ui: OpenWebUI, page: Any, tmp_path: Path) -> None:
    assert run_cli("export", str(tmp_path)).returncode == 0
    page.goto(f"{ui.url}/admin/functions")
    page.wait_for_selector("#documents-import-input", state="attached", timeout=60_000)
    page.set_input_files("#documents-import-input", str(tmp_path / "functions.json"))
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Functions imported successfully").wait_for(timeout=60_000)
    exported = json.loads((tmp_path / "functions.json").read_text())
    for function in exported:
        page.get_by_text(function["name"], exact=True).first.wait_for(timeout=30_000)
    imported = openwebui.OpenWebUIClient(ui.url, ui.token).functions()
    assert {f["id"]: f["content"] for f in exported} == {fid: imported[fid]["content"] for fid in (f["id"] for f in exported)}
    assert {f["id"] for f in exported} == {spec.id for spec in bundle.FUNCTIONS}


def test_chat_picked_from_the_model_picker_shows_collapsed_thinking(
    ui: OpenWebUI, page: Any, transformers_serve: TransformersServe, tmp_path: Path
) -> None:
    valves = [f"r1relay_vllm.BASE_URLS={transformers_serve.base_url}", "r1relay_vllm.MODELS=tiny-r1", "r1relay_vllm.NAME_PREFIX=transformers serve: "]
    installed = run_cli("install", "--url", ui.url, "--token", ui.token, *(arg for v in valves for arg in ("--set", v)))
    assert installed.returncode == 0, installed.stdout + installed.stderr

    page.goto(ui.url)
    page.wait_for_selector("#chat-input", timeout=60_000)
    page.click("#model-selector-model-button")
    page.fill("#model-search-input", "tiny-r1")
    page.locator("#model-selector-list").get_by_text(MODEL_NAME, exact=True).click()
    page.click("#chat-input")
    page.keyboard.type("Hello! Who are you?")
    page.keyboard.press("Enter")
    text = wait_for_answer(page)
    assert "Thought for" in text and TINY_R1_ANSWER in text
    assert "<think>" not in text and "</think>" not in text
    assert not page.get_by_text(TINY_R1_REASONING).first.is_visible()  # the thinking is collapsed
    stats = last_answer(page).get_by_text(re.compile(r"^\d+ tokens · .+ · first token after [\d.]+ s$"))
    stats.wait_for(timeout=30_000)  # the README: a status line above the Thought block
    assert stats.bounding_box()["y"] < last_answer(page).get_by_text("Thought for").first.bounding_box()["y"]
    shot = screenshot(page, tmp_path / "screenshot-chat.png")
    if not SCREENSHOT.exists() or os.environ.get("R1RELAY_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_a_message_sent_in_the_browser_reaches_the_backend_once(ui: OpenWebUI, page: Any) -> None:
    """The browser asks for title, tags and follow-ups; after install none of them reaches the backend."""
    backend = VLLMEmulator().start()
    try:
        valves = [f"r1relay_vllm.BASE_URLS={backend.base_url}", "r1relay_vllm.MODELS=deepseek-ai/DeepSeek-R1"]
        installed = run_cli("install", "--url", ui.url, "--token", ui.token, *(arg for v in valves for arg in ("--set", v)))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        page.goto(f"{ui.url}/?model=r1relay_vllm.deepseek-ai/DeepSeek-R1")
        page.wait_for_selector("#chat-input", timeout=60_000)
        page.click("#chat-input")
        page.keyboard.type("Hi there")
        page.keyboard.press("Enter")
        assert "How can I help you today?" in wait_for_answer(page)
        page.wait_for_url("**/c/**", timeout=30_000)
        chat_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        client = openwebui.OpenWebUIClient(ui.url, ui.token)
        wait_for(lambda: not client.request("GET", f"/api/tasks/chat/{chat_id}")["task_ids"], "the chat task to finish")
        assert len(backend.requests) == 1
    finally:
        backend.stop()
