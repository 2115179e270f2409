#!/usr/bin/env python3
"""r1relay's installer: build the single-file functions and put them into Open WebUI.

Open WebUI stores each function as one Python source string and `exec`s it
into a fresh module, so it cannot import our `backend_adapters` package. The
builder here inlines the modules a pipe or filter uses into one file.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

REPO = Path(__file__).resolve().parent
PACKAGE = "backend_adapters"
# Open WebUI rewrites these substrings anywhere in a function's source (plugin.replace_imports).
OPEN_WEBUI_REWRITES = ("from utils", "from apps", "from main", "from config")


@dataclass(frozen=True)
class FunctionSpec:
    id: str
    source: str
    type: str  # "pipe" or "filter"


FUNCTIONS = (
    FunctionSpec("r1relay_vllm", "pipes/vllm.py", "pipe"),
    FunctionSpec("r1relay_think_fix", "functions/think_fix.py", "filter"),
    FunctionSpec("r1relay_context_fit", "functions/context_fit.py", "filter"),
    FunctionSpec("r1relay_ktransformers", "pipes/ktransformers.py", "pipe"),
    FunctionSpec("r1relay_flask", "pipes/flask.py", "pipe"),
    FunctionSpec("r1relay_thinking_toggle", "functions/thinking_toggle.py", "filter"),
)


class BuildError(Exception):
    """A source that cannot be made into one self-contained file."""


def _package_imports(tree: ast.Module, where: str) -> tuple[list[ast.stmt], list[str]]:
    """The top-level `from backend_adapters.x import …` statements and the modules they name."""
    statements: list[ast.stmt] = []
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == PACKAGE for a in node.names):
            raise BuildError(f"{where}:{node.lineno}: use `from {PACKAGE}.module import name`")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
            if node not in tree.body:
                raise BuildError(f"{where}:{node.lineno}: {PACKAGE} imports must be at module level")
            if node.module == PACKAGE or any(a.asname for a in node.names):
                raise BuildError(f"{where}:{node.lineno}: import names from a {PACKAGE} module, without `as`")
            statements.append(node)
            modules.append(node.module.split(".", 1)[1])
    return statements, modules


def _dependency_order(roots: list[str]) -> list[str]:
    """Modules in an order where each comes after the modules it imports."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise BuildError(f"import cycle through {PACKAGE}.{name}")
        visiting.add(name)
        path = REPO / PACKAGE / f"{name}.py"
        if not path.exists():
            raise BuildError(f"{PACKAGE}.{name} does not exist")
        for dep in _package_imports(ast.parse(path.read_text()), str(path))[1]:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for root in roots:
        visit(root)
    return order


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _body_without(source: str, tree: ast.Module, drop: list[ast.stmt]) -> str:
    """The source text minus the docstring, `__future__` imports and the given statements."""
    lines = source.splitlines()
    cut: set[int] = set()
    skip = list(drop)
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(getattr(tree.body[0], "value", None), ast.Constant):
        skip.append(tree.body[0])
    skip += [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    for node in skip:
        cut.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    kept = [line for i, line in enumerate(lines) if i not in cut]
    return "\n".join(kept).strip("\n")


def build_function(spec: FunctionSpec) -> str:
    """One function's self-contained source, as Open WebUI will store it."""
    path = REPO / spec.source
    source = path.read_text()
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree, clean=False)
    if not docstring or not source.startswith('"""\n'):
        raise BuildError(f"{spec.source}: must start with a frontmatter docstring on its own line")
    own_imports, roots = _package_imports(tree, spec.source)
    parts = [f'"""{docstring}"""', "", "from __future__ import annotations", ""]
    defined: dict[str, str] = {}
    for name in _dependency_order(roots):
        module_path = REPO / PACKAGE / f"{name}.py"
        module_source = module_path.read_text()
        module_tree = ast.parse(module_source)
        for symbol in _top_level_names(module_tree):
            if symbol in defined:
                raise BuildError(f"{symbol!r} is defined in both {defined[symbol]} and {PACKAGE}/{name}.py")
            defined[symbol] = f"{PACKAGE}/{name}.py"
        body = _body_without(module_source, module_tree, _package_imports(module_tree, str(module_path))[0])
        parts += [f"# ---- inlined from {PACKAGE}/{name}.py ----", body, "", ""]
    parts += [f"# ---- {spec.source} ----", _body_without(source, tree, own_imports), ""]
    built = "\n".join(parts)
    for text in OPEN_WEBUI_REWRITES:
        if text in built:
            raise BuildError(f"{spec.id}: the text {text!r} would be rewritten by Open WebUI's loader")
    compile(built, f"<{spec.id}>", "exec")
    return built


def frontmatter(content: str) -> dict[str, str]:
    """The `key: value` lines of a built file's docstring (as Open WebUI reads them)."""
    lines = content.split('"""', 2)[1].splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines) if v}


def export(out_dir: Path) -> list[Path]:
    """Write each function's built file and an Admin > Functions > Import file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    manifest = []
    for spec in FUNCTIONS:
        content = build_function(spec)
        path = out_dir / f"{spec.id}.py"
        path.write_text(content)
        written.append(path)
        meta = frontmatter(content)
        manifest.append(
            {
                "id": spec.id,
                "name": meta.get("title", spec.id),
                "type": spec.type,
                "content": content,
                "meta": {"description": meta.get("description", ""), "manifest": meta},
                "is_active": True,
                "is_global": spec.type == "filter",
            }
        )
    index = out_dir / "functions.json"
    index.write_text(json.dumps(manifest, indent=2))
    written.append(index)
    return written


# ---------------------------------------------------------------------------
# Valve configs: --config FILE (TOML or JSON keyed by function id) and --set
# ---------------------------------------------------------------------------

ValveValues = dict[str, dict[str, Any]]
ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class UsageError(Exception):
    """Something the user typed or configured that cannot work; one line for the terminal."""


def _expand_env(function_id: str, valve: str, value: Any) -> Any:
    """`"${NAME}"` reads the environment, so configs can live in git without their secrets."""
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, str) and (match := ENV_REFERENCE.match(value)):
        name = match.group(1)
        if name not in os.environ:
            raise UsageError(f"{function_id}.{valve} needs the environment variable {name}, which is not set")
        return os.environ[name]
    return value


def load_config(path: Path) -> ValveValues:
    """A TOML or JSON file of `{function_id: {VALVE: value}}`."""
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageError(f"{path}: expected tables keyed by function id, e.g. [r1relay_vllm]")
    return {fid: {k: _expand_env(fid, k, v) for k, v in valves.items()} for fid, valves in data.items()}


def parse_sets(items: list[str]) -> ValveValues:
    """`FUNCTION_ID.VALVE=VALUE` arguments; values stay text until the valve's type is known."""
    values: ValveValues = {}
    for item in items:
        target, eq, value = item.partition("=")
        function_id, dot, valve = target.partition(".")
        if not eq or not dot or not function_id or not valve:
            raise UsageError(f"--set {item!r}: expected FUNCTION_ID.VALVE=VALUE")
        values.setdefault(function_id.strip(), {})[valve.strip()] = value
    return values


def merge_valves(*sources: ValveValues) -> ValveValues:
    merged: ValveValues = {}
    for source in sources:
        for function_id, valves in source.items():
            merged.setdefault(function_id, {}).update(valves)
    unknown = sorted(set(merged) - {spec.id for spec in FUNCTIONS})
    if unknown:
        known = ", ".join(spec.id for spec in FUNCTIONS)
        raise UsageError(f"no r1relay function called {unknown[0]} (there are: {known})")
    return merged


def _schema_type(prop: dict) -> str:
    if "type" in prop:
        return str(prop["type"])
    types = [str(option.get("type")) for option in prop.get("anyOf", []) if option.get("type") != "null"]
    return types[0] if types else "string"


def coerce_valve(function_id: str, name: str, value: Any, schema: dict) -> Any:
    """A configured value as the type Open WebUI will store, so that comparisons are exact."""
    props = schema.get("properties", {})
    if name not in props:
        raise UsageError(f"{function_id} has no valve {name} (valves: {', '.join(props)})")
    kind = _schema_type(props[name])
    try:
        if kind == "boolean":
            if isinstance(value, str):
                if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return value.strip().lower() in ("true", "1", "yes", "on")
            return bool(value)
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{function_id}.{name} must be a {kind}, not {value!r}") from None
    return value if kind != "string" else str(value)


def secret_valves(schema: dict) -> set[str]:
    """Valves shown as password inputs; their values are never printed."""
    props = schema.get("properties", {})
    return {name for name, prop in props.items() if (prop.get("input") or {}).get("type") == "password"}


def fingerprint(function_id: str, name: str, value: Any) -> str:
    """What install remembers of a value it applied: enough to notice a change, useless to recover a secret."""
    raw = f"{function_id}.{name}={json.dumps(value, sort_keys=True)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass
class ValvePlan:
    updates: dict[str, Any] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # changed by hand since install last set them
    applied: dict[str, str] = field(default_factory=dict)  # fingerprints to remember


def plan_valves(function_id: str, wanted: dict[str, Any], current: dict, applied: dict[str, str], overwrite: bool) -> ValvePlan:
    """Which wanted values to write, keeping values an admin changed by hand since the last install."""
    plan = ValvePlan(applied=dict(applied))
    for name, value in wanted.items():
        if name in current and current[name] == value:
            plan.applied[name] = fingerprint(function_id, name, value)
            continue
        hand_edited = name in current and fingerprint(function_id, name, current[name]) != applied.get(name)
        if hand_edited and not overwrite:
            plan.kept.append(name)
            continue
        plan.updates[name] = value
        plan.applied[name] = fingerprint(function_id, name, value)
    return plan


# ---------------------------------------------------------------------------
# Open WebUI's REST API (routers/functions.py, tasks.py, configs.py, auths.py of 0.12.4)
# ---------------------------------------------------------------------------

TASK_FLAGS = {
    "ENABLE_TITLE_GENERATION": "title",
    "ENABLE_TAGS_GENERATION": "tags",
    "ENABLE_FOLLOW_UP_GENERATION": "follow-up",
    "ENABLE_AUTOCOMPLETE_GENERATION": "autocomplete",
    "ENABLE_SEARCH_QUERY_GENERATION": "search-query",
    "ENABLE_RETRIEVAL_QUERY_GENERATION": "retrieval-query",
}
STATE_KEY = "r1relay"  # our key in each function's `meta`, which Open WebUI keeps as given


class OpenWebUIError(Exception):
    """A failed call, worded for one terminal line."""


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:120] or response.reason
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:200]


class OpenWebUIClient:
    """An admin's view of one Open WebUI, through its REST API only."""

    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    @staticmethod
    def sign_in(url: str, email: str, password: str) -> str:
        """An admin session token from an email and password (POST /api/v1/auths/signin)."""
        response = _call(requests.post, f"{url.rstrip('/')}/api/v1/auths/signin", json={"email": email, "password": password})
        if response.status_code in (400, 401, 403):
            raise OpenWebUIError(f"Open WebUI at {url} refused the sign-in for {email}: {_detail(response)}")
        _raise_for(response, "sign-in")
        token = response.json().get("token")
        if not token:
            raise OpenWebUIError(f"Open WebUI at {url} did not return a session token for {email} (is MFA on?)")
        return str(token)

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = _call(self.session.request, f"{self.url}{path}", method=method, json=body, params=params or None, timeout=self.timeout)
        _raise_for(response, f"{method} {path}")
        return response.json() if response.content else None

    def check_admin(self) -> str:
        """Open WebUI's version, after making sure the URL is Open WebUI and the token an admin's."""
        response = _call(self.session.get, f"{self.url}/api/config", timeout=self.timeout)
        try:
            version = str(response.json()["version"])
        except (ValueError, KeyError, TypeError):
            raise OpenWebUIError(f"{self.url} does not look like Open WebUI (GET /api/config answered HTTP {response.status_code})") from None
        response = _call(self.session.get, f"{self.url}/api/v1/functions/list", timeout=self.timeout)
        if response.status_code in (401, 403) and "permission" in _detail(response).lower():
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

    def models(self) -> list[dict]:
        return self.request("GET", "/api/models").get("data", [])


def _call(send: Any, url: str, **kwargs: Any) -> requests.Response:
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


def _raise_for(response: requests.Response, what: str) -> None:
    if response.status_code >= 400:
        raise OpenWebUIError(f"{what} failed: HTTP {response.status_code}: {_detail(response)}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# ---------------------------------------------------------------------------
# Backends: does each configured server answer, as seen from this machine?
# ---------------------------------------------------------------------------

PROBE_PATHS = ("/health", "/v1/models", "/api/tags")


def backend_root(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def probe_backend(url: str, api_key: str = "", timeout: float = 5.0) -> str:
    """`ok`, or why not, in a few words; never containing the key."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    statuses: list[int] = []
    for path in PROBE_PATHS:
        try:
            response = requests.get(f"{backend_root(url)}{path}", headers=headers, timeout=timeout)
        except requests.exceptions.ConnectionError:
            return "unreachable"
        except requests.exceptions.RequestException:
            return "no answer"
        if response.ok:
            return "ok"
        statuses.append(response.status_code)
    if 401 in statuses or 403 in statuses:
        return "rejects the API key"
    return f"answers HTTP {statuses[0]}"


# ---------------------------------------------------------------------------
# install / uninstall / status
# ---------------------------------------------------------------------------


@dataclass
class InstallOptions:
    valves: ValveValues = field(default_factory=dict)
    keep_tasks: bool = False
    overwrite_valves: bool = False
    enable_direct_connections: bool = False
    dry_run: bool = False
    switched_off: frozenset[str] = frozenset()  # functions to leave inactive (the demo's absent backends)


@dataclass
class Built:
    spec: FunctionSpec
    content: str
    meta: dict[str, str]

    @property
    def name(self) -> str:
        return self.meta.get("title", self.spec.id)

    @property
    def version(self) -> str:
        return self.meta.get("version", "?")


def build_all() -> list[Built]:
    built = []
    for spec in FUNCTIONS:
        content = build_function(spec)
        built.append(Built(spec, content, frontmatter(content)))
    return built


def saved_tasks(installed: dict[str, dict]) -> dict[str, bool] | None:
    """The task settings from before r1relay turned them off, as remembered in any of our functions."""
    for function in installed.values():
        saved = (function.get("meta") or {}).get(STATE_KEY, {}).get("saved_tasks")
        if saved:
            return saved
    return None


def ours(installed: dict[str, dict]) -> list[str]:
    """Installed functions that r1relay put there (current ids, and older ones it marked)."""
    ids = {spec.id for spec in FUNCTIONS}
    return sorted(fid for fid, f in installed.items() if fid in ids or STATE_KEY in (f.get("meta") or {}))


class Installer:
    def __init__(self, client: OpenWebUIClient, options: InstallOptions, out: Any = None) -> None:
        self.client = client
        self.options = options
        self.out = out or sys.stdout
        self.changed = False
        self.notes: list[str] = []  # what happened to the function being installed

    def say(self, line: str) -> None:
        print(line, file=self.out)

    def change(self, what: str) -> None:
        self.changed = True
        self.notes.append(what)

    def run(self, built: list[Built]) -> None:
        installed = self.client.functions()
        tasks = self.task_plan(installed)
        for item in built:
            self.install_function(item, installed.get(item.spec.id), tasks)
        if not self.options.keep_tasks:
            self.turn_off_tasks()
        if self.options.enable_direct_connections:
            self.direct_connections()
        if not self.changed:
            self.say("Nothing changed: r1relay was already installed as configured.")

    def task_plan(self, installed: dict[str, dict]) -> dict[str, bool] | None:
        """The task settings to remember for uninstall, or None when tasks stay as they are."""
        if self.options.keep_tasks:
            return saved_tasks(installed)
        current = self.client.task_config()
        return saved_tasks(installed) or {flag: bool(current.get(flag)) for flag in TASK_FLAGS}

    def install_function(self, item: Built, existing: dict | None, tasks: dict[str, bool] | None) -> None:
        self.notes = []
        self.write_function(item, existing, tasks)
        self.say(f"  {item.spec.id}: {'; '.join(self.notes) or 'unchanged'}")

    def write_function(self, item: Built, existing: dict | None, tasks: dict[str, bool] | None) -> None:
        fid = item.spec.id
        state = dict(((existing or {}).get("meta") or {}).get(STATE_KEY) or {})
        state.update(version=item.version)
        if tasks:
            state["saved_tasks"] = tasks
        if existing is None:
            self.change(f"created ({item.spec.type} {item.version})")
            if self.options.dry_run:
                self.describe_wanted_valves(fid)
                return
            existing = self.client.create_function(self.form(item, {}, state))
            existing["content"] = item.content
        elif existing["content"] != item.content or existing["name"] != item.name:
            self.change(f"updated to {item.version}")
            if not self.options.dry_run:
                existing = self.client.update_function(self.form(item, existing.get("meta") or {}, state))
        self.activate(item, existing, state)
        state["applied_valves"] = self.apply_valves(fid, state.get("applied_valves") or {})
        self.save_state(item, existing, state)

    def form(self, item: Built, meta: dict, state: dict) -> dict:
        description = item.meta.get("description", "")
        return {"id": item.spec.id, "name": item.name, "content": item.content, "meta": {**meta, "description": description, STATE_KEY: state}}

    def activate(self, item: Built, function: dict, state: dict) -> None:
        """Switch on (and filters to global) the first time; later, an admin's "off" stands."""
        if item.spec.id in self.options.switched_off:
            if function.get("is_active"):
                self.change("switched off (no backend for it here)")
                if not self.options.dry_run:
                    self.client.toggle(item.spec.id)
            return
        first_time = not state.get("activated")
        state["activated"] = True
        if not function.get("is_active"):
            if not first_time:
                self.notes.append("left off (switched off by hand)")
                return
            self.change("activated")
            if not self.options.dry_run:
                self.client.toggle(item.spec.id)
        if item.spec.type == "filter" and not function.get("is_global") and first_time:
            self.change("made global (on for every model)")
            if not self.options.dry_run:
                self.client.toggle_global(item.spec.id)

    def apply_valves(self, fid: str, applied: dict[str, str]) -> dict[str, str]:
        wanted = self.options.valves.get(fid, {})
        if not wanted:
            return applied
        schema = self.client.valves_spec(fid)
        wanted = {name: coerce_valve(fid, name, value, schema) for name, value in wanted.items()}
        current = self.client.valves(fid)
        plan = plan_valves(fid, wanted, current, applied, self.options.overwrite_valves)
        if plan.kept:
            self.notes.append(f"kept {', '.join(plan.kept)} (changed by hand; --overwrite-valves replaces)")
        if plan.updates:
            self.change(f"valves set: {show_values(plan.updates, secret_valves(schema))}")
            if not self.options.dry_run:
                self.client.update_valves(fid, {**current, **plan.updates})
        return plan.applied

    def describe_wanted_valves(self, fid: str) -> None:
        wanted = self.options.valves.get(fid, {})
        if wanted:
            self.notes.append(f"valves set: {', '.join(wanted)}")

    def save_state(self, item: Built, function: dict, state: dict) -> None:
        """Remember what install applied in the function's meta, which survives restarts and upgrades."""
        meta = function.get("meta") or {}
        if meta.get(STATE_KEY) == state or self.options.dry_run:
            return
        self.client.update_function(self.form(item, meta, state))

    def turn_off_tasks(self) -> None:
        current = self.client.task_config()
        on = [flag for flag in TASK_FLAGS if current.get(flag)]
        if not on:
            return
        self.changed = True
        names = ", ".join(TASK_FLAGS[flag] for flag in on)
        self.say(f"  background tasks: {'would turn' if self.options.dry_run else 'turned'} off {names} generation (uninstall restores them)")
        if not self.options.dry_run:
            self.client.update_task_config(dict.fromkeys(on, False))

    def direct_connections(self) -> None:
        if self.options.dry_run:
            self.say("  direct connections: would be enabled")
            return
        if self.client.enable_direct_connections():
            self.changed = True
            self.say("  direct connections: enabled; each user can add a backend in Settings > Connections")
        else:
            self.say("  direct connections: already on (users add backends in Settings > Connections)")


def show_values(values: dict[str, Any], hidden: set[str]) -> str:
    return ", ".join(f"{name}={'••••' if name in hidden else value}" for name, value in values.items())


def uninstall(client: OpenWebUIClient, out: Any = None) -> int:
    out = out or sys.stdout
    installed = client.functions()
    ids = ours(installed)
    tasks = saved_tasks(installed)
    if tasks:  # first: the saved values live in the functions about to go
        client.update_task_config(tasks)
        on = [TASK_FLAGS[flag] for flag, value in tasks.items() if value and flag in TASK_FLAGS]
        print(f"  background tasks: restored ({', '.join(on) or 'all off, as before'})", file=out)
    if not ids:
        print("  nothing to remove: no r1relay functions are installed", file=out)
    for fid in ids:
        client.delete_function(fid)
        print(f"  {fid}: removed", file=out)
    return 0


# ---------------------------------------------------------------------------
# Checking the result: models in the picker, backends answering
# ---------------------------------------------------------------------------


@dataclass
class Row:
    function_id: str
    type: str
    state: str
    version: str
    source: str
    models: str
    backend: str
    problem: str = ""


def check_function(client: OpenWebUIClient, item: Built, function: dict | None, models: list[dict]) -> Row:
    fid = item.spec.id
    if function is None:
        return Row(fid, item.spec.type, "not installed", "-", "-", "-", "-", problem=f"{fid} is not installed")
    flags = [("active" if function.get("is_active") else "inactive")] + (["global"] if function.get("is_global") else [])
    version = str(((function.get("meta") or {}).get("manifest") or {}).get("version", "?"))
    source = "matches" if function.get("content") == item.content else "differs"
    row = Row(fid, item.spec.type, ", ".join(flags), version, source, "-", "-")
    valves = client.valves(fid)
    if item.spec.type != "pipe":
        row.backend, row.problem = describe_backends(valves) if valves.get("BASE_URL") else ("-", "")
        return row
    row.models, model_problem = describe_models(fid, models)
    if not (valves.get("BASE_URLS") or valves.get("MODELS")):
        row.backend = "not configured"  # its defaults may still work; nothing to hold it to
        return row
    row.backend, backend_problem = describe_backends(valves)
    if function.get("is_active"):
        row.problem = model_problem or backend_problem
    return row


def describe_models(fid: str, models: list[dict]) -> tuple[str, str]:
    mine = [m for m in models if str(m.get("id", "")).startswith(f"{fid}.")]
    usable = [m for m in mine if m["id"] != f"{fid}.unavailable"]
    if usable:
        return f"{len(usable)} listed", ""
    if mine:
        return "unavailable", f"{fid}: {mine[0].get('name', 'unavailable')}"
    return "none", f"{fid}: no models in GET /api/models (is the function active?)"


def describe_backends(valves: dict) -> tuple[str, str]:
    listed = valves.get("BASE_URLS") or valves.get("BASE_URL") or ""
    urls = [u.strip() for u in str(listed).replace("\n", ",").split(",") if u.strip()]
    if not urls:
        return "default", ""
    results = [(url, probe_backend(url, str(valves.get("API_KEY") or ""))) for url in urls]
    bad = [(url, result) for url, result in results if result != "ok"]
    summary = results[0][1] if len(results) == 1 else f"{len(results) - len(bad)}/{len(results)} ok"
    problem = f"backend {bad[0][0]} {bad[0][1]} (checked from this machine)" if bad else ""
    return summary, problem


def check_all(client: OpenWebUIClient, built: list[Built]) -> list[Row]:
    installed = client.functions()
    models = client.models()
    return [check_function(client, item, installed.get(item.spec.id), models) for item in built]


def print_table(rows: list[Row], out: Any = None) -> None:
    header = ("function", "type", "state", "version", "source", "models", "backend")
    table = [header] + [(r.function_id, r.type, r.state, r.version, r.source, r.models, r.backend) for r in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    for line in table:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip(), file=out or sys.stdout)


def print_tasks(client: OpenWebUIClient, out: Any = None) -> None:
    current = client.task_config()
    on = [TASK_FLAGS[flag] for flag in TASK_FLAGS if current.get(flag)]
    print(f"  background tasks on: {', '.join(on) if on else 'none'}", file=out or sys.stdout)


# ---------------------------------------------------------------------------
# demo: Open WebUI + the reference backends on a tiny local R1-shaped model
# ---------------------------------------------------------------------------

DEMO_DIR = Path(os.environ.get("R1RELAY_DEMO_DIR", REPO / ".cache" / "demo"))  # data, login, logs
DEMO_EMAIL = "admin@example.com"
# For every demo server: no hub look-ups, no telemetry, no update checks.
DEMO_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
OPEN_WEBUI_ENV = {
    "OFFLINE_MODE": "true",
    "HF_HUB_OFFLINE": "1",
    "ENABLE_OLLAMA_API": "false",
    "ENABLE_OPENAI_API": "false",
    "ENABLE_VERSION_UPDATE_CHECK": "false",
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


def _remembered(path: Path, make: Any) -> str:
    """A value kept in a file under .cache/demo, so a second demo run reuses the same data."""
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
                cwd=REPO,
                env={**os.environ, **DEMO_OFFLINE_ENV, **(env or {})},
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


def demo_admin_token(url: str, password: str) -> str:
    """Sign in as the demo admin, creating it (the first sign-up is an admin) on a fresh DATA_DIR."""
    try:
        return OpenWebUIClient.sign_in(url, DEMO_EMAIL, password)
    except OpenWebUIError:
        pass
    response = _call(requests.post, f"{url}/api/v1/auths/signup", json={"name": "Demo Admin", "email": DEMO_EMAIL, "password": password})
    if not response.ok:
        raise UsageError(f"cannot create the demo admin ({_detail(response)}); delete {DEMO_DIR} to start over")
    return str(response.json()["token"])


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


def set_default_model(client: OpenWebUIClient, model_id: str) -> None:
    config = client.request("GET", "/api/v1/configs/models")
    client.request("POST", "/api/v1/configs/models", {**config, "DEFAULT_MODELS": model_id})


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_demo(port: int) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or `kill`: stop the children too
        signal.signal(signum, _interrupt)
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "open-webui").exists():
        raise UsageError(f"open-webui is not installed next to {sys.executable}: run `make demo`")
    print("Making the tiny R1-shaped model (seconds, once) …")
    made = subprocess.run([sys.executable, str(REPO / "examples" / "make_tiny_r1.py")], capture_output=True, text=True)
    if made.returncode != 0:
        raise UsageError(f"examples/make_tiny_r1.py failed: {(made.stderr.strip().splitlines() or ['?'])[-1]}")
    model_dir = REPO / ".cache" / "models" / "tiny-r1"
    ui_port, serve_port, flask_port = free_port(port), free_port(), free_port()
    url = f"http://127.0.0.1:{ui_port}"
    password = _remembered(DEMO_DIR / "admin-password", lambda: secrets.token_urlsafe(12))
    secret_key = _remembered(DEMO_DIR / "secret-key", lambda: secrets.token_urlsafe(32))
    children = Children(DEMO_DIR / "logs")
    try:
        print(f"Starting transformers serve, the Flask server and Open WebUI (logs in {children.log_dir}) …")
        children.start("transformers-serve", [str(bin_dir / "transformers"), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(serve_port), "--device", "cpu"])
        children.start("flask", [sys.executable, str(REPO / "examples" / "flask_r1_server.py"), "--model", str(model_dir), "--port", str(flask_port)])
        ui_env = {**OPEN_WEBUI_ENV, "DATA_DIR": str(DEMO_DIR / "data"), "WEBUI_SECRET_KEY": secret_key}
        children.start("open-webui", [str(bin_dir / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(ui_port)], ui_env)
        children.wait_until_up("transformers-serve", f"http://127.0.0.1:{serve_port}/health")
        children.wait_until_up("flask", f"http://127.0.0.1:{flask_port}/health")
        children.wait_until_up("open-webui", f"{url}/health")
        client = OpenWebUIClient(url, demo_admin_token(url, password))
        print("Installing r1relay …")
        built = build_all()
        valves = demo_valves(serve_port, flask_port)
        no_backend = frozenset(item.spec.id for item in built if item.spec.type == "pipe" and item.spec.id not in valves)
        Installer(client, InstallOptions(valves=valves, overwrite_valves=True, switched_off=no_backend)).run(built)
        set_default_model(client, "r1relay_vllm.tiny-r1")
        verify(client, built)
        print(f"\nOpen WebUI is ready: {url}\n  email:    {DEMO_EMAIL}\n  password: {password}\nPress Ctrl-C to stop.")
        while (problem := children.first_exited()) is None:
            time.sleep(1)
        raise UsageError(problem)
    except KeyboardInterrupt:
        print("\nStopping …")
        return 0
    finally:
        children.stop_all()


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(args.port)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def connect(args: argparse.Namespace) -> tuple[OpenWebUIClient, str]:
    """A client with an admin token, and Open WebUI's version; fails in one line."""
    url = args.url.rstrip("/")
    if not urlsplit(url).scheme.startswith("http") or not urlsplit(url).netloc:
        raise UsageError(f"--url {args.url!r} is not an http(s) URL")
    token = args.token or os.environ.get("OPENWEBUI_TOKEN", "")
    if not token and args.email and args.password:
        token = OpenWebUIClient.sign_in(url, args.email, args.password)
    if not token:
        raise UsageError("no admin token: pass --token, set OPENWEBUI_TOKEN, or use --email and --password")
    client = OpenWebUIClient(url, token)
    return client, client.check_admin()


def verify(client: OpenWebUIClient, built: list[Built]) -> int:
    rows = check_all(client, built)
    print()
    print_table(rows)
    print_tasks(client)
    problems = [row.problem for row in rows if row.problem]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_install(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else {}
    valves = merge_valves(config, parse_sets(args.set or []))
    built = build_all()
    client, version = connect(args)
    dry = " (dry run: nothing is written)" if args.dry_run else ""
    print(f"Installing r1relay into Open WebUI {version} at {client.url}{dry}")
    options = InstallOptions(valves, args.keep_tasks, args.overwrite_valves, args.enable_direct_connections, args.dry_run)
    Installer(client, options).run(built)
    return 0 if args.dry_run else verify(client, built)


def cmd_uninstall(args: argparse.Namespace) -> int:
    client, version = connect(args)
    print(f"Removing r1relay from Open WebUI {version} at {client.url}")
    return uninstall(client)


def cmd_status(args: argparse.Namespace) -> int:
    client, version = connect(args)
    built = build_all()
    print(f"Open WebUI {version} at {client.url}; 'source' compares with this checkout's build")
    rows = check_all(client, built)
    print()
    print_table(rows)
    print_tasks(client)
    saved = saved_tasks(client.functions())
    if saved:
        print("  uninstall restores: " + (", ".join(TASK_FLAGS[f] for f, on in saved.items() if on and f in TASK_FLAGS) or "all off"))
    for problem in (row.problem for row in rows if row.problem):
        print(f"  problem: {problem}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    for path in export(args.dir):
        print(f"wrote {path}")
    return 0


def _add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="Open WebUI's address, e.g. http://localhost:8080")
    parser.add_argument("--token", help="an admin's API key or JWT (default: $OPENWEBUI_TOKEN)")
    parser.add_argument("--email", help="sign in as this admin instead of passing a token")
    parser.add_argument("--password", help="the admin's password (with --email)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="install.py", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    install_cmd = commands.add_parser("install", help="create or update the functions, set valves, quiet background tasks")
    _add_connection_args(install_cmd)
    install_cmd.add_argument("--config", type=Path, help="valves as TOML or JSON keyed by function id (see configs/)")
    install_cmd.add_argument("--set", action="append", metavar="FUNCTION_ID.VALVE=VALUE", help="one valve; repeatable")
    install_cmd.add_argument("--keep-tasks", action="store_true", help="leave title/tags/follow-up/query generation as they are")
    install_cmd.add_argument("--overwrite-valves", action="store_true", help="replace valves an admin changed by hand")
    install_cmd.add_argument("--enable-direct-connections", action="store_true", help="let users add their own backends")
    install_cmd.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    install_cmd.set_defaults(run=cmd_install)
    for name, run, text in (
        ("uninstall", cmd_uninstall, "remove the functions and restore the background task settings"),
        ("status", cmd_status, "what is installed, versions, source vs this checkout, backend health"),
    ):
        sub = commands.add_parser(name, help=text)
        _add_connection_args(sub)
        sub.set_defaults(run=run)
    export_cmd = commands.add_parser("export", help="write the built functions and functions.json into DIR")
    export_cmd.add_argument("dir", type=Path)
    export_cmd.set_defaults(run=cmd_export)
    demo_cmd = commands.add_parser("demo", help="run Open WebUI with r1relay and a tiny local R1 model on this machine")
    demo_cmd.add_argument("--port", type=int, default=8080, help="Open WebUI's port on 127.0.0.1")
    demo_cmd.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (UsageError, OpenWebUIError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
