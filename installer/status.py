"""Is r1relay installed and working? Each function's state, version and source, its models in the picker, its backends answering.

`install` ends with `verify` (a problem is one `error:` line and exit code 1);
`status` shows the same table and never fails. Backends are probed from the
machine running the installer, and a probe never prints the API key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import requests

from installer.bundle import Built
from installer.openwebui import OpenWebUIClient
from installer.plan import TASK_FLAGS, saved_tasks

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


def verify(client: OpenWebUIClient, built: list[Built]) -> int:
    """The table after an install; each problem is one `error:` line, and any makes the exit code 1."""
    rows = check_all(client, built)
    print()
    print_table(rows)
    print_tasks(client)
    problems = [row.problem for row in rows if row.problem]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def show_status(client: OpenWebUIClient, built: list[Built]) -> int:
    """The same table, what uninstall would restore, and problems as plain lines: status reports, it never fails."""
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
