"""Install and uninstall: what to write into Open WebUI, so that running install twice changes nothing.

Install remembers what it did in each function's `meta` (which Open WebUI keeps
as given): the task settings it turned off, for uninstall to restore, and short
fingerprints of the valve values it applied, to tell them from values an admin
changed by hand since.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from installer.bundle import FUNCTIONS, Built
from installer.valve_config import ValveValues, coerce_valve, secret_valves, show_values

if TYPE_CHECKING:  # the client needs `requests`; planning does not
    from installer.openwebui import OpenWebUIClient

# The background LLM tasks that would send a reasoning model three more requests per message.
TASK_FLAGS = {
    "ENABLE_TITLE_GENERATION": "title",
    "ENABLE_TAGS_GENERATION": "tags",
    "ENABLE_FOLLOW_UP_GENERATION": "follow-up",
    "ENABLE_AUTOCOMPLETE_GENERATION": "autocomplete",
    "ENABLE_SEARCH_QUERY_GENERATION": "search-query",
    "ENABLE_RETRIEVAL_QUERY_GENERATION": "retrieval-query",
}
STATE_KEY = "r1relay"  # our key in each function's `meta`


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


@dataclass
class InstallOptions:
    valves: ValveValues = field(default_factory=dict)
    keep_tasks: bool = False
    overwrite_valves: bool = False
    enable_direct_connections: bool = False
    dry_run: bool = False
    switched_off: frozenset[str] = frozenset()  # functions to leave inactive (the demo's absent backends)


class Installer:
    """One install run: creates or updates each function, switches it on, sets valves, quiets tasks; says what changed."""

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


def uninstall(client: OpenWebUIClient, out: Any = None) -> int:
    """Restore the saved task settings first (they live in the functions about to go), then remove ours."""
    out = out or sys.stdout
    installed = client.functions()
    ids = ours(installed)
    tasks = saved_tasks(installed)
    if tasks:
        client.update_task_config(tasks)
        on = [TASK_FLAGS[flag] for flag, value in tasks.items() if value and flag in TASK_FLAGS]
        print(f"  background tasks: restored ({', '.join(on) or 'all off, as before'})", file=out)
    if not ids:
        print("  nothing to remove: no r1relay functions are installed", file=out)
    for fid in ids:
        client.delete_function(fid)
        print(f"  {fid}: removed", file=out)
    return 0
