"""Tutorial style: FastAPI streaming NDJSON: `{"token": …}` lines, and an Ollama-like `/api/generate`.

The Ollama-like route leaves the media type out (`StreamingResponse(gen())`), as many do, so
the stream arrives with no content type at all.
"""

import json
import os
from datetime import UTC, datetime
from threading import Thread

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

MODEL_PATH = os.environ.get("MODEL_PATH", "tiny-r1")

app = FastAPI()
tokenizer = AutoTokenizer.from_pretrained(MODEL_PATH)
model = AutoModelForCausalLM.from_pretrained(MODEL_PATH)


class PromptRequest(BaseModel):
    prompt: str
    max_tokens: int = 200


def start_streamer(prompt: str, max_new_tokens: int) -> TextIteratorStreamer:
    print("Prompt:", prompt, flush=True)
    inputs = tokenizer(prompt, return_tensors="pt")
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    Thread(target=model.generate, kwargs=dict(**inputs, streamer=streamer, max_new_tokens=max_new_tokens, do_sample=False)).start()
    return streamer


@app.post("/stream")
def stream(req: PromptRequest):
    streamer = start_streamer(req.prompt, req.max_tokens)

    def generate():
        for token in streamer:
            yield json.dumps({"token": token}) + "\n"

    return StreamingResponse(generate(), media_type="application/x-ndjson")


@app.post("/api/generate")
def ollama_generate(req: PromptRequest):
    streamer = start_streamer(req.prompt, req.max_tokens)

    def generate():
        for token in streamer:
            now = datetime.now(UTC).isoformat()
            yield json.dumps({"model": "tiny-r1", "created_at": now, "response": token, "done": False}) + "\n"
        yield json.dumps({"model": "tiny-r1", "response": "", "done": True, "done_reason": "stop"}) + "\n"

    return StreamingResponse(generate())
