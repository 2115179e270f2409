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

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import install
from tests.emulators.vllm import VLLMEmulator
from tests.support.fixtures_models import TransformersServe
from tests.test_install import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    REPO,
    run_cli,
    running_open_webui,
    wait_for,
)

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "docs" / "screenshot-chat.png"
MODEL_NAME = "transformers serve: tiny-r1"  # NAME_PREFIX + MODELS below

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    with running_open_webui(tmp_path_factory.mktemp("openwebui-browser")) as server:
        yield server


@pytest.fixture
def page(ui: SimpleNamespace) -> Iterator[Any]:
    """A logged-in admin's page, 1280×800."""
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*args, "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{ui.url}/auth")
            page.fill("input[type=email]", ADMIN_EMAIL)
            page.fill("input[type=password]", ADMIN_PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(lambda url: "/auth" not in url, timeout=60_000)
            page.wait_for_selector("#chat-input", timeout=60_000)
            dismiss_first_login_modal(page)
            yield page
        finally:
            browser.close()


def dismiss_first_login_modal(page: Any) -> None:
    for label in ("Okay, Let's Go!", "Close"):
        button = page.get_by_role("button", name=label)
        if button.count():
            with contextlib.suppress(Exception):
                button.first.click(timeout=2_000)


def test_exported_functions_json_imports_through_the_admin_ui(ui: SimpleNamespace, page: Any, tmp_path: Path) -> None:
    assert run_cli("export", str(tmp_path)).returncode == 0
    page.goto(f"{ui.url}/admin/functions")
    page.wait_for_selector("#documents-import-input", state="attached", timeout=60_000)
    page.set_input_files("#documents-import-input", str(tmp_path / "functions.json"))
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Functions imported successfully").wait_for(timeout=60_000)
    for spec in install.FUNCTIONS:
        title = install.frontmatter(install.build_function(spec))["title"]
        page.get_by_text(title, exact=True).first.wait_for(timeout=30_000)
    imported = install.OpenWebUIClient(ui.url, ui.token).functions()
    for spec in install.FUNCTIONS:
        assert imported[spec.id]["content"] == install.build_function(spec)


def test_chat_picked_from_the_model_picker_shows_collapsed_thinking(
    ui: SimpleNamespace, page: Any, transformers_serve: TransformersServe, tmp_path: Path
) -> None:
    sys.path.insert(0, str(REPO / "examples"))
    from make_tiny_r1 import TINY_R1_ANSWER, TINY_R1_REASONING

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
    page.wait_for_function(
        "answer => { const m = document.querySelector('#messages-container');"
        " return m && m.innerText.includes('Thought for') && m.innerText.includes(answer); }",
        arg=TINY_R1_ANSWER,
        timeout=120_000,
    )
    messages = page.locator("#messages-container")
    text = messages.inner_text()
    assert "<think>" not in text and "</think>" not in text
    assert not page.get_by_text(TINY_R1_REASONING).first.is_visible()  # the thinking is collapsed
    page.locator("#chat-input").blur()
    shot = tmp_path / "screenshot-chat.png"
    page.screenshot(path=str(shot))
    if not SCREENSHOT.exists() or os.environ.get("R1RELAY_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_a_message_sent_in_the_browser_reaches_the_backend_once(ui: SimpleNamespace, page: Any) -> None:
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
        page.wait_for_function(
            "() => document.querySelector('#messages-container')?.innerText.includes('How can I help you today?')",
            timeout=90_000,
        )
        page.wait_for_url("**/c/**", timeout=30_000)
        chat_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        client = install.OpenWebUIClient(ui.url, ui.token)
        wait_for(lambda: not client.request("GET", f"/api/tasks/chat/{chat_id}")["task_ids"], "the chat task to finish")
        assert len(backend.requests) == 1
    finally:
        backend.stop()
