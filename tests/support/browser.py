"""Playwright (sync) driving Debian's chromium against a real Open WebUI.

DOM facts used here (Open WebUI 0.12.4 frontend, read from the shipped source maps):
- the first admin login shows the release-notes modal (`ChangelogModal.svelte`, button "Okay, Let's Go!")
  whenever `settings.ui.version` differs from the server version;
- a reply renders as `#message-{id}` holding a `.chat-assistant` body; its Copy button
  (`.copy-response-button`, a sibling of that body) exists only once `message.done` is true (`ResponseMessage.svelte` `{#if message.done}`), and the composer shows a
  `button[aria-label="Stop"]` while any reply of the chat is active (`MessageInput.svelte`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
UI_TIMEOUT_MS = 60_000
ANSWER_TIMEOUT_MS = 120_000

# True once the newest assistant message is finished (done, with or without an error) and nothing streams.
_ANSWER_DONE_JS = """() => {
    const replies = document.querySelectorAll('#messages-container .chat-assistant');
    const last = replies.length ? replies[replies.length - 1].closest('[id^="message-"]') : null;
    if (!last || document.querySelector('button[aria-label="Stop"]')) return false;
    return !!last.querySelector('.copy-response-button');
}"""


@contextlib.contextmanager
def chromium_context(user_data_dir: Path, headless: bool = True) -> Iterator[Any]:
    """A fresh persistent chromium profile in `user_data_dir`; yields the BrowserContext."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=headless,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def dismiss_modals_automatically(page: Any) -> None:
    """Click away the release-notes modal whenever it shows up, before any action it would block."""
    button = page.get_by_role("button", name="Okay, Let's Go!")
    page.add_locator_handler(button, lambda locator: locator.click(), no_wait_after=True)


def login(page: Any, base_url: str, email: str, password: str) -> None:
    dismiss_modals_automatically(page)
    page.goto(f"{base_url}/auth")
    page.fill("input[type=email]", email)
    page.fill("input[type=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/auth" not in url)
    page.wait_for_selector("#chat-input")


def send_message(page: Any, base_url: str, model_id: str, text: str) -> None:
    """Open a new chat with `model_id` selected, type `text` into the composer and send it."""
    page.goto(f"{base_url}/?model={quote(model_id, safe='')}")
    page.wait_for_selector("#chat-input")
    page.click("#chat-input")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    page.wait_for_selector("#messages-container .chat-assistant")


def wait_for_answer(page: Any, timeout_ms: int = ANSWER_TIMEOUT_MS) -> str:
    """Wait until the newest reply is done; return the text of the messages pane."""
    page.wait_for_function(_ANSWER_DONE_JS, timeout=timeout_ms)
    return str(page.inner_text("#messages-container"))


def last_answer(page: Any) -> Any:
    """The newest reply's `#message-{id}` element (thought block, answer, action buttons) as a Locator."""
    body = page.locator("#messages-container .chat-assistant").last
    return body.locator("xpath=ancestor::*[starts-with(@id, 'message-')][1]")


def screenshot(page: Any, path: Path | str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):
        page.locator("#chat-input").blur()
    page.screenshot(path=str(target))
    return target


def switch_on_filter(page: Any, name: str) -> None:
    """Turn on a toggle filter for the next message: the composer's Integrations menu lists each `toggle = True`
    filter of the selected model as a switch (`MessageInput/IntegrationsMenu.svelte`, role menuitemcheckbox)."""
    page.click('button[aria-label="Integrations"]')
    item = page.get_by_role("menuitemcheckbox", name=name)
    item.click()
    page.wait_for_function(
        """(name) => [...document.querySelectorAll('[role=menuitemcheckbox]')]
            .some((el) => el.textContent.trim() === name && el.getAttribute('aria-checked') === 'true')""",
        arg=name,
    )
    page.keyboard.press("Escape")
