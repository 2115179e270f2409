"""Which Open WebUI release hosts a function, for the few places where releases store things differently.

Read from the installed package's metadata, never by importing `open_webui` (this package stays free of it).
"""

from __future__ import annotations

import functools
import re
from importlib import metadata

# Open WebUI 0.10.0 stopped writing a reply's thinking into `content` as `<details type="reasoning">` text:
# from then on `content` is the answer alone and the thinking lives in the message's `output` items.
REASONING_OUT_OF_CONTENT = (0, 10, 0)


@functools.cache
def release() -> tuple[int, ...] | None:
    """(major, minor, patch) of the installed open-webui, or None when it is not installed (tests, CLI)."""
    try:
        version = metadata.version("open-webui")
    except metadata.PackageNotFoundError:
        return None
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def stores_reasoning_in_content() -> bool:
    """True on releases before 0.10.0, whose stored replies carry the thinking as a `<details>` block."""
    current = release()
    return current is not None and current < REASONING_OUT_OF_CONTENT
