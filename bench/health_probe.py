"""`python bench/health_probe.py URL`: GET URL/health every 50 ms until stdin closes, then print the latencies.

A process of its own, so the client that loads Open WebUI does not delay the probes.
"""

from __future__ import annotations

import json
import sys
import threading
import time

HEALTH_EVERY = 0.05  # seconds between /health probes


def probe_main(url: str) -> None:
    """GET /health every HEALTH_EVERY s until stdin closes, then print latencies (ms)."""
    import requests

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    latencies: list[float] = []
    sent_at: list[float] = []
    failures = 0
    with requests.Session() as session:
        while not stop.is_set() and len(latencies) < 20_000:
            started = time.perf_counter()
            sent_at.append(time.time())
            try:
                ok = session.get(f"{url}/health", timeout=30).ok
            except requests.RequestException:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok
            stop.wait(HEALTH_EVERY)
    print(json.dumps({"latencies_ms": latencies, "sent_at": sent_at, "failures": failures}), flush=True)


if __name__ == "__main__":
    probe_main(sys.argv[1])
