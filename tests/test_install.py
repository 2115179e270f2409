"""install.py: configs, valve planning and the command line, then the install flows against a real Open WebUI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from installer import bundle, errors, openwebui, plan, status, valve_config
from tests.emulators.vllm import VLLMEmulator
from tests.support.built import load_function_source
from tests.support.openwebui import OPEN_WEBUI_BIN, OpenWebUI
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.toml"))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "install.py"), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )



@pytest.fixture(scope="module")
def valve_schemas() -> dict[str, dict]:
    """Each built function's Valves JSON schema, as Open WebUI's /valves/spec would give it."""
    schemas = {}
    for spec in bundle.FUNCTIONS:
        module = load_function_source(spec.id, bundle.build_function(spec))
        owner = module.Pipe if spec.type == "pipe" else module.Filter
        schemas[spec.id] = owner.Valves.model_json_schema()
    return schemas


# ---- --set and --config ----


def test_set_arguments_become_valves_per_function() -> None:
    assert valve_config.parse_sets(["r1relay_vllm.BASE_URLS=http://a:8000/v1", "r1relay_vllm.MODELS=x=y"]) == {
        "r1relay_vllm": {"BASE_URLS": "http://a:8000/v1", "MODELS": "x=y"}
    }


@pytest.mark.parametrize("bad", ["r1relay_vllm=1", "BASE_URLS=1", "r1relay_vllm.BASE_URLS", ".X=1"])
def test_malformed_set_argument_is_a_usage_error(bad: str) -> None:
    with pytest.raises(errors.UsageError, match="FUNCTION_ID.VALVE=VALUE"):
        valve_config.parse_sets([bad])


def test_unknown_function_id_names_the_known_ones() -> None:
    with pytest.raises(errors.UsageError, match="r1relay_vllm"):
        valve_config.merge_valves({"r1relay_vlm": {"BASE_URLS": "x"}})


def test_toml_config_reads_secrets_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[r1relay_vllm]\nAPI_KEY = "${MY_KEY}"\nBASE_URLS = ["http://a/v1", "http://b/v1"]\nMAX_CONCURRENCY = 4\n')
    monkeypatch.setenv("MY_KEY", "sk-secret")
    assert valve_config.load_config(config) == {
        "r1relay_vllm": {"API_KEY": "sk-secret", "BASE_URLS": "http://a/v1,http://b/v1", "MAX_CONCURRENCY": 4}
    }
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(errors.UsageError, match="MY_KEY"):
        valve_config.load_config(config)


def test_json_config_and_broken_files(tmp_path: Path) -> None:
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"r1relay_vllm": {"MODELS": "a"}}))
    assert valve_config.load_config(good) == {"r1relay_vllm": {"MODELS": "a"}}
    broken = tmp_path / "b.toml"
    broken.write_text("[r1relay_vllm\n")
    with pytest.raises(errors.UsageError, match="not valid TOML"):
        valve_config.load_config(broken)
    flat = tmp_path / "f.toml"
    flat.write_text('BASE_URLS = "x"\n')
    with pytest.raises(errors.UsageError, match="keyed by function id"):
        valve_config.load_config(flat)


def test_values_are_coerced_to_the_valve_types(valve_schemas: dict[str, dict]) -> None:
    schema = valve_schemas["r1relay_vllm"]
    assert valve_config.coerce_valve("r1relay_vllm", "MAX_CONCURRENCY", "4", schema) == 4
    assert valve_config.coerce_valve("r1relay_vllm", "REQUEST_TIMEOUT", 30, schema) == 30.0
    assert valve_config.coerce_valve("r1relay_vllm", "VERIFY_TLS", "off", schema) is False
    assert valve_config.coerce_valve("r1relay_vllm", "MODELS", "7", schema) == "7"
    with pytest.raises(errors.UsageError, match="must be a integer"):
        valve_config.coerce_valve("r1relay_vllm", "MAX_CONCURRENCY", "four", schema)
    with pytest.raises(errors.UsageError, match="no valve BASE_URL "):
        valve_config.coerce_valve("r1relay_vllm", "BASE_URL", "x", schema)


def test_password_inputs_are_recognised_as_secrets(valve_schemas: dict[str, dict]) -> None:
    assert "API_KEY" in valve_config.secret_valves(valve_schemas["r1relay_vllm"])
    assert valve_config.show_values({"API_KEY": "sk-123", "MODELS": "m"}, {"API_KEY"}) == "API_KEY=••••, MODELS=m"


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_configs_fit_the_built_functions(config: Path, valve_schemas: dict[str, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VLLM_API_KEY", "R1_API_KEY"):
        monkeypatch.setenv(name, "from-env")
    for function_id, valves in valve_config.merge_valves(valve_config.load_config(config)).items():
        coerced = {k: valve_config.coerce_valve(function_id, k, v, valve_schemas[function_id]) for k, v in valves.items()}
        spec = next(s for s in bundle.FUNCTIONS if s.id == function_id)
        module = load_function_source(function_id, bundle.build_function(spec))
        (module.Pipe if spec.type == "pipe" else module.Filter).Valves(**coerced)  # Open WebUI would accept them


# ---- which valves install writes ----


def test_first_install_sets_every_wanted_valve() -> None:
    valve_plan = plan.plan_valves("f", {"A": 1, "B": "x"}, current={}, applied={}, overwrite=False)
    assert valve_plan.updates == {"A": 1, "B": "x"} and not valve_plan.kept
    assert set(valve_plan.applied) == {"A", "B"}


def test_values_install_set_before_are_updated_when_the_config_changes() -> None:
    first = plan.plan_valves("f", {"A": 1}, current={}, applied={}, overwrite=False)
    second = plan.plan_valves("f", {"A": 2}, current={"A": 1}, applied=first.applied, overwrite=False)
    assert second.updates == {"A": 2}


def test_a_value_changed_by_hand_is_kept_unless_overwriting() -> None:
    first = plan.plan_valves("f", {"A": 1}, current={}, applied={}, overwrite=False)
    kept = plan.plan_valves("f", {"A": 1}, current={"A": 5}, applied=first.applied, overwrite=False)
    assert kept.updates == {} and kept.kept == ["A"] and kept.applied == first.applied
    replaced = plan.plan_valves("f", {"A": 1}, current={"A": 5}, applied=first.applied, overwrite=True)
    assert replaced.updates == {"A": 1}


def test_an_admins_value_install_never_set_counts_as_changed_by_hand() -> None:
    valve_plan = plan.plan_valves("f", {"A": 1}, current={"A": 3}, applied={}, overwrite=False)
    assert valve_plan.kept == ["A"]


def test_fingerprints_do_not_contain_the_value() -> None:
    print_ = plan.fingerprint("r1relay_vllm", "API_KEY", "sk-very-secret")
    assert "secret" not in print_ and len(print_) == 16
    assert print_ != plan.fingerprint("r1relay_vllm", "API_KEY", "sk-other")


# ---- the command line fails in one clear line ----


def test_unreachable_url_is_one_line_and_exit_code_1() -> None:
    result = run_cli("install", "--url", f"http://127.0.0.1:{free_port()}", "--token", "sk-x")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "cannot reach Open WebUI" in result.stderr and "sk-x" not in result.stderr


def test_missing_token_says_how_to_give_one() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENWEBUI_TOKEN"}
    result = run_cli("status", "--url", "http://127.0.0.1:9", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no admin token: pass --token, set OPENWEBUI_TOKEN, or use --email and --password"


def test_bad_set_argument_fails_before_touching_the_network() -> None:
    result = run_cli("install", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t", "--set", "nope")
    assert result.returncode == 1 and "FUNCTION_ID.VALVE=VALUE" in result.stderr


def test_export_still_writes_an_importable_bundle(tmp_path: Path) -> None:
    result = run_cli("export", str(tmp_path))
    assert result.returncode == 0
    manifest = json.loads((tmp_path / "functions.json").read_text())
    assert [f["id"] for f in manifest] == [s.id for s in bundle.FUNCTIONS]


# ---------------------------------------------------------------------------
# Against a real Open WebUI (one fresh server for this module: install changes global settings)
# ---------------------------------------------------------------------------

MODEL = "r1relay_vllm.deepseek-ai/DeepSeek-R1"
BACKEND_KEY = "sk-backend-secret-123"


@pytest.fixture(scope="module")
def backend() -> Iterator[VLLMEmulator]:
    emulator = VLLMEmulator(api_key=BACKEND_KEY).start()
    yield emulator
    emulator.stop()


def cli(ui: OpenWebUI, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--url", ui.url, "--token", token or ui.token)


def install_cli(ui: OpenWebUI, backend: VLLMEmulator, *extra: str) -> subprocess.CompletedProcess[str]:
    result = cli(
        ui, "install", "--set", f"r1relay_vllm.BASE_URLS={backend.base_url}", "--set", f"r1relay_vllm.API_KEY={BACKEND_KEY}", *extra
    )
    assert BACKEND_KEY not in result.stdout + result.stderr
    return result


def admin(ui: OpenWebUI) -> openwebui.OpenWebUIClient:
    return openwebui.OpenWebUIClient(ui.url, ui.token)


def task_flags(ui: OpenWebUI) -> dict[str, bool]:
    config = admin(ui).task_config()
    return {flag: config[flag] for flag in plan.TASK_FLAGS}


def send_like_the_browser(ui: OpenWebUI, model: str, text: str = "Hello there") -> dict:
    """A new chat's first message as Open WebUI's Chat.svelte sends it (socket session, background tasks
    asked for), then wait until the chat's task, and the tasks it fires afterwards, have finished."""
    client = admin(ui)
    user_id, answer_id = str(uuid.uuid4()), str(uuid.uuid4())
    user_message = {"id": user_id, "parentId": None, "childrenIds": [answer_id], "role": "user", "content": text, "models": [model]}
    started = client.request(
        "POST",
        "/api/chat/completions",
        {
            "stream": True,
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "params": {},
            "features": {},
            "session_id": f"test-{uuid.uuid4().hex[:8]}",
            "id": answer_id,
            "parent_id": None,
            "user_message": user_message,
            "background_tasks": {"title_generation": True, "tags_generation": True, "follow_up_generation": True},
        },
    )
    chat_id = started["chat_id"]
    wait_for(lambda: not client.request("GET", f"/api/tasks/chat/{chat_id}")["task_ids"], "the chat task to finish")
    chat = client.request("GET", f"/api/v1/chats/{chat_id}")
    return chat["chat"]["history"]["messages"][answer_id]


def wait_for(condition: Any, what: str, attempts: int = 600) -> None:
    """Poll a condition (a bound on attempts, not a timing assertion)."""
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWebUI]:
    """One fresh Open WebUI for this module: install changes its global settings."""
    if not OPEN_WEBUI_BIN.exists():
        pytest.skip(f"open-webui is not installed ({OPEN_WEBUI_BIN})")
    with OpenWebUI(tmp_path_factory.mktemp("openwebui-install")) as server:
        yield server


def test_fresh_install_creates_activates_and_quiets_background_tasks(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    cli(ui, "uninstall")
    result = install_cli(ui, backend)
    assert result.returncode == 0, result.stderr
    for spec in bundle.FUNCTIONS:
        assert f"{spec.id}: created" in result.stdout
    installed = admin(ui).functions()
    for spec in bundle.FUNCTIONS:
        assert installed[spec.id]["is_active"]
        assert installed[spec.id]["is_global"] == (spec.type == "filter")
        assert installed[spec.id]["content"] == bundle.build_function(spec)
    assert not any(task_flags(ui).values())
    assert MODEL in {m["id"] for m in admin(ui).models()}
    assert admin(ui).valves("r1relay_vllm")["API_KEY"] == BACKEND_KEY
    assert "API_KEY=••••" in result.stdout


def test_second_install_changes_nothing_and_says_so(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    install_cli(ui, backend)
    before = admin(ui).functions()
    result = install_cli(ui, backend)
    assert result.returncode == 0, result.stderr
    assert "Nothing changed" in result.stdout
    after = admin(ui).functions()
    assert {k: (f["version_id"], f["updated_at"]) for k, f in after.items()} == {
        k: (f["version_id"], f["updated_at"]) for k, f in before.items()
    }


def test_a_valve_changed_by_hand_survives_reinstall(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    install_cli(ui, backend, "--set", "r1relay_vllm.MAX_CONCURRENCY=4")
    client = admin(ui)
    client.update_valves("r1relay_vllm", {**client.valves("r1relay_vllm"), "MAX_CONCURRENCY": 2})  # as Admin > Functions does
    kept = install_cli(ui, backend, "--set", "r1relay_vllm.MAX_CONCURRENCY=4")
    assert kept.returncode == 0, kept.stderr
    assert "kept MAX_CONCURRENCY (changed by hand" in kept.stdout
    assert client.valves("r1relay_vllm")["MAX_CONCURRENCY"] == 2
    replaced = install_cli(ui, backend, "--set", "r1relay_vllm.MAX_CONCURRENCY=4", "--overwrite-valves")
    assert "MAX_CONCURRENCY=4" in replaced.stdout
    assert client.valves("r1relay_vllm")["MAX_CONCURRENCY"] == 4


def test_after_install_one_message_is_one_backend_request(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    assert install_cli(ui, backend).returncode == 0
    backend.requests.clear()
    answer = send_like_the_browser(ui, MODEL)
    assert answer["done"] and "Hello! How can I help you today?" in answer["content"]
    assert len(backend.requests) == 1
    assert backend.requests[0]["body"]["stream"] is True


def test_with_keep_tasks_the_background_tasks_still_hit_the_backend(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    cli(ui, "uninstall")  # restores Open WebUI's own defaults: titles, tags, follow-ups on
    assert install_cli(ui, backend, "--keep-tasks").returncode == 0
    backend.requests.clear()
    send_like_the_browser(ui, MODEL)
    wait_for(lambda: len(backend.requests) >= 3, "title, tags and follow-up requests")
    assert len(backend.requests) > 1
    cli(ui, "uninstall")


def test_uninstall_removes_the_functions_and_restores_the_task_settings(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    cli(ui, "uninstall")
    client = admin(ui)
    mixed = {flag: i % 2 == 0 for i, flag in enumerate(plan.TASK_FLAGS)}  # not Open WebUI's defaults
    client.update_task_config(mixed)
    assert install_cli(ui, backend).returncode == 0
    assert not any(task_flags(ui).values())
    result = cli(ui, "uninstall")
    assert result.returncode == 0, result.stderr
    assert not set(client.functions()) & {spec.id for spec in bundle.FUNCTIONS}
    assert task_flags(ui) == mixed
    assert "nothing to remove" in cli(ui, "uninstall").stdout


def test_status_compares_installed_sources_with_this_checkout(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    install_cli(ui, backend)
    result = cli(ui, "status")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip().startswith("r1relay_")}
    assert set(rows) == {spec.id for spec in bundle.FUNCTIONS}
    assert all(" matches " in row for row in rows.values())
    assert "1 listed" in rows["r1relay_vllm"] and " ok" in rows["r1relay_vllm"]


def test_a_bad_token_is_one_clear_line_and_exit_code_1(ui: OpenWebUI) -> None:
    result = cli(ui, "install", token="sk-not-a-real-key")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"error: Open WebUI at {ui.url} rejected the token (HTTP 401): use an admin's API key or JWT"
    )


def test_dry_run_says_what_would_change_and_writes_nothing(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    cli(ui, "uninstall")
    before = task_flags(ui)
    result = install_cli(ui, backend, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout and "r1relay_vllm: created" in result.stdout
    assert not set(admin(ui).functions()) & {spec.id for spec in bundle.FUNCTIONS}
    assert task_flags(ui) == before


def test_direct_connections_are_turned_on_when_asked(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    client = admin(ui)
    client.request("POST", "/api/v1/configs/connections", {**client.request("GET", "/api/v1/configs/connections"), "ENABLE_DIRECT_CONNECTIONS": False})
    result = install_cli(ui, backend, "--enable-direct-connections")
    assert result.returncode == 0, result.stderr
    assert "Settings > Connections" in result.stdout
    assert client.request("GET", "/api/v1/configs/connections")["ENABLE_DIRECT_CONNECTIONS"] is True


def test_sign_in_with_email_and_password(ui: OpenWebUI) -> None:
    result = run_cli("status", "--url", ui.url, "--email", ui.admin_email, "--password", ui.admin_password)
    assert result.returncode == 0, result.stderr
    wrong = run_cli("status", "--url", ui.url, "--email", ui.admin_email, "--password", "wrong-password")
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1 and "refused the sign-in" in wrong.stderr


def test_a_users_token_is_refused_as_not_an_admins(ui: OpenWebUI) -> None:
    token = ui.create_user("User", "user@example.com", "user-password-1")
    result = cli(ui, "install", token=token)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: Open WebUI at {ui.url} accepted the token, but it is not an admin's"


def test_a_backend_that_does_not_answer_fails_the_check(ui: OpenWebUI) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result = cli(ui, "install", "--set", f"r1relay_vllm.BASE_URLS={dead}")
    assert result.returncode == 1
    assert "unreachable" in result.stdout
    assert result.stderr.startswith("error: r1relay_vllm: vLLM: unavailable: ")


def test_keep_tasks_leaves_a_task_turned_back_on_by_hand(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    assert install_cli(ui, backend).returncode == 0  # tasks off, previous values saved
    admin(ui).update_task_config({"ENABLE_TITLE_GENERATION": True})
    result = install_cli(ui, backend, "--keep-tasks")
    assert result.returncode == 0, result.stderr
    assert task_flags(ui)["ENABLE_TITLE_GENERATION"] is True


def test_a_function_switched_off_by_hand_stays_off(ui: OpenWebUI, backend: VLLMEmulator) -> None:
    assert install_cli(ui, backend).returncode == 0
    if admin(ui).functions()["r1relay_ktransformers"]["is_active"]:
        admin(ui).toggle("r1relay_ktransformers")  # Admin > Functions, the switch
    result = install_cli(ui, backend)
    assert result.returncode == 0, result.stderr
    assert "r1relay_ktransformers: left off (switched off by hand)" in result.stdout
    assert admin(ui).functions()["r1relay_ktransformers"]["is_active"] is False


# ---- the demo (README's first command), in a scratch directory ----


def test_demo_serves_both_backends_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    if not OPEN_WEBUI_BIN.exists():
        pytest.skip(f"open-webui is not installed ({OPEN_WEBUI_BIN})")
    from examples.make_tiny_r1 import TINY_R1_ANSWER

    env = {**os.environ, "R1RELAY_DEMO_DIR": str(tmp_path / "demo"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(REPO / "install.py"), "demo", "--port", str(free_port())]
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    assert demo.stdout is not None
    output: list[str] = []
    try:
        for line in demo.stdout:
            output.append(line)
            if line.startswith("Press Ctrl-C") or line.startswith("error:"):
                break
        printed = "".join(output)
        assert "Open WebUI is ready: " in printed, printed
        url = printed.split("Open WebUI is ready: ", 1)[1].split()[0]
        password = printed.split("password: ", 1)[1].split()[0]
        client = openwebui.OpenWebUIClient(url, openwebui.OpenWebUIClient.sign_in(url, "admin@example.com", password))
        models = {m["id"] for m in client.models()}
        assert {"r1relay_vllm.tiny-r1", "r1relay_flask.tiny-r1"} <= models
        assert not any(m.startswith("r1relay_ktransformers.") for m in models)  # no such backend here: left off
        for model in ("r1relay_vllm.tiny-r1", "r1relay_flask.tiny-r1"):
            reply = client.request("POST", "/api/chat/completions", {"model": model, "stream": False, "messages": [{"role": "user", "content": "Hi"}]})
            assert TINY_R1_ANSWER in reply["choices"][0]["message"]["content"]
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0
    backends = [status.backend_root(u.rstrip(",")) for u in re.findall(r"BASE_URLS=(\S+)", printed)]
    assert len(backends) == 2
    for server in (url, *backends):  # Open WebUI, transformers serve, the Flask server: all stopped
        assert not _answers(f"{server}/health")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False
