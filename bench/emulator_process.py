"""The vLLM emulator (tests/emulators/vllm.py) in a process of its own, for bench/run.py.

A process of its own keeps the emulator's CPU and GIL apart from the client that
measures. Protocol on stdin/stdout, one JSON object per line: it prints
`{"url": …}` once started; each line read is `{"set": {field: value}}` and/or
`{"drop": true}` (close every open connection, which unblocks a blocking pipe
stuck reading from us), answered with the request counters, and with the send
time of every delta by prompt when it asks `{"emits": true}` (which also starts
a fresh log and a fresh peak of concurrent streams). EOF stops it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.emulators.vllm import VLLMEmulator  # noqa: E402


def counters(emulator: VLLMEmulator) -> dict[str, int]:
    return {"requests": len(emulator.requests), "finished": emulator.finished, "disconnects": len(emulator.disconnects),
            "peak_active": emulator.peak_active}


def drop_connections(emulator: VLLMEmulator) -> None:
    server = emulator._server
    assert server is not None and server._runner is not None and server._runner.server is not None
    handlers = server._runner.server.connections

    def close_all() -> None:
        for handler in list(handlers):
            if handler.transport is not None:
                handler.transport.close()

    server._loop.call_soon_threadsafe(close_all)


def main() -> None:
    emulator = VLLMEmulator(reasoning_field="reasoning", prefix_with_prompt=True).start()
    print(json.dumps({"url": emulator.url}), flush=True)
    try:
        for line in sys.stdin:
            command = json.loads(line or "{}")
            for name, value in (command.get("set") or {}).items():
                setattr(emulator, name, value)
            if command.get("drop"):
                drop_connections(emulator)
            answer: dict = dict(counters(emulator))
            if command.get("emits"):
                answer["emits"], emulator.emit_log, emulator.peak_active = emulator.emit_log or {}, {}, emulator.active
            print(json.dumps(answer), flush=True)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
