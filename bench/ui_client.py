"""Browser-shaped chat clients in a process of their own: saved chat, socket.io session, events timed as they arrive.

`python bench/ui_client.py` reads one JSON line `{"chats": [{base_url, token, model, prompt, offset}, …]}`,
connects one socket.io client per chat with its user's token (as the browser's tab does), creates each saved
chat (`POST /api/v1/chats/new`), prints `ready`, waits for a line `{"go": WALL_CLOCK}`, then starts chat k at
go + offset the way the web UI does: `POST /api/chat/completions` with `chat_id`, the assistant message `id`
and the socket's `session_id`, and reads the `events` (`response:completion` deltas, `chat:completion`) from
the socket until `done`. It then reads the saved chat back and prints one JSON line of results.
Several of these run side by side so the clients' own CPU does not become the bottleneck that is measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import aiohttp
import socketio

CHAT_DEADLINE = 240.0  # seconds a chat may take before it counts as unfinished


def texts_of_output(output: list[dict]) -> tuple[str, str]:
    """Thinking and answer of an Open WebUI 0.12 message `output` (reasoning items, message items)."""
    reasoning, content = [], []
    for item in output or []:
        parts = [p.get("text", "") for p in item.get("content") or [] if isinstance(p, dict)]
        if item.get("type") == "reasoning":
            reasoning += parts
        elif item.get("type") == "message":
            content += parts
    return "".join(reasoning), "".join(content)


class Chat:
    """One user's browser tab: a socket.io session and one saved chat."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.sio = socketio.AsyncClient(reconnection=False)
        self.chat_id = ""
        self.message_id = str(uuid.uuid4())
        self.received = {"reasoning": 0, "content": 0}
        self.arrivals: dict[str, list[tuple[int, float]]] = {"reasoning": [], "content": []}
        self.done = asyncio.Event()
        self.errors: list[str] = []
        self.saved: tuple[str, str] | None = None
        self.saved_items: list[tuple[str, list[str]]] = []  # the saved output's items, to tell what went wrong where
        self.saved_done = False
        self.events = 0
        self.sio.on("events", self.on_event)

    async def on_event(self, message: dict) -> None:
        if message.get("chat_id") != self.chat_id:
            return
        now = time.time()
        event = message.get("data") or {}
        kind, data = event.get("type"), event.get("data") or {}
        self.events += 1
        if kind == "response:completion" and isinstance(data.get("delta"), str):
            which = "reasoning" if "reasoning" in str(data.get("type")) else "content"
            self.received[which] += len(data["delta"])
            self.arrivals[which].append((self.received[which], now))
        elif kind == "chat:completion":
            if isinstance(data.get("output"), list):
                for which, text in zip(("reasoning", "content"), texts_of_output(data["output"]), strict=True):
                    if len(text) > self.received[which]:
                        self.received[which] = len(text)
                        self.arrivals[which].append((len(text), now))
            if data.get("error"):
                self.errors.append(str(data["error"])[:300])
            if data.get("done") or data.get("error"):
                self.done.set()
        elif kind == "chat:message:error":
            self.errors.append(str(data.get("error"))[:300])
            self.done.set()

    async def prepare(self, http: aiohttp.ClientSession) -> None:
        spec = self.spec
        await self.sio.connect(spec["base_url"], socketio_path="/ws/socket.io", auth={"token": spec["token"]},
                               transports=["websocket"], wait_timeout=60)
        async with http.post(f"{spec['base_url']}/api/v1/chats/new", headers=self.headers,
                             json={"chat": {"title": "bench", "messages": [], "history": {"messages": {}}}}) as response:
            response.raise_for_status()
            self.chat_id = (await response.json())["id"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.spec['token']}"}

    async def run(self, http: aiohttp.ClientSession, go: float) -> None:
        spec = self.spec
        await asyncio.sleep(max(0.0, go + spec["offset"] - time.time()))
        user_message = {"id": str(uuid.uuid4()), "role": "user", "content": spec["prompt"], "parentId": None,
                        "childrenIds": [], "timestamp": int(time.time())}
        body = {
            "model": spec["model"],
            "messages": [{"role": "user", "content": spec["prompt"]}],
            "stream": True,
            "chat_id": self.chat_id,
            "id": self.message_id,
            "session_id": self.sio.get_sid("/"),
            "user_message": user_message,
            "background_tasks": {},
        }
        try:
            async with http.post(f"{spec['base_url']}/api/chat/completions", headers=self.headers, json=body) as response:
                if response.status != 200:
                    self.errors.append(f"HTTP {response.status}: {(await response.text())[:300]}")
                    return
                await response.read()
            await asyncio.wait_for(self.done.wait(), CHAT_DEADLINE)
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return
        try:
            for _ in range(50):  # the final save follows the done event closely; read it back (bounded)
                async with http.get(f"{spec['base_url']}/api/v1/chats/{self.chat_id}", headers=self.headers) as response:
                    chat = (await response.json()).get("chat") or {}
                message = ((chat.get("history") or {}).get("messages") or {}).get(self.message_id) or {}
                if message.get("done"):
                    self.saved, self.saved_done = texts_of_output(message.get("output") or []), True
                    self.saved_items = [(str(item.get("type")), [str(p.get("text", "")) for p in item.get("content") or []
                                                                 if isinstance(p, dict)])
                                        for item in message.get("output") or []]
                    return
                await asyncio.sleep(0.1)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            self.errors.append(f"reading the saved chat back: {type(exc).__name__}: {exc}"[:300])

    def result(self) -> dict[str, Any]:
        return {
            "prompt": self.spec["prompt"],
            "base_url": self.spec["base_url"],
            "finished": self.done.is_set() and self.saved_done,
            "saved": list(self.saved) if self.saved else None,
            "saved_items": self.saved_items,
            "arrivals": self.arrivals,
            "errors": self.errors,
            "events": self.events,
        }


async def main_async() -> None:
    specs = json.loads(sys.stdin.readline())["chats"]
    chats = [Chat(spec) for spec in specs]
    # Idle connections go before uvicorn closes them (its keep-alive is 5 s): a POST on a connection the server is
    # closing fails with "connection reset" (1 in 512 requests at 256 chats), where a browser would retry it.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=2.0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=CHAT_DEADLINE + 60)) as http:
        try:
            for at in range(0, len(chats), 16):  # connect in small groups: a burst of logins is not the load measured
                await asyncio.gather(*(chat.prepare(http) for chat in chats[at : at + 16]))
            print("ready", flush=True)
            go = float(json.loads(await asyncio.to_thread(sys.stdin.readline))["go"])
            await asyncio.gather(*(chat.run(http, go) for chat in chats))
        finally:
            await asyncio.gather(*(chat.sio.disconnect() for chat in chats), return_exceptions=True)
    print(json.dumps({"chats": [chat.result() for chat in chats]}), flush=True)


if __name__ == "__main__":
    asyncio.run(main_async())
