"""
title: Thinking off
author: r1relay
version: 0.1.0
license: MIT
description: A switch in the chat input that turns the model's thinking off for the next message (Qwen3 and other models whose template takes enable_thinking; R1 prompt servers get an empty thinking block).
required_open_webui_version: 0.6.0
"""

from pydantic import BaseModel, Field

from backend_adapters.thinking_controls import without_thinking

# A crossed-out light bulb; Open WebUI shows it on the switch and on the chip above the input.
THINKING_OFF_ICON = (
    "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAyNCAyNCIgZmls"
    "bD0ibm9uZSIgc3Ryb2tlPSJjdXJyZW50Q29sb3IiIHN0cm9rZS13aWR0aD0iMS44IiBzdHJva2UtbGluZWNhcD0icm91bmQiIHN0cm9rZS1saW5l"
    "am9pbj0icm91bmQiPjxwYXRoIGQ9Ik05IDE4aDZNMTAgMjFoNE0xMiAzYTYgNiAwIDAgMC0zLjUgMTAuOWMuNi41IDEgMS4yIDEgMlYxNmg1di0u"
    "MWMwLS44LjQtMS41IDEtMkE2IDYgMCAwIDAgMTIgM3oiLz48cGF0aCBkPSJNMyAzbDE4IDE4Ii8+PC9zdmc+"
)


class Filter:
    """Open WebUI runs a `toggle` filter only for messages sent with its switch on (`filter_ids` of the request)."""

    toggle = True
    icon = THINKING_OFF_ICON

    class Valves(BaseModel):
        priority: int = Field(default=0, description="Order among filters; lower runs first.")

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def inlet(self, body: dict) -> dict:
        """`chat_template_kwargs.enable_thinking = false`, merged into what the chat already sends."""
        return without_thinking(body)
