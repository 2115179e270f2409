"""Security checks on the BUILT pipes: keys never shown or logged or exported, valves validated, TLS verified.

The per-user key isolation between two users in a real Open WebUI is in
test_openwebui_vllm.py; it is not repeated here.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import re
import ssl
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from installer import bundle
from tests.emulators.ktransformers import KTransformersEmulator
from tests.emulators.prompt_server import PromptServerEmulator
from tests.emulators.server import ThreadedServer
from tests.emulators.vllm import VLLMEmulator
from tests.support.built import load_function
from tests.support.openwebui import OpenWebUI
from tests.support.pipe_driver import PipeRun, chat_body, make_pipe, run_pipe

SECRET = "sk-r1relay-security-5b9e21d0"
KINDS = ("vllm", "ktransformers", "flask")
MODELS = {
    "vllm": "r1relay_vllm.deepseek-ai/DeepSeek-R1",
    "ktransformers": "r1relay_ktransformers.DeepSeek-R1",
    "flask": "r1relay_flask.tiny-r1",
}
EMULATORS: dict[str, Callable[[], Any]] = {
    "vllm": lambda: VLLMEmulator(),
    "ktransformers": lambda: KTransformersEmulator(shape="builtin"),
    "flask": lambda: PromptServerEmulator(),
}
KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{16,}|Bearer [A-Za-z0-9._-]{12,})")


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def module(kind: str, built_dir: Path) -> types.ModuleType:
    return load_function(built_dir / f"r1relay_{kind}.py")


def base_url(kind: str, url: str) -> str:
    return f"{url}/v1" if kind == "vllm" else url


async def run(module: types.ModuleType, kind: str, **valves: Any) -> PipeRun:
    return await run_pipe(make_pipe(module, **valves), module, chat_body(MODELS[kind]))


def echoing_backend() -> web.Application:
    """A backend that answers every request with an error quoting the credentials it was sent (some do)."""

    async def echo(request: web.Request) -> web.Response:
        creds = f"{request.headers.get('Authorization', '')} {request.headers.get('X-API-Key', '')}".strip()
        if request.path.endswith("/models"):
            return web.json_response({"error": {"message": f"Invalid credentials: {creds}", "type": "auth"}}, status=400)
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            return web.json_response({"object": "error", "message": f"Bad request from key {creds}.", "code": 400}, status=400)
        return web.Response(status=500, text=f"Internal error; headers were {creds}", content_type="text/plain")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


# ---- keys never in errors, status lines, logs ----


async def test_a_backend_echoing_the_key_never_gets_it_into_the_chat_or_logs(
    kind: str, module: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx, httpcore, openai and our code at their most talkative
    with ThreadedServer(echoing_backend) as server:
        result = await run(module, kind, BASE_URLS=base_url(kind, server.url), API_KEY=SECRET)
        pipe = make_pipe(module, BASE_URLS=base_url(kind, server.url), API_KEY=SECRET, MODELS="")
        listed = await pipe.pipes()
    assert len(result.errors) == 1
    assert SECRET not in result.everything()
    assert SECRET not in json.dumps(listed)
    assert SECRET not in caplog.text


async def test_the_key_is_sent_but_never_logged_on_success(kind: str, module: types.ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = EMULATORS[kind]().start()
    emulator.api_key = SECRET
    try:
        result = await run(module, kind, BASE_URLS=base_url(kind, emulator.url), API_KEY=SECRET)
    finally:
        emulator.stop()
    assert result.content and not result.errors
    assert SECRET in json.dumps(emulator.requests[-1]["headers"])  # it did go to the backend
    assert SECRET not in result.everything()
    assert SECRET not in caplog.text


async def test_credentials_in_a_base_url_never_reach_the_chat(kind: str, module: types.ModuleType) -> None:
    result = await run(module, kind, BASE_URLS=f"http://admin:{SECRET}@127.0.0.1:9/v1", API_KEY="")
    assert len(result.errors) == 1 and "http://127.0.0.1:9" in result.errors[0]
    assert SECRET not in result.everything()


# ---- exported files ----


def test_exported_files_hold_no_key_even_when_the_environment_has_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Valve defaults are read from R1RELAY_* at run time, never baked into the built files."""
    for name in ("VLLM", "KTRANSFORMERS", "FLASK"):
        monkeypatch.setenv(f"R1RELAY_{name}_API_KEY", SECRET)
    written = bundle.export(tmp_path)
    assert written
    for path in written:
        text = path.read_text()
        assert SECRET not in text, path.name
        assert not KEY_LIKE.search(text), (path.name, KEY_LIKE.search(text))
    for entry in json.loads((tmp_path / "functions.json").read_text()):
        assert not entry.get("valves"), entry["id"]
    monkeypatch.delenv("R1RELAY_VLLM_API_KEY")
    for kind in KINDS:
        module = load_function(tmp_path / f"r1relay_{kind}.py")
        key_field = module.Pipe.Valves.model_fields["API_KEY"]
        assert (key_field.json_schema_extra or {}).get("input", {}).get("type") == "password"  # masked in the admin UI
    assert load_function(tmp_path / "r1relay_vllm.py").Pipe.Valves().API_KEY == ""


# ---- valve validation ----


@pytest.mark.parametrize("bad", ["localhost:8000", "ftp://host:21", "http://", "127.0.0.1:8000/v1"])
async def test_a_bad_base_url_is_one_sentence_at_first_use(kind: str, module: types.ModuleType, bad: str) -> None:
    result = await run(module, kind, BASE_URLS=bad)
    assert len(result.errors) == 1
    assert "BASE_URLS" in result.errors[0] and "http://host:port" in result.errors[0]
    assert result.statuses[-1]["done"] is True


def test_open_webui_validates_valves_at_save_time(openwebui: OpenWebUI, built_dir: Path) -> None:
    """Open WebUI builds the pipe's Valves model on save (`Valves(**form)`): typed limits reject bad values with
    400 (without echoing the key sent alongside). A bad URL is refused at save or, failing that, named at first
    use: in the model picker (the chat case is test_a_bad_base_url_is_one_sentence_at_first_use)."""
    function_id = "security_vllm"
    openwebui.register_function(function_id, "security vLLM", (built_dir / "r1relay_vllm.py").read_text(), type_hint="pipe")
    current = openwebui.json("GET", f"/api/v1/functions/id/{function_id}/valves") or {}
    rejected = openwebui.api("POST", f"/api/v1/functions/id/{function_id}/valves/update", check=False,
                             json={**current, "API_KEY": SECRET, "REQUEST_TIMEOUT": 0})
    assert rejected.status_code == 400  # Open WebUI 0.12.4 says only "Error updating function valves", not which one
    assert SECRET not in rejected.text
    assert openwebui.json("GET", f"/api/v1/functions/id/{function_id}/valves").get("REQUEST_TIMEOUT") != 0

    saved = openwebui.api("POST", f"/api/v1/functions/id/{function_id}/valves/update", check=False,
                          json={**current, "BASE_URLS": "localhost:8000", "MODELS": "deepseek-ai/DeepSeek-R1"})
    if saved.ok:  # accepted at save: the model picker shows one entry saying what is wrong
        names = [m["name"] for m in openwebui.models() if m["id"].startswith(f"{function_id}.")]
        assert len(names) == 1 and "unavailable" in names[0] and "BASE_URLS" in names[0], names
    else:
        assert saved.status_code == 400 and "BASE_URLS" in saved.text


# ---- TLS ----


class TLSServer(ThreadedServer):
    def __init__(self, make_app: Callable[[], web.Application], context: ssl.SSLContext) -> None:
        super().__init__(make_app)
        self.context = context

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._make_app(), shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
def https_emulator(kind: str, tmp_path: Path) -> Iterator[Any]:
    emulator = EMULATORS[kind]()
    emulator._server = TLSServer(emulator._app, self_signed(tmp_path)).start()
    try:
        yield emulator
    finally:
        emulator.stop()


async def test_tls_certificates_are_checked_unless_a_valve_says_otherwise(
    kind: str, module: types.ModuleType, https_emulator: Any
) -> None:
    url = base_url(kind, https_emulator.url)
    refused = await run(module, kind, BASE_URLS=url)
    assert len(refused.errors) == 1 and https_emulator.url in refused.errors[0]
    assert "Traceback" not in refused.everything() and "\n" not in refused.errors[0]
    assert not https_emulator.requests, "a request went to a server whose certificate was not checked"

    accepted = await run(module, kind, BASE_URLS=url, VERIFY_TLS=False)
    assert accepted.content and not accepted.errors
    assert len(https_emulator.requests) == 1


async def test_an_untrusted_certificate_is_named_in_the_sentence(kind: str, module: types.ModuleType, https_emulator: Any) -> None:
    refused = await run(module, kind, BASE_URLS=base_url(kind, https_emulator.url))
    assert re.search(r"certificate", refused.errors[0]) and "VERIFY_TLS" in refused.errors[0], refused.errors[0]
