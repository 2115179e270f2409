"""Load a built function file exactly the way Open WebUI 0.12.4 does (utils/plugin.py).

Open WebUI rewrites a few import prefixes, makes a fresh module, registers it
in sys.modules and `exec`s the source. Here `backend_adapters` is also made
unimportable during the exec, so a file that still needs the package fails.
"""

from __future__ import annotations

import importlib.abc
import sys
import types
import uuid
from pathlib import Path

OPEN_WEBUI_REPLACEMENTS = {
    "from utils": "from open_webui.utils",
    "from apps": "from open_webui.apps",
    "from main": "from open_webui.main",
    "from config": "from open_webui.config",
}


class _BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname.split(".")[0] == "backend_adapters":
            raise ImportError(f"{fullname} is not importable inside Open WebUI")
        return None


def load_function_source(function_id: str, content: str) -> types.ModuleType:
    for old, new in OPEN_WEBUI_REPLACEMENTS.items():
        content = content.replace(old, new)
    hidden = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] == "backend_adapters"}
    for name in hidden:
        del sys.modules[name]
    blocker = _BlockPackage()
    sys.meta_path.insert(0, blocker)
    try:
        module_name = f"function_{function_id}_{uuid.uuid4().hex}"
        module = types.ModuleType(module_name)
        sys.modules[module_name] = module
        exec(compile(content, f"<{function_id}>", "exec"), module.__dict__)
    finally:
        sys.meta_path.remove(blocker)
        sys.modules.update(hidden)
    return module


def load_function(path: Path) -> types.ModuleType:
    return load_function_source(path.stem, path.read_text())
