"""`install.py demo`: Open WebUI, `transformers serve` and the reference Flask server on a tiny local R1-shaped model, r1relay installed.

Everything listens on 127.0.0.1 and stays offline. The servers run in their
own sessions and are stopped together (newest first) on Ctrl-C, on `kill`, or
when one of them exits. Data, the admin's password and logs live in
`.cache/demo`, so a second run reuses the same chats.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from installer.bundle import FUNCTIONS, SOURCE_ROOT, build_all
from installer.errors import OpenWebUIError, UsageError
from installer.openwebui import OpenWebUIClient
from installer.plan import Installer, InstallOptions
from installer.status import verify
from installer.valve_config import ValveValues

CHECKOUT = SOURCE_ROOT  # the demo needs examples/, which only a checkout has
DEMO_DIR = Path(os.environ.get("R1RELAY_DEMO_DIR", CHECKOUT / ".cache" / "demo"))
DEMO_EMAIL = "admin@example.com"
DEFAULT_MODEL = "r1relay_vllm.tiny-r1"
# For every demo server: no hub look-ups, no telemetry, no update checks.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
# Open WebUI: no connections of its own, nothing phoned home, and an empty RAG_EMBEDDING_MODEL, so it does
# not try to load sentence-transformers' default model (offline, that logs an ERROR with a traceback).
OPEN_WEBUI_ENV = {
    "OFFLINE_MODE": "true",
    "ENABLE_OLLAMA_API": "false",
    "ENABLE_OPENAI_API": "false",
    "ENABLE_VERSION_UPDATE_CHECK": "false",
    "RAG_EMBEDDING_MODEL": "",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "ANONYMIZED_TELEMETRY": "false",
}


def free_port(preferred: int = 0) -> int:
    """`preferred` when nothing listens there, else any free loopback port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise UsageError("no free TCP port on 127.0.0.1")


def remembered(path: Path, make: Callable[[], str]) -> str:
    """A value kept in a file under the demo's directory (readable by its owner only), made on the first run."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


class Children:
    """The demo's servers: started in their own sessions, stopped together (newest first)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=CHECKOUT,
                env={**os.environ, **OFFLINE_ENV, **(env or {})},
                start_new_session=True,
            )
        self.running.append((name, process, log))

    def wait_until_up(self, name: str, url: str, timeout: float = 300.0) -> None:
        """Poll `url` until it answers 200; a child that exits first is reported with its log."""
        process, log = next((p, log) for n, p, log in self.running if n == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise UsageError(f"{name} exited with code {process.returncode}; see {log}")
            try:
                if requests.get(url, timeout=2).ok:
                    return
            except requests.exceptions.RequestException:
                pass
            time.sleep(0.5)
        raise UsageError(f"{name} did not come up at {url} in {timeout:.0f} s; see {log}")

    def first_exited(self) -> str | None:
        for name, process, log in self.running:
            if process.poll() is not None:
                return f"{name} exited with code {process.returncode}; see {log}"
        return None

    def stop_all(self) -> None:
        for _, process, _ in reversed(self.running):
            if process.poll() is None:
                process.terminate()
        for _, process, _ in reversed(self.running):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def admin_token(url: str, password: str) -> str:
    """Sign in as the demo admin, creating it (the first sign-up is an admin) on a fresh DATA_DIR."""
    try:
        return OpenWebUIClient.sign_in(url, DEMO_EMAIL, password)
    except OpenWebUIError:
        pass
    try:
        return OpenWebUIClient.sign_up(url, "Demo Admin", DEMO_EMAIL, password)
    except OpenWebUIError as exc:
        raise UsageError(f"cannot create the demo admin ({exc}); delete {DEMO_DIR} to start over") from None


def demo_valves(serve_port: int, flask_port: int) -> ValveValues:
    """The bundle pointed at this machine's reference backends."""
    wanted: ValveValues = {
        "r1relay_vllm": {
            "BASE_URLS": f"http://127.0.0.1:{serve_port}/v1",
            "MODELS": "tiny-r1",  # transformers serve's /v1/models fails without a hub cache
            "NAME_PREFIX": "transformers serve: ",
        },
        "r1relay_flask": {"BASE_URLS": f"http://127.0.0.1:{flask_port}", "MODELS": "tiny-r1", "NAME_PREFIX": "Flask: "},
    }
    known = {spec.id for spec in FUNCTIONS}
    return {fid: valves for fid, valves in wanted.items() if fid in known}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_demo(port: int) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or `kill`: stop the children too
        signal.signal(signum, _interrupt)
    if not (CHECKOUT / "examples" / "make_tiny_r1.py").exists():
        raise UsageError("the demo runs from a checkout of r1relay (it needs examples/): clone the repository and run `make demo`")
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "open-webui").exists():
        raise UsageError(f"open-webui is not installed next to {sys.executable}: run `make demo`")
    print("Making the tiny R1-shaped model (seconds, once) …")
    made = subprocess.run([sys.executable, str(CHECKOUT / "examples" / "make_tiny_r1.py")], capture_output=True, text=True)
    if made.returncode != 0:
        raise UsageError(f"examples/make_tiny_r1.py failed: {(made.stderr.strip().splitlines() or ['?'])[-1]}")
    model_dir = CHECKOUT / ".cache" / "models" / "tiny-r1"
    ui_port, serve_port, flask_port = free_port(port), free_port(), free_port()
    url = f"http://127.0.0.1:{ui_port}"
    password_file = DEMO_DIR / "admin-password"
    password = remembered(password_file, lambda: secrets.token_urlsafe(12))
    secret_key = remembered(DEMO_DIR / "secret-key", lambda: secrets.token_urlsafe(32))
    children = Children(DEMO_DIR / "logs")
    try:
        print(f"Starting transformers serve, the Flask server and Open WebUI (logs in {children.log_dir}) …")
        children.start("transformers-serve", [str(bin_dir / "transformers"), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(serve_port), "--device", "cpu"])
        children.start("flask", [sys.executable, str(CHECKOUT / "examples" / "flask_r1_server.py"), "--model", str(model_dir), "--port", str(flask_port)])
        ui_env = {**OPEN_WEBUI_ENV, "DATA_DIR": str(DEMO_DIR / "data"), "WEBUI_SECRET_KEY": secret_key}
        children.start("open-webui", [str(bin_dir / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(ui_port)], ui_env)
        children.wait_until_up("transformers-serve", f"http://127.0.0.1:{serve_port}/health")
        children.wait_until_up("flask", f"http://127.0.0.1:{flask_port}/health")
        children.wait_until_up("open-webui", f"{url}/health")
        client = OpenWebUIClient(url, admin_token(url, password))
        print("Installing r1relay …")
        built = build_all()
        valves = demo_valves(serve_port, flask_port)
        no_backend = frozenset(item.spec.id for item in built if item.spec.type == "pipe" and item.spec.id not in valves)
        Installer(client, InstallOptions(valves=valves, overwrite_valves=True, switched_off=no_backend)).run(built)
        client.set_default_model(DEFAULT_MODEL)
        verify(client, built)
        kept = password_file.relative_to(Path.cwd()) if password_file.is_relative_to(Path.cwd()) else password_file
        print(f"\nOpen WebUI is ready: {url}\n  email:    {DEMO_EMAIL}\n  password: {password}  (kept in {kept})\nPress Ctrl-C to stop.")
        while (problem := children.first_exited()) is None:
            time.sleep(1)
        raise UsageError(problem)
    except KeyboardInterrupt:
        print("\nStopping …")
        return 0
    finally:
        children.stop_all()
