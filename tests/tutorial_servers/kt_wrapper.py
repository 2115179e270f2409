"""Tutorial style: a hand-written KTransformers-like wrapper (`chat_openai.py` style) on FastAPI.

Its habits: messages declared as `content: str` (a list of parts gets a 422), `force_think`
defaulting to true, `stream` accepted and ignored (one JSON body answers every request), and
the reply decoded with `skip_special_tokens=True`, so it starts inside the thinking.
"""

import os
import time
import uuid

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL_PATH = os.environ.get("MODEL_PATH", "tiny-r1")

app = FastAPI()
tokenizer = AutoTokenizer.from_pretrained(MODEL_PATH)
model = AutoModelForCausalLM.from_pretrained(MODEL_PATH)


class Message(BaseModel):
    role: str
    content: str


class ChatCompletionRequest(BaseModel):
    model: str = "DeepSeek-R1"
    messages: list[Message]
    temperature: float = 0.0
    max_tokens: int = 200
    stream: bool = False
    force_think: bool = True


@app.post("/v1/chat/completions")
async def chat_completions(req: ChatCompletionRequest):
    messages = [m.model_dump() for m in req.messages]
    print("Messages:", messages, flush=True)
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if req.force_think and not prompt.endswith("<think>\n"):
        prompt += "<think>\n"
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        outputs = model.generate(**inputs, max_new_tokens=req.max_tokens, do_sample=False)
    new_tokens = outputs[0][inputs["input_ids"].shape[1]:]
    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": int(inputs["input_ids"].shape[1]),
            "completion_tokens": len(new_tokens),
            "total_tokens": int(inputs["input_ids"].shape[1]) + len(new_tokens),
        },
    }
