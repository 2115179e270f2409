"""Fixtures for the engine's tests: built function files, each pipe loaded as Open WebUI loads it, the vLLM emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import bundle
from tests.emulators.vllm import VLLMEmulator
from tests.support.built import load_function


@pytest.fixture(scope="session")
def built_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python install.py export DIR` output, built once per session."""
    out = tmp_path_factory.mktemp("built")
    bundle.export(out)
    return out


# A fresh module per test: tests may patch its globals (PROGRESS_DELAY, STATUS_GRACE) with monkeypatch.
@pytest.fixture
def vllm(built_dir: Path):
    return load_function(built_dir / "r1relay_vllm.py")


@pytest.fixture
def kt(built_dir: Path):
    return load_function(built_dir / "r1relay_ktransformers.py")


@pytest.fixture
def flask_pipe(built_dir: Path):
    return load_function(built_dir / "r1relay_flask.py")


@pytest.fixture
def vllm_emulator() -> Iterator[VLLMEmulator]:
    emulator = VLLMEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
