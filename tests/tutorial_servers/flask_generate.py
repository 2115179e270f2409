"""Tutorial style: Flask `/generate` that returns the prompt plus the completion.

The habits kept on purpose: `generate`'s whole output decoded with `skip_special_tokens=True`
(so the reply starts with the prompt minus its special tokens), and `max_tokens` passed as
`max_length`, which counts the prompt, so a small value cuts the answer short.
"""

import os

import torch
from flask import Flask, jsonify, request
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL_PATH = os.environ.get("MODEL_PATH", "tiny-r1")

app = Flask(__name__)
tokenizer = AutoTokenizer.from_pretrained(MODEL_PATH)
model = AutoModelForCausalLM.from_pretrained(MODEL_PATH)


@app.route("/generate", methods=["POST"])
def generate():
    data = request.json
    prompt = data["prompt"]
    print("Prompt:", prompt, flush=True)
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        # max_new_tokens=None only because tiny-r1's generation_config sets it (real R1's does not), and it would win.
        outputs = model.generate(**inputs, max_length=data.get("max_tokens", 200), max_new_tokens=None, do_sample=False)
    response = tokenizer.decode(outputs[0], skip_special_tokens=True)
    return jsonify({"response": response})
