"""Shared test setup: every `tests/support/fixtures_*.py` module is a fixture plugin."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest_plugins = sorted(
    f"tests.support.{path.stem}" for path in (REPO / "tests" / "support").glob("fixtures_*.py")
)
