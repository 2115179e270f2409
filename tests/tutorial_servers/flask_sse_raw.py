"""Tutorial style: Flask SSE over `TextIteratorStreamer`, each piece written raw as `data: {token}`.

The pieces end in or contain newlines, so the stream has extra blank lines and lines with no
field name; a strict SSE reader loses the line breaks and the text after them.
"""

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
    thread = Thread(target=model.generate, kwargs=dict(**inputs, streamer=streamer, max_new_tokens=200, do_sample=False))
    thread.start()

    def generate():
        for token in streamer:
            yield f"data: {token}\n\n"

    return Response(generate(), mimetype="text/event-stream")
