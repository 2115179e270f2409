"""Valve values from `--config FILE` (TOML or JSON keyed by function id) and `--set`, checked before any network call.

Values stay as typed until `coerce_valve` knows the valve's type from the
function's schema, so the comparison with what Open WebUI stores is exact.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from installer.bundle import FUNCTIONS
from installer.errors import UsageError

ValveValues = dict[str, dict[str, Any]]
ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


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
    """Later sources win, valve by valve; a function id r1relay does not ship is a typo."""
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


def show_values(values: dict[str, Any], hidden: set[str]) -> str:
    return ", ".join(f"{name}={'••••' if name in hidden else value}" for name, value in values.items())
