"""Tutorial style: Flask streaming plain text chunks (`Response(gen(), mimetype="text/plain")`)."""

import os
from threading import Thread

from flask import Flask, Response, request
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

MODEL_PATH = os.environ.get("MODEL_PATH", "tiny-r1")

app = Flask(__name__)
tokenizer = AutoTokenizer.from_pretrained(MODEL_PATH)
model = AutoModelForCausalLM.from_pretrained(MODEL_PATH)


@app.route("/stream", methods=["POST"])
def stream():
    prompt = request.json["prompt"]
    print("Prompt:", prompt, flush=True)
    inputs = tokenizer(prompt, return_tensors="pt")
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    Thread(target=model.generate, kwargs=dict(**inputs, streamer=streamer, max_new_tokens=200, do_sample=False)).start()

    def generate():
        yield from streamer

    return Response(generate(), mimetype="text/plain")


@app.route("/stream_all", methods=["POST"])
def stream_all():
    """The same, with `skip_prompt` forgotten: the streamer sends the prompt (minus special tokens) first."""
    prompt = request.json["prompt"]
    print("Prompt:", prompt, flush=True)
    inputs = tokenizer(prompt, return_tensors="pt")
    streamer = TextIteratorStreamer(tokenizer, skip_special_tokens=True)
    Thread(target=model.generate, kwargs=dict(**inputs, streamer=streamer, max_new_tokens=200, do_sample=False)).start()
    return Response(streamer, mimetype="text/plain")
