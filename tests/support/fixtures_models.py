"""Real peers for tests: the locally built tiny R1 model, `transformers serve` and the Flask reference app.

Everything is session-scoped: the model is built once per machine (cached under `.cache/models`,
seconds to build, reused across runs) and each server starts once per test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.make_tiny_r1 import make_tiny_r1
from installer.demo import OFFLINE_ENV
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parent.parent.parent
MODEL_CACHE = Path(os.environ.get("R1RELAY_MODEL_CACHE", REPO / ".cache" / "models"))
# The python the model servers (peers, not Open WebUI) run with: `make compat` keeps them on the repo's venv,
# since an older Open WebUI pins an older transformers that cannot serve or load the tiny model.
PEER_PYTHON = Path(os.environ.get("R1RELAY_PEER_PYTHON") or sys.executable)
STARTUP_TIMEOUT = 180.0  # seconds; `transformers serve` is ready in ~8 s here, CI boxes can be slower



@dataclass
class ServerProcess:
    """A server started for the session; `log` keeps its output for failure messages."""

    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.log.unlink(missing_ok=True)


def start_server(command: list[str], health_url: str, env: dict[str, str], name: str) -> ServerProcess:
    """Start `command`, wait until `health_url` answers 200; fail with the server's log if it dies."""
    with tempfile.NamedTemporaryFile(prefix=f"r1relay-{name}-", suffix=".log", delete=False) as out:
        log = Path(out.name)
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV, **env}, cwd=REPO
        )
    server = ServerProcess(process, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.tail()}")
        try:
            with urllib.request.urlopen(health_url, timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    tail = server.tail()
    server.stop()
    raise RuntimeError(f"{name} was not ready within {STARTUP_TIMEOUT:.0f}s:\n{tail}")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """`tiny-r1`, built once into the repo's `.cache/models` (or $R1RELAY_MODEL_CACHE) and reused."""
    return make_tiny_r1(MODEL_CACHE)


@dataclass(frozen=True)
class TransformersServe:
    """A running `transformers serve` with the tiny model forced: send `model` (any id is accepted)."""

    base_url: str  # ends in /v1
    model: str


def transformers_cli() -> str:
    beside = PEER_PYTHON.with_name("transformers")
    found = str(beside) if beside.exists() else shutil.which("transformers")
    if not found:
        pytest.skip("the `transformers` CLI is not installed")
    return found


@pytest.fixture(scope="session")
def transformers_serve(tiny_model_dir: Path) -> Iterator[TransformersServe]:
    """`transformers serve MODEL_DIR --host 127.0.0.1 --port P --device cpu`, offline, on a free port.

    The positional model is forced for every request, so the `model` field is not checked; we send
    the model dir path, the id the server reports as `<path>@main` in its chunks.
    """
    port = free_port()
    command = [
        transformers_cli(),
        "serve",
        str(tiny_model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    server = start_server(command, f"http://127.0.0.1:{port}/health", {}, "transformers-serve")
    try:
        yield TransformersServe(base_url=f"http://127.0.0.1:{port}/v1", model=str(tiny_model_dir))
    finally:
        server.stop()


@dataclass(frozen=True)
class FlaskBackend:
    """The reference Flask app (examples/flask_r1_server.py) serving the tiny model, with an API key."""

    url: str
    api_key: str


@pytest.fixture(scope="session")
def flask_backend(tiny_model_dir: Path) -> Iterator[FlaskBackend]:
    port = free_port()
    api_key = "test-flask-key"
    command = [
        str(PEER_PYTHON),
        str(REPO / "examples" / "flask_r1_server.py"),
        "--model",
        str(tiny_model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = start_server(command, f"http://127.0.0.1:{port}/health", {"R1_API_KEY": api_key}, "flask-r1")
    try:
        yield FlaskBackend(url=f"http://127.0.0.1:{port}", api_key=api_key)
    finally:
        server.stop()
