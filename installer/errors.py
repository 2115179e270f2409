"""The installer's failures, each worded as one line for the terminal (never a traceback)."""

from __future__ import annotations


class UsageError(Exception):
    """Something the user typed or configured that cannot work."""


class BuildError(Exception):
    """A source that cannot be made into one self-contained file."""


class OpenWebUIError(Exception):
    """A call to Open WebUI that failed, or an Open WebUI that is not what the command needs."""
