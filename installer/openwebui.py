"""An admin's view of one Open WebUI, through its REST API only (routers/functions.py, tasks.py, configs.py, auths.py of 0.12.4).

Every failure becomes an `OpenWebUIError` worded for one terminal line; a
token never appears in one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from installer.errors import OpenWebUIError


class OpenWebUIClient:
    """Calls made with an admin's API key or JWT."""

    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    @staticmethod
    def sign_in(url: str, email: str, password: str) -> str:
        """An admin session token from an email and password (POST /api/v1/auths/signin)."""
        response = call(requests.post, f"{url.rstrip('/')}/api/v1/auths/signin", json={"email": email, "password": password})
        if response.status_code in (400, 401, 403):
            raise OpenWebUIError(f"Open WebUI at {url} refused the sign-in for {email}: {detail(response)}")
        _raise_for(response, "sign-in")
        token = response.json().get("token")
        if not token:
            raise OpenWebUIError(f"Open WebUI at {url} did not return a session token for {email} (is MFA on?)")
        return str(token)

    @staticmethod
    def sign_up(url: str, name: str, email: str, password: str) -> str:
        """A new account's token (POST /api/v1/auths/signup); on a fresh Open WebUI the first one is an admin."""
        response = call(requests.post, f"{url.rstrip('/')}/api/v1/auths/signup", json={"name": name, "email": email, "password": password})
        _raise_for(response, "sign-up")
        return str(response.json()["token"])

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = call(self.session.request, f"{self.url}{path}", method=method, json=body, params=params or None, timeout=self.timeout)
        _raise_for(response, f"{method} {path}")
        return response.json() if response.content else None

    def check_admin(self) -> str:
        """Open WebUI's version, after making sure the URL is Open WebUI and the token an admin's."""
        response = call(self.session.get, f"{self.url}/api/config", timeout=self.timeout)
        try:
            version = str(response.json()["version"])
        except (ValueError, KeyError, TypeError):
            raise OpenWebUIError(f"{self.url} does not look like Open WebUI (GET /api/config answered HTTP {response.status_code})") from None
        response = call(self.session.get, f"{self.url}/api/v1/functions/list", timeout=self.timeout)
        if response.status_code in (401, 403) and "permission" in detail(response).lower():
            raise OpenWebUIError(f"Open WebUI at {self.url} accepted the token, but it is not an admin's")
        if response.status_code in (401, 403):
            raise OpenWebUIError(
                f"Open WebUI at {self.url} rejected the token (HTTP {response.status_code}): use an admin's API key or JWT"
            )
        _raise_for(response, "GET /api/v1/functions/list")
        return version

    # ---- functions ----
    def functions(self) -> dict[str, dict]:
        return {f["id"]: f for f in self.request("GET", "/api/v1/functions/export")}

    def create_function(self, form: dict) -> dict:
        return self.request("POST", "/api/v1/functions/create", form)

    def update_function(self, form: dict) -> dict:
        return self.request("POST", f"/api/v1/functions/id/{form['id']}/update", form)

    def delete_function(self, function_id: str) -> None:
        self.request("DELETE", f"/api/v1/functions/id/{function_id}/delete")

    def toggle(self, function_id: str) -> None:
        self.request("POST", f"/api/v1/functions/id/{function_id}/toggle")

    def toggle_global(self, function_id: str) -> None:
        self.request("POST", f"/api/v1/functions/id/{function_id}/toggle/global")

    def valves(self, function_id: str) -> dict:
        return self.request("GET", f"/api/v1/functions/id/{function_id}/valves") or {}

    def valves_spec(self, function_id: str) -> dict:
        return self.request("GET", f"/api/v1/functions/id/{function_id}/valves/spec") or {}

    def update_valves(self, function_id: str, valves: dict) -> None:
        self.request("POST", f"/api/v1/functions/id/{function_id}/valves/update", valves)

    # ---- settings ----
    def task_config(self) -> dict:
        return self.request("GET", "/api/v1/tasks/config")

    def update_task_config(self, changes: dict[str, bool]) -> None:
        """The form needs every field: read, change, write back."""
        self.request("POST", "/api/v1/tasks/config/update", {**self.task_config(), **changes})

    def enable_direct_connections(self) -> bool:
        """True when this call turned them on."""
        config = self.request("GET", "/api/v1/configs/connections")
        if config.get("ENABLE_DIRECT_CONNECTIONS"):
            return False
        self.request("POST", "/api/v1/configs/connections", {**config, "ENABLE_DIRECT_CONNECTIONS": True})
        return True

    def set_default_model(self, model_id: str) -> None:
        config = self.request("GET", "/api/v1/configs/models")
        self.request("POST", "/api/v1/configs/models", {**config, "DEFAULT_MODELS": model_id})

    def models(self) -> list[dict]:
        return self.request("GET", "/api/models").get("data", [])


def call(send: Any, url: str, **kwargs: Any) -> requests.Response:
    """One HTTP call; network failures become one readable line."""
    kwargs.setdefault("timeout", 30)
    try:
        return send(url=url, **kwargs)
    except requests.exceptions.ConnectionError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else "no connection"
        raise OpenWebUIError(f"cannot reach Open WebUI at {_origin(url)} ({reason})") from None
    except requests.exceptions.Timeout:
        raise OpenWebUIError(f"Open WebUI at {_origin(url)} did not answer in time") from None
    except requests.exceptions.RequestException as exc:
        raise OpenWebUIError(f"cannot talk to {_origin(url)}: {type(exc).__name__}") from None


def detail(response: requests.Response) -> str:
    """What Open WebUI said went wrong (its `detail` field), short."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:120] or response.reason
    found = body.get("detail", body) if isinstance(body, dict) else body
    return str(found)[:200]


def _raise_for(response: requests.Response, what: str) -> None:
    if response.status_code >= 400:
        raise OpenWebUIError(f"{what} failed: HTTP {response.status_code}: {detail(response)}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
