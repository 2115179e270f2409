"""Serve every tutorial app from one process, each on its own port: one torch import, one model load each.

Usage: `python -m tests.tutorial_servers.serve_all NAME=PORT ...` with MODEL_PATH (and API_KEY) set.
Flask apps run on werkzeug's threaded server and FastAPI apps on uvicorn, as their tutorials run
them; SIGTERM stops the process.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading

import torch


def serve(name: str, port: int) -> threading.Thread:
    app = importlib.import_module(f"tests.tutorial_servers.{name}").app
    if hasattr(app, "wsgi_app"):  # Flask
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", port, app, threaded=True)
        target = server.serve_forever
    else:  # FastAPI
        import uvicorn

        target = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).run
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)  # a shared 2-core test box
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for item in argv:
        name, _, port = item.partition("=")
        serve(name, int(port))
    print("serving", " ".join(argv), flush=True)
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
