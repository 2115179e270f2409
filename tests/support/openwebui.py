"""A real `open-webui serve` for tests: start, sign up the admin, drive the REST API, stop.

Every call here is a plain HTTP request to the server, the way an API client, the
installer or the web UI's own fetches would make it. Endpoints and payload shapes
are those of Open WebUI 0.12.4 (see docs/openwebui-notes.md); where an older
supported release (`make compat`) names them differently, the method says so.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from installer.demo import OPEN_WEBUI_ENV
from tests.support.ports import free_port

# The `open-webui` of this venv, or another version's (`make compat` runs the tests with each version's venv;
# R1RELAY_OPEN_WEBUI_BIN points the tests at any other install).
OPEN_WEBUI_BIN = Path(os.environ.get("R1RELAY_OPEN_WEBUI_BIN") or Path(sys.executable).parent / "open-webui")

# The demo's environment (offline, nothing phoned home, no embedding model loaded), and quieter logs.
QUIET_ENV: dict[str, str] = {
    **OPEN_WEBUI_ENV,
    "HF_HUB_OFFLINE": "1",
    "ENABLE_AUDIT_LOGS_FILE": "false",
    "GLOBAL_LOG_LEVEL": "WARNING",
}

# A new chat as the web UI creates it: 0.6 stores replies into `history.messages` and fails without it.
NEW_CHAT: dict[str, Any] = {"title": "test", "messages": [], "history": {"messages": {}, "currentId": None}}

ADMIN_NAME = "Admin"
ADMIN_EMAIL = "admin@example.com"
LOG_TAIL_CHARS = 4000


class OpenWebUIError(RuntimeError):
    """A request failed or the server did not come up; the message carries the body and the log tail."""



def parse_sse(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON objects of an SSE body's `data:` lines, `[DONE]` and comments left out."""
    chunks = []
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data and data != "[DONE]":
            chunks.append(json.loads(data))
    return chunks


def stored_answer(message: Mapping[str, Any]) -> str:
    """The answer text of a stored assistant message, whichever release saved it.

    0.12 and 0.6 save `content`; 0.10 saves only `output` items server-side (the web UI fills `content` later)."""
    if message.get("content"):
        return str(message["content"])
    parts = [
        part.get("text", "")
        for item in message.get("output") or []
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict)
    ]
    return "".join(parts)


class OpenWebUI:
    """One `open-webui serve` subprocess with its own DATA_DIR and first (admin) user."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "open-webui.log"
        self.admin_email = ADMIN_EMAIL
        self.admin_password = f"pw{secrets.token_urlsafe(12)}"  # never a leading "-", which argparse reads as an option
        self.secret_key = secrets.token_hex(32)
        self.token = ""
        self.startup_seconds = 0.0
        self.version: tuple[int, ...] = ()  # the running release, from GET /api/version
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None

    # ---- lifecycle ----

    def start(self, timeout: float = 300) -> OpenWebUI:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **QUIET_ENV, "DATA_DIR": str(self.data_dir), "WEBUI_SECRET_KEY": self.secret_key}
        env.update(self._extra_env)
        command = [str(OPEN_WEBUI_BIN), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir, start_new_session=True
            )
        try:
            self._wait_for_health(timeout)
            self.startup_seconds = time.monotonic() - started
            self.token = self._signup_admin()
            self.version = tuple(int(part) for part in self.json("GET", "/api/version")["version"].split(".")[:3])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __enter__(self) -> OpenWebUI:
        return self.start() if self._process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def _wait_for_health(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise OpenWebUIError(f"open-webui exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise OpenWebUIError(f"open-webui did not answer /health within {timeout:.0f} s:\n{self.log_tail()}")

    def _signup_admin(self) -> str:
        form = {"name": ADMIN_NAME, "email": self.admin_email, "password": self.admin_password}
        return str(self.api("POST", "/api/v1/auths/signup", json=form, token="").json()["token"])

    # ---- HTTP ----

    def api(
        self, method: str, path: str, *, token: str | None = None, check: bool = True, timeout: float = 60, **kw: Any
    ) -> requests.Response:
        """A request with the admin's bearer token (or `token`; "" sends none). Non-2xx raises unless check=False."""
        bearer = self.token if token is None else token
        headers = {**({"Authorization": f"Bearer {bearer}"} if bearer else {}), **kw.pop("headers", {})}
        response = requests.request(method, f"{self.url}{path}", headers=headers, timeout=timeout, **kw)
        if check and not response.ok:
            raise OpenWebUIError(
                f"{method} {path} -> {response.status_code}: {response.text[:2000]}\n--- server log ---\n{self.log_tail()}"
            )
        return response

    def json(self, method: str, path: str, **kw: Any) -> Any:
        return self.api(method, path, **kw).json()

    # ---- users ----

    def create_user(self, name: str, email: str, password: str, role: str = "user") -> str:
        """A new user made by the admin (Admin > Users > Add); returns that user's token."""
        form = {"name": name, "email": email, "password": password, "role": role}
        return str(self.json("POST", "/api/v1/auths/add", json=form)["token"])

    def sign_in(self, email: str, password: str) -> str:
        return str(
            self.json("POST", "/api/v1/auths/signin", json={"email": email, "password": password}, token="")["token"]
        )

    # ---- functions ----

    def register_function(
        self,
        id: str,
        name: str,
        content: str,
        description: str = "",
        type_hint: str | None = None,
        is_global: bool | None = None,
    ) -> dict[str, Any]:
        """Create or update a function, then make it active (and global or not, when asked).

        `type_hint` ("pipe", "filter", "action") is checked against the type Open WebUI detects."""
        form = {"id": id, "name": name, "content": content, "meta": {"description": description}}
        exists = self.api("GET", f"/api/v1/functions/id/{id}", check=False).ok
        if exists:
            function = self.json("POST", f"/api/v1/functions/id/{id}/update", json=form)
        else:
            function = self.json("POST", "/api/v1/functions/create", json=form)
        if type_hint is not None and function["type"] != type_hint:
            raise OpenWebUIError(f"function {id} loaded as a {function['type']}, expected a {type_hint}")
        current = self.json("GET", f"/api/v1/functions/id/{id}")
        if not current["is_active"]:
            current = self.json("POST", f"/api/v1/functions/id/{id}/toggle")
        if is_global is not None and bool(current["is_global"]) != is_global:
            current = self.json("POST", f"/api/v1/functions/id/{id}/toggle/global")
        return dict(current)

    def delete_function(self, id: str) -> None:
        self.api("DELETE", f"/api/v1/functions/id/{id}/delete", check=False)

    def set_valves(self, id: str, valves: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `valves` into the stored ones (the endpoint stores exactly what it is sent)."""
        current = self.json("GET", f"/api/v1/functions/id/{id}/valves") or {}
        saved = dict(self.json("POST", f"/api/v1/functions/id/{id}/valves/update", json={**current, **valves}))
        self.models()  # chats look models up in the list fetched last, which a browser page load refreshes
        return saved

    def set_user_valves(self, id: str, valves: Mapping[str, Any], token: str) -> dict[str, Any]:
        current = self.json("GET", f"/api/v1/functions/id/{id}/valves/user", token=token) or {}
        merged = {**current, **valves}
        return dict(self.json("POST", f"/api/v1/functions/id/{id}/valves/user/update", json=merged, token=token))

    # ---- models and chat ----

    def models(self, token: str | None = None) -> list[dict[str, Any]]:
        return list(self.json("GET", "/api/models", token=token)["data"])

    def make_model_public(self, model_id: str, name: str | None = None) -> dict[str, Any]:
        """Give every user read access to a model (pipe models start admin-only: `get_filtered_models`
        lists a model without a DB entry to admins only). Same as Admin > Settings > Models > Public."""
        form: dict[str, Any] = {"id": model_id, "name": name or model_id, "meta": {}, "params": {}}
        if self.version < (0, 8):  # 0.6/0.7: `access_control` None means public (models/models.py, 0.6.43)
            form["access_control"] = None
        else:
            form["access_grants"] = [{"principal_type": "user", "principal_id": "*", "permission": "read"}]
        if self.api("GET", "/api/v1/models/model", params={"id": model_id}, check=False).ok:
            return dict(self.json("POST", "/api/v1/models/model/update", json=form))
        return dict(self.json("POST", "/api/v1/models/create", json=form))

    def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        stream: bool = True,
        token: str | None = None,
        **extra: Any,
    ) -> list[dict[str, Any]]:
        """POST /api/chat/completions as a plain API client (no chat_id/session_id: the reply comes back
        over HTTP). Streamed: the parsed `data:` chunks; not streamed: a one-item list with the reply."""
        self._refresh_models_on_old_releases(token)
        body = {"model": model, "messages": messages, "stream": stream, **extra}
        response = self.api("POST", "/api/chat/completions", json=body, token=token, stream=stream, timeout=300)
        if not stream:
            return [response.json()]
        with response:
            return parse_sse(list(response.iter_lines(decode_unicode=True)))

    def start_chat_task(
        self, model: str, messages: list[dict[str, Any]], token: str | None = None, **extra: Any
    ) -> tuple[str, list[str]]:
        """Start a reply the way the web UI does: a saved chat, `chat_id` + `id` + `session_id`, so Open WebUI
        runs the pipe as a background task (stoppable) and answers at once with its task ids."""
        self._refresh_models_on_old_releases(token)
        chat = self.json("POST", "/api/v1/chats/new", json={"chat": NEW_CHAT}, token=token)
        body = {
            "model": model,
            "messages": messages,
            "stream": True,
            "chat_id": chat["id"],
            "id": str(uuid.uuid4()),
            "session_id": f"test-{uuid.uuid4().hex}",
            **({"parent_message": {}} if self.version < (0, 10) else {}),  # older web UIs always send it
            **extra,
        }
        reply = self.json("POST", "/api/chat/completions", json=body, token=token)
        return str(chat["id"]), list(reply.get("task_ids") or [reply["task_id"]])  # one `task_id` before 0.9

    def _refresh_models_on_old_releases(self, token: str | None) -> None:
        """0.6 looks a chat's model up in the list cached at the last GET /api/models (the web UI fetches it on
        every page load), so a function registered since is "Model not found" until the list is fetched again."""
        if self.version < (0, 9):
            self.models(token)

    def chat_task_ids(self, chat_id: str, token: str | None = None) -> list[str]:
        return list(self.json("GET", f"/api/tasks/chat/{chat_id}", token=token)["task_ids"])

    def stop_chat(self, chat_id: str, token: str | None = None) -> dict[str, Any]:
        """What the web UI's Stop button calls: cancels the chat's running tasks.

        Before 0.9.0 there is no per-chat stop; the web UI stops each of the chat's tasks by id."""
        if self.version >= (0, 9):
            return dict(self.json("POST", f"/api/tasks/chat/{chat_id}/stop", token=token))
        stopped = [self.json("POST", f"/api/tasks/stop/{task}", token=token) for task in self.chat_task_ids(chat_id, token)]
        return {"status": bool(stopped) and all(reply.get("status") for reply in stopped)}

    # ---- settings ----

    def tasks_config(self) -> dict[str, Any]:
        return dict(self.json("GET", "/api/v1/tasks/config"))

    def set_tasks(self, enabled: bool | None = None, **flags: bool) -> dict[str, Any]:
        """Switch every background task (title, tags, follow-ups, autocomplete, queries) on or off, and/or
        set single flags (`ENABLE_TITLE_GENERATION=True`). The update form needs every field: read, change, write."""
        config = self.tasks_config()
        if enabled is not None:
            config.update({key: enabled for key in TASK_FLAGS})
        config.update(flags)
        return dict(self.json("POST", "/api/v1/tasks/config/update", json=config))

    def add_openai_connection(
        self, base_url: str, key: str = "", config: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Admin > Settings > Connections: append an OpenAI-compatible connection and switch the API on."""
        current = self.json("GET", "/openai/config")
        urls, keys = list(current["OPENAI_API_BASE_URLS"]), list(current["OPENAI_API_KEYS"])
        configs = dict(current.get("OPENAI_API_CONFIGS") or {})
        urls.append(base_url)
        keys.append(key)
        configs[str(len(urls) - 1)] = {"enable": True, **(config or {})}
        form = {
            "ENABLE_OPENAI_API": True,
            "OPENAI_API_BASE_URLS": urls,
            "OPENAI_API_KEYS": keys,
            "OPENAI_API_CONFIGS": configs,
        }
        return dict(self.json("POST", "/openai/config/update", json=form))

    def enable_direct_connections(self, enabled: bool = True) -> dict[str, Any]:
        """Admin > Settings > Connections > Direct Connections (the base-models cache off so new models show)."""
        config = self.json("GET", "/api/v1/configs/connections")
        config.update({"ENABLE_DIRECT_CONNECTIONS": enabled, "ENABLE_BASE_MODELS_CACHE": False})
        return dict(self.json("POST", "/api/v1/configs/connections", json=config))

    def set_user_direct_connections(
        self, base_urls: list[str], keys: list[str] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """Settings > Connections of one user: stored as `settings.ui.directConnections`; the browser reads it
        and fetches these backends itself."""
        settings = self.json("GET", "/api/v1/users/user/settings", token=token) or {}
        settings["ui"] = {
            **(settings.get("ui") or {}),
            "directConnections": {
                "OPENAI_API_BASE_URLS": list(base_urls),
                "OPENAI_API_KEYS": list(keys or [""] * len(base_urls)),
                "OPENAI_API_CONFIGS": {str(i): {"enable": True} for i in range(len(base_urls))},
            },
        }
        return dict(self.json("POST", "/api/v1/users/user/settings/update", json=settings, token=token))


TASK_FLAGS = (
    "ENABLE_TITLE_GENERATION",
    "ENABLE_TAGS_GENERATION",
    "ENABLE_FOLLOW_UP_GENERATION",
    "ENABLE_AUTOCOMPLETE_GENERATION",
    "ENABLE_SEARCH_QUERY_GENERATION",
    "ENABLE_RETRIEVAL_QUERY_GENERATION",
)
