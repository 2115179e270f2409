"""Fixtures for tests against a real Open WebUI and a real browser.

- `openwebui`: one server for the whole session (skipped when open-webui is not installed).
  Tests share it: register functions under ids of their own and restore global settings they change.
- `fresh_openwebui`: a factory, `fresh_openwebui(env={...})` starts a server of the test's own.
- `browser_page`: a Playwright page in a fresh chromium profile (skipped without chromium/playwright).
- `open_webui_bin`: the `open-webui` to serve (skipped when absent). Every fixture that starts Open WebUI asks
  for it, and that alone marks a test `openwebui`: `make compat` runs those against each supported release.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import CHROMIUM, chromium_context
from tests.support.openwebui import OPEN_WEBUI_BIN, OpenWebUI

OPEN_WEBUI_MARK = "openwebui"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{OPEN_WEBUI_MARK}: drives a real Open WebUI (run per release by `make compat`)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixtures start an Open WebUI, so the selection cannot drift from the tests."""
    for item in items:
        if "open_webui_bin" in getattr(item, "fixturenames", ()):
            item.add_marker(OPEN_WEBUI_MARK)


@pytest.fixture(scope="session")
def open_webui_bin() -> Path:
    if not OPEN_WEBUI_BIN.exists():
        pytest.skip(f"open-webui is not installed ({OPEN_WEBUI_BIN})")
    return OPEN_WEBUI_BIN


@pytest.fixture(scope="session")
def openwebui(open_webui_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWebUI]:
    with OpenWebUI(tmp_path_factory.mktemp("openwebui-shared")) as server:
        yield server


@pytest.fixture
def fresh_openwebui(
    open_webui_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., OpenWebUI]]:
    started: list[OpenWebUI] = []

    def make(env: Mapping[str, str] | None = None) -> OpenWebUI:
        server = OpenWebUI(tmp_path_factory.mktemp("openwebui-fresh"), env=env)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")
    with chromium_context(tmp_path / "chromium-profile") as context:
        yield context.pages[0] if context.pages else context.new_page()
