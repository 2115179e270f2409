"""A real browser against the shared Open WebUI: a pipe's reasoning shows as the collapsed "Thought for" block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.browser import last_answer, login, screenshot, send_message, wait_for_answer
from tests.support.openwebui import OpenWebUI
from tests.test_openwebui_harness import register_trivial_pipe

SCREENSHOT = Path("/tmp/r1relay-browser-smoke.png")


def test_pipe_reply_shows_thought_block_and_answer(openwebui: OpenWebUI, browser_page: Any) -> None:
    model = register_trivial_pipe(openwebui)
    login(browser_page, openwebui.url, openwebui.admin_email, openwebui.admin_password)
    send_message(browser_page, openwebui.url, model, "browser smoke")
    text = wait_for_answer(browser_page)
    screenshot(browser_page, SCREENSHOT)
    answer = last_answer(browser_page)
    assert "Thought for" in answer.inner_text()
    assert "echo: browser smoke" in text
    assert "<think>" not in text and "</think>" not in text and "<details" not in text
    assert "thinking about it" not in text, "the thinking is collapsed"
