"""Fixtures for the engine's tests: built function files and the vLLM emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import bundle
from tests.emulators.vllm import VLLMEmulator


@pytest.fixture(scope="session")
def built_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python install.py export DIR` output, built once per session."""
    out = tmp_path_factory.mktemp("built")
    bundle.export(out)
    return out


@pytest.fixture
def vllm_emulator() -> Iterator[VLLMEmulator]:
    emulator = VLLMEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
