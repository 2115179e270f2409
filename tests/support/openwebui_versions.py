"""Which Open WebUI release the tests drive, so a test that cannot hold on an older one is skipped with the reason.

`make compat` runs the tests marked `openwebui` once per supported release (see the README's tested-versions
table). Behaviour that r1relay relies on and that arrived in a given release is named here once, with the
release it came in, so the skip reasons in test output read as the compatibility notes they are.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from tests.support.openwebui import OPEN_WEBUI_BIN

# Changes between releases that touch r1relay (the issue-12 list, checked in each release's source).
FILTER_OUTLET_ON_SERVER = Version("0.9.0")  # outlet runs in the server after a reply (before: only the web UI's /api/chat/completed)
REASONING_AS_OUTPUT_ITEMS = Version("0.10.0")  # a reply's thinking is stored as `output` items, not `<details>` text
API_STREAM_FILTERS_PARSED = Version("0.11.1")  # API callers' streams reach `stream` hooks as parsed chunks, not raw lines
NATIVE_TOOLS_BY_DEFAULT = Version("0.10.0")  # chats carry `tools`; a pipe must relay them or tools do nothing


@functools.cache
def installed_version(binary: Path = OPEN_WEBUI_BIN) -> Version | None:
    """The open-webui release installed beside `binary` (its venv's dist-info), or None when there is none."""
    if not binary.exists():
        return None
    for dist_info in sorted(binary.resolve().parent.parent.glob("lib/python*/site-packages/open_webui-*.dist-info")):
        match = re.fullmatch(r"open_webui-(.+)\.dist-info", dist_info.name)
        if match:
            return Version(match.group(1))
    python = binary.parent / "python"  # not a venv layout: ask the interpreter the script runs with
    probe = "import importlib.metadata as m; print(m.version('open-webui'))"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    return Version(result.stdout.strip()) if result.returncode == 0 else None


def requires_open_webui(since: Version, what: str) -> pytest.MarkDecorator:
    """Skip on releases before `since`, saying what is missing there (never a silent skip)."""
    version = installed_version()
    too_old = version is not None and version < since
    return pytest.mark.skipif(too_old, reason=f"Open WebUI {version} has no {what} (added in {since})")
