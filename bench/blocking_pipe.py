"""
title: ANTI-PATTERN bench fixture - blocking vLLM pipe
author: r1relay bench
version: 0.0.0
license: MIT
description: DO NOT INSTALL. A pipe written the blocking way (sync generator over `requests`), kept only so bench/run.py can show what it costs.
"""

# ANTI-PATTERN, on purpose. This is the shape most published Open WebUI pipes
# have: a sync `pipe()` returning a generator over a `requests` stream. Open
# WebUI 0.12 iterates such a generator with `for line in res:` inside its event
# loop (open_webui/functions.py, `stream_content`), so every blocking socket
# read below freezes the whole server, for every user, until a byte arrives.
# bench/run.py registers it next to the r1relay vLLM pipe and runs the same
# load through both. Nothing in r1relay imports this file.

import json

import requests
from pydantic import BaseModel, Field


class Pipe:
    class Valves(BaseModel):
        BASE_URL: str = Field(default="http://127.0.0.1:8000/v1", description="vLLM URL with /v1.")
        MODEL: str = Field(default="deepseek-ai/DeepSeek-R1", description="The one model offered.")

    def __init__(self) -> None:
        self.type = "manifold"
        self.valves = self.Valves()

    def pipes(self) -> list[dict]:
        return [{"id": self.valves.MODEL, "name": f"blocking: {self.valves.MODEL}"}]

    def pipe(self, body: dict):  # sync on purpose: the anti-pattern under test
        payload = {
            "model": self.valves.MODEL,
            "messages": body.get("messages", []),
            "stream": True,
        }
        response = requests.post(f"{self.valves.BASE_URL}/chat/completions", json=payload, stream=True, timeout=600)
        for line in response.iter_lines():  # blocks the event loop until the next line arrives
            if not line.startswith(b"data: "):
                continue
            data = line[len(b"data: ") :]
            if data == b"[DONE]":
                break
            delta = json.loads(data)["choices"][0]["delta"]
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if reasoning:
                yield {"choices": [{"index": 0, "delta": {"reasoning_content": reasoning}}]}
            if delta.get("content"):
                yield delta["content"]
