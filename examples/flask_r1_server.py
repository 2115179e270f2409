#!/usr/bin/env python3
"""Reference prompt-style backend: the small Flask app users put in front of a self-hosted model.

Why it exists: r1relay's flask pipe talks to apps like this one (`POST /generate`, SSE `/stream`),
and the tests, the demo and the docs need a real one rather than a mock. It serves any Hugging
Face causal-LM directory on CPU; by default the locally built `tiny-r1` (see make_tiny_r1.py).

API
- `POST /generate` `{"prompt", "max_tokens"=256, "min_tokens"=0, "temperature"=0, "top_p"=1, "stop_sequences"=[]}`
  -> `{"response", "tokens_used", "generation_time", "prompt_tokens", "finish_reason"}`.
  `tokens_used` counts generated tokens; `generation_time` is in seconds.
- `/stream` (GET `?prompt=…&max_tokens=…` or POST with the same JSON): Server-Sent Events, one
  `data:` event per streamed piece of text, then `data: [DONE]`. A piece containing newlines is
  sent as one `data:` line per line (the SSE spec joins them back with `\\n`). A failure after the
  stream started is sent as `event: error` then `[DONE]`.
- `GET /health` `{"status": "ok", "model", "busy"}`; `GET /metrics` Prometheus text.
- With `R1_API_KEY` (or `--api-key`) set, `/generate` and `/stream` need `X-API-Key` (or
  `Authorization: Bearer …`); otherwise 401 `{"error": "Invalid API key"}`.

Greedy by default (temperature 0). One generation at a time (a lock): a CPU box has no room for
two, and the queueing this causes is exactly what a KTransformers-like backend does. A client
that disconnects stops its generation, so Stop in Open WebUI frees the backend.

Run: `python examples/flask_r1_server.py [--model DIR] [--host 127.0.0.1] [--port 5000]`.
"""

from __future__ import annotations

import argparse
import hmac
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request

_EXAMPLES = Path(__file__).resolve().parent
DEFAULT_MODEL_CACHE = _EXAMPLES.parent / ".cache" / "models"
_SSE_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class ServerMetrics:
    """Counters behind `/metrics`; a lock because Flask's threaded server updates them concurrently."""

    requests: dict[str, int] = field(default_factory=dict)
    tokens_total: int = 0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, endpoint: str) -> None:
        with self.lock:
            self.requests[endpoint] = self.requests.get(endpoint, 0) + 1
            self.in_flight += 1

    def finished(self, tokens: int) -> None:
        with self.lock:
            self.tokens_total += tokens
            self.in_flight -= 1

    def render(self) -> str:
        with self.lock:
            lines = [
                "# HELP r1_requests_total Generation requests received, by endpoint.",
                "# TYPE r1_requests_total counter",
                *(f'r1_requests_total{{endpoint="{name}"}} {count}' for name, count in sorted(self.requests.items())),
                "# HELP r1_tokens_total Tokens generated.",
                "# TYPE r1_tokens_total counter",
                f"r1_tokens_total {self.tokens_total}",
                "# HELP r1_requests_in_flight Generation requests being served or waiting for the model.",
                "# TYPE r1_requests_in_flight gauge",
                f"r1_requests_in_flight {self.in_flight}",
            ]
        return "\n".join(lines) + "\n"


@dataclass
class GenerationParams:
    """The seed API's knobs, validated once so both endpoints behave the same."""

    prompt: str
    max_tokens: int = 256
    min_tokens: int = 0  # generate at least this many before an end-of-sequence may stop it (vLLM's min_tokens)
    temperature: float = 0.0
    top_p: float = 1.0
    stop_sequences: list[str] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> GenerationParams:
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("'prompt' must be a non-empty string")
        stops = data.get("stop_sequences") or data.get("stop") or []
        if isinstance(stops, str):
            stops = [stops]
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ValueError("'stop_sequences' must be a list of strings")
        try:
            params = cls(
                prompt=prompt,
                max_tokens=int(data.get("max_tokens", 256)),
                min_tokens=int(data.get("min_tokens", 0) or 0),
                temperature=float(data.get("temperature", 0.0) or 0.0),
                top_p=float(data.get("top_p", 1.0) or 1.0),
                stop_sequences=[s for s in stops if s],
            )
        except (TypeError, ValueError) as exc:
            raise ValueError("'max_tokens', 'min_tokens', 'temperature' and 'top_p' must be numbers") from exc
        if params.max_tokens < 1:
            raise ValueError("'max_tokens' must be at least 1")
        return params


def _stop_holdback(text: str, stops: list[str]) -> int:
    """How many trailing chars of `text` could still start a stop sequence, so must not be sent yet."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-size:]):
                longest = size
                break
    return longest


class ModelRunner:
    """Owns the model: one generation at a time, streamed through `TextIteratorStreamer` from a thread."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = model_dir.name
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir)
        self.model.eval()
        self._torch = torch
        self.lock = threading.Lock()

    def stream(self, params: GenerationParams, usage: dict[str, Any]) -> Iterator[str]:
        """Yield text pieces as generated; fills `usage` (tokens, finish_reason) when done.

        Closing the iterator early (client gone) sets the cancel flag the generate thread polls.
        """
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        cancel = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        tok = self.tokenizer
        add_special = not (tok.bos_token and params.prompt.startswith(tok.bos_token))
        inputs = tok(params.prompt, return_tensors="pt", add_special_tokens=add_special)
        prompt_len = int(inputs["input_ids"].shape[1])
        usage["prompt_tokens"] = prompt_len
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        sampling = params.temperature > 0
        kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": params.max_tokens,
            "min_new_tokens": min(params.min_tokens, params.max_tokens),
            "do_sample": sampling,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        }
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:  # silence "temperature is set but do_sample is False" from the model's own config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with self._torch.inference_mode():
                    result["ids"] = self.model.generate(**kwargs)
            except Exception as exc:  # surfaced to the request below
                result["error"] = exc
                streamer.end()

        with self.lock:
            thread = threading.Thread(target=run, name="generate", daemon=True)
            thread.start()
            text, sent, finish, exhausted = "", 0, None, False
            try:
                for piece in streamer:
                    text += piece
                    if params.stop_sequences:
                        # Held-back text guarantees a stop can only start at or after `sent`.
                        hits = [i for i in (text.find(s, sent) for s in params.stop_sequences) if i >= 0]
                        if hits:
                            cut = min(hits)
                            if cut > sent:
                                yield text[sent:cut]
                            sent, finish = cut, "stop"
                            cancel.set()
                            break
                        upto = len(text) - _stop_holdback(text, params.stop_sequences)
                    else:
                        upto = len(text)
                    if upto > sent:
                        yield text[sent:upto]
                        sent = upto
                exhausted = finish is None
                if exhausted and len(text) > sent:
                    yield text[sent:]
            finally:
                cancel.set()
                if not exhausted:  # stopped early: drain to the end signal so nothing is left queued
                    for _ in streamer:
                        pass
                thread.join()
            if "error" in result:
                raise RuntimeError(f"generation failed: {result['error']}")
            generated = int(result["ids"].shape[1]) - prompt_len
            usage["tokens_used"] = generated
            if finish is None:
                last = int(result["ids"][0, -1])
                finish = "length" if generated >= params.max_tokens and last != tok.eos_token_id else "stop"
            usage["finish_reason"] = finish


def sse_event(data: str, event: str | None = None) -> str:
    """One SSE event; every line of `data` becomes its own `data:` field, as the spec requires."""
    head = f"event: {event}\n" if event else ""
    return head + "".join(f"data: {line}\n" for line in _SSE_LINE_BREAK.split(data)) + "\n"


def create_app(model_dir: Path, api_key: str | None = None) -> Flask:
    """Build the app around one loaded model; `api_key` None or empty means no auth."""
    runner = ModelRunner(model_dir)
    metrics = ServerMetrics()
    app = Flask(__name__)

    def authorized() -> bool:
        if not api_key:
            return True
        given = request.headers.get("X-API-Key", "")
        bearer = request.headers.get("Authorization", "")
        if not given and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        return hmac.compare_digest(given.encode(), api_key.encode())

    def read_params() -> GenerationParams:
        if request.method == "GET":
            data: dict[str, Any] = dict(request.args)
            if "stop_sequences" in request.args:
                data["stop_sequences"] = request.args.getlist("stop_sequences")
        else:
            data = request.get_json(silent=True)
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
        return GenerationParams.from_mapping(data)

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok", model=runner.name, busy=runner.lock.locked())

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.post("/generate")
    def generate() -> tuple[Response, int] | Response:
        if not authorized():
            return jsonify(error="Invalid API key"), 401
        try:
            params = read_params()
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        metrics.started("generate")
        usage: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            text = "".join(runner.stream(params, usage))
        except RuntimeError as exc:
            return jsonify(error=str(exc)), 500
        finally:
            metrics.finished(usage.get("tokens_used", 0))
        return jsonify(
            response=text,
            tokens_used=usage["tokens_used"],
            generation_time=round(time.perf_counter() - started, 4),
            prompt_tokens=usage["prompt_tokens"],
            finish_reason=usage["finish_reason"],
        )

    @app.route("/stream", methods=["GET", "POST"])
    def stream() -> tuple[Response, int] | Response:
        if not authorized():
            return jsonify(error="Invalid API key"), 401
        try:
            params = read_params()
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        metrics.started("stream")

        def events() -> Iterator[str]:
            usage: dict[str, Any] = {}
            try:
                for piece in runner.stream(params, usage):
                    yield sse_event(piece)
            except RuntimeError as exc:
                yield sse_event(str(exc), event="error")
            finally:
                metrics.finished(usage.get("tokens_used", 0))
            yield sse_event("[DONE]")

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Response(events(), mimetype="text/event-stream", headers=headers)

    return app


def _default_model_dir() -> Path:
    """The tiny model, built on first use (seconds) so the app runs with no download at all."""
    sys.path.insert(0, str(_EXAMPLES))
    from make_tiny_r1 import make_tiny_r1

    return make_tiny_r1(DEFAULT_MODEL_CACHE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reference Flask backend for r1relay's flask pipe.")
    parser.add_argument("--model", type=Path, help="HF causal LM directory (default: build/reuse tiny-r1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--api-key", default=os.environ.get("R1_API_KEY", ""), help="default: $R1_API_KEY")
    args = parser.parse_args(argv)
    model_dir = args.model or _default_model_dir()
    app = create_app(model_dir, api_key=args.api_key or None)
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
