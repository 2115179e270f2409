"""Tutorial style: FastAPI `/generate` behind an `X-API-Key` header.

Takes `{"prompt", "max_tokens", "temperature", "top_p", "stop_sequences"}` and answers
`{"response", "tokens_used", "generation_time"}`; samples unless temperature is 0.
"""

import os
import time

import torch
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL_PATH = os.environ.get("MODEL_PATH", "tiny-r1")
API_KEY = os.environ.get("API_KEY", "my-secret-key")

app = FastAPI()
tokenizer = AutoTokenizer.from_pretrained(MODEL_PATH)
model = AutoModelForCausalLM.from_pretrained(MODEL_PATH)


def verify_api_key(x_api_key: str = Header(None)):
    if x_api_key != API_KEY:
        raise HTTPException(status_code=401, detail="Invalid API Key")
    return x_api_key


class GenerateRequest(BaseModel):
    prompt: str
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    stop_sequences: list[str] = []


@app.post("/generate")
def generate(req: GenerateRequest, api_key: str = Depends(verify_api_key)):
    print("Prompt:", req.prompt, flush=True)
    start = time.time()
    inputs = tokenizer(req.prompt, return_tensors="pt")
    with torch.no_grad():
        outputs = model.generate(
            **inputs,
            max_new_tokens=req.max_tokens,
            do_sample=req.temperature > 0,
            temperature=req.temperature if req.temperature > 0 else None,
            top_p=req.top_p if req.temperature > 0 else None,
        )
    new_tokens = outputs[0][inputs["input_ids"].shape[1]:]
    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
    for stop in req.stop_sequences:
        text = text.split(stop)[0]
    return {"response": text, "tokens_used": len(new_tokens), "generation_time": time.time() - start}
