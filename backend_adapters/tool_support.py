"""Which servers take `tools`, remembered for a while, so a server without tool calling never fails a plain chat.

Open WebUI puts `tools` in nearly every chat since 0.10 (its built-in time,
knowledge and web-search tools). vLLM started without `--enable-auto-tool-choice
--tool-call-parser …` answers any such request with HTTP 400. The adapter then
retries once without tools and this module remembers the refusal per server URL,
the way replicas.py remembers dead replicas, so later chats skip the failed try.
"""

from __future__ import annotations

from typing import Literal

from backend_adapters.url_memory import UrlMemory

ToolsMode = Literal["auto", "on", "off"]
TOOLS_CHOICES = {"input": {"type": "select", "options": ["auto", "on", "off"]}}
NO_TOOLS_FOR = 600.0  # seconds; a restarted server with the flags is tried again after this

# A cache, not request state: one refusal spares every chat of the next minutes a failed request.
_refused_tools = UrlMemory(NO_TOOLS_FOR)


def send_tools(url: str, mode: ToolsMode) -> bool:
    """Whether a request with tools should carry them to `url`: `on` always, `off` never, `auto` unless refused lately."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    return url not in _refused_tools


def remember_no_tools(url: str) -> None:
    _refused_tools.remember(url)


def refuses_tools(status: int, message: str) -> bool:
    """A 400/422 about tools: vLLM's `"auto" tool choice requires --enable-auto-tool-choice and
    --tool-call-parser to be set`, or another server's "tools are not supported"."""
    return status in (400, 422) and "tool" in message.lower()


def tools_off_notice(where: str) -> str:
    return (
        f"Tools are off for {where}: the server does not take tools (vLLM needs --enable-auto-tool-choice "
        "and --tool-call-parser), so this answer comes without them."
    )
