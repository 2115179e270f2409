"""The installer as an admin gets it: `pip install .` into a clean venv gives an `r1relay` command, and
`python install.py --help` / `export` work on a machine without `requests`."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from installer import bundle
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parent.parent
# What `pip install .` reads; copied so the build's build/ and *.egg-info never land in the checkout.
PROJECT_FILES = ("pyproject.toml", "README.md", "install.py", "installer", "backend_adapters", "pipes", "functions")
# `requests` made unimportable, as on a machine that never installed it, then install.py run as a script.
WITHOUT_REQUESTS = (
    "import runpy, sys; sys.modules['requests'] = None; sys.argv = ['install.py', *sys.argv[1:]]; "
    "runpy.run_path('install.py', run_name='__main__')"
)


def without_requests(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_REQUESTS, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def exported_ids(out: Path) -> list[str]:
    return [f["id"] for f in json.loads((out / "functions.json").read_text())]


# installer/'s modules, lowest first: each may import only those before it (installer/__init__.py says why).
LAYERS = ("errors", "bundle", "valve_config", "openwebui", "plan", "status", "demo")


def test_installer_modules_import_only_downward() -> None:
    assert sorted(path.stem for path in (REPO / "installer").glob("*.py") if path.stem != "__init__") == sorted(LAYERS)
    for level, name in enumerate(LAYERS):
        tree = ast.parse((REPO / "installer" / f"{name}.py").read_text())
        modules = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported = {module.split(".")[1] for module in modules if module.startswith("installer.")}
        assert imported <= set(LAYERS[:level]), f"installer/{name}.py imports {sorted(imported - set(LAYERS[:level]))} from above it"
        assert not any(module.split(".")[0] == "open_webui" for module in modules), "the installer talks to Open WebUI over HTTP only"


def test_help_works_without_requests() -> None:
    result = without_requests("--help")
    assert result.returncode == 0, result.stderr
    assert "usage: install.py" in result.stdout and "export" in result.stdout


def test_export_works_without_requests(tmp_path: Path) -> None:
    result = without_requests("export", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert exported_ids(tmp_path) == [spec.id for spec in bundle.FUNCTIONS]
    for spec in bundle.FUNCTIONS:
        assert (tmp_path / f"{spec.id}.py").read_text() == bundle.build_function(spec)


@pytest.mark.parametrize("command", ["status", "uninstall", "install"])
def test_network_commands_without_requests_say_how_to_get_it(command: str) -> None:
    result = without_requests(command, "--url", f"http://127.0.0.1:{free_port()}", "--token", "sk-x")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: this command needs the `requests` package"), result.stderr
    assert "pip install requests" in lines[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv without Open WebUI or the test tools: only the project and its declared dependencies (pip's cache)."""
    work = tmp_path_factory.mktemp("pip-install")
    source, venv = work / "source", work / "venv"
    source.mkdir()
    for name in PROJECT_FILES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", str(source)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv / "bin"


def run_installed(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "r1relay"), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_pip_install_gives_an_r1relay_command(installed: Path, tmp_path: Path) -> None:
    result = run_installed(installed, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: r1relay ") and "install" in result.stdout
    probe = subprocess.run([str(installed / "python"), "-c", "import open_webui"], capture_output=True, timeout=60)
    assert probe.returncode != 0, "the venv must hold only the project and its declared dependencies"


def test_installed_export_matches_the_checkouts_build(installed: Path, tmp_path: Path) -> None:
    """Run away from the checkout: the bundler finds pipes/, functions/ and backend_adapters/ in site-packages."""
    result = run_installed(installed, "export", str(tmp_path / "dist"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert exported_ids(tmp_path / "dist") == [spec.id for spec in bundle.FUNCTIONS]
    for spec in bundle.FUNCTIONS:
        assert (tmp_path / "dist" / f"{spec.id}.py").read_text() == bundle.build_function(spec)


def test_installed_command_fails_in_one_line(installed: Path, tmp_path: Path) -> None:
    unreachable = run_installed(installed, "status", "--url", f"http://127.0.0.1:{free_port()}", "--token", "sk-x", cwd=tmp_path)
    assert unreachable.returncode == 1 and unreachable.stdout == ""
    assert unreachable.stderr.startswith("error: cannot reach Open WebUI") and len(unreachable.stderr.splitlines()) == 1
    demo = run_installed(installed, "demo", cwd=tmp_path)
    assert demo.returncode == 1
    assert demo.stderr.strip() == (
        "error: the demo runs from a checkout of r1relay (it needs examples/): clone the repository and run `make demo`"
    )
