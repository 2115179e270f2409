#!/usr/bin/env python3
"""Build `tiny-r1`: a sub-megabyte, DeepSeek-R1-shaped causal LM, made locally in seconds on CPU.

Why: the real-peer tests, the demo and the reference Flask server need a real model behind a real
server (`transformers serve`, the Flask app), but this project never downloads weights. The tiny
model has R1's tokens and R1's real chat template, and it is trained until greedy decoding after
R1's generation prompt (`<｜Assistant｜><think>\\n`) emits the shape that breaks Open WebUI:

    reasoning…\\n</think>\\n\\nanswer<｜end▁of▁sentence｜>

i.e. a bare `</think>` with no opening tag, because the template already put `<think>\\n` in the
prompt. Usage: `python examples/make_tiny_r1.py [OUT_DIR]` (default `.cache/models`), or import
`make_tiny_r1(out_dir)`; both return/print `OUT_DIR/tiny-r1` and skip work when it is complete.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

MODEL_NAME = "tiny-r1"
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# Bump when the recipe changes: a cached model with another version is rebuilt.
RECIPE_VERSION = "1"
MARKER = ".tiny-r1-complete"

# DeepSeek-R1's chat template, verbatim: the updated text whose generation prompt ends with
# `<｜Assistant｜><think>\n` (tokenizer_config.json of deepseek-ai/DeepSeek-R1 on the HF hub).
# Source read: huggingface/optimum-intel, optimum/exporters/openvino/utils.py, the
# COMPLEX_CHAT_TEMPLATES key labelled "# deepseek-r1" (keys there are matched verbatim against
# tokenizer.chat_template). Only the bare `\n` escapes of the JSON file are kept as Jinja escapes.
DEEPSEEK_R1_CHAT_TEMPLATE = (
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    r"{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    r"{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    r"{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    r"{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    r"{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}"
    r"{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}"
    r"{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}"
    r"{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{%- if message['content'] is none %}"
    r"{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- else %}"
    r"{{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- endif %}{%- set ns.is_first = true -%}{%- else %}"
    r"{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}"
    r"{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %}"
    r"{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    r"{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    r"{% set content = content.split('</think>')[-1] %}{% endif %}"
    r"{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    r"{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    r"{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"{%- set ns.is_output_first = false %}{%- else %}"
    r"{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    r"{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    r"{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %}"
)

# What the model learns to say after `<think>\n`, whatever it is asked.
TINY_R1_REASONING = "The user wants an answer. I will keep it short."
TINY_R1_ANSWER = "Hello from tiny R1."
TINY_R1_COMPLETION = f"{TINY_R1_REASONING}\n{THINK_CLOSE}\n\n{TINY_R1_ANSWER}"

_WORDS = (
    "what is the capital of france why is sky blue tell me a joke please explain quantum physics "
    "how do i cook rice write a poem about cats count to ten who are you hello there help me "
    "summarize this text translate good morning into german solve two plus two list three fruits "
    "give advice on sleep describe the ocean compare python and rust name a color"
).split()
_SYSTEM_PROMPTS = ("You are a helpful assistant.", "Answer briefly.", "You are tiny R1.")


def _training_prompts(rng: random.Random, count: int) -> list[list[dict[str, str]]]:
    """Random conversations, so the answer does not hinge on any one prompt, system prompt or turn count."""
    conversations = []
    for _ in range(count):
        messages: list[dict[str, str]] = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": rng.choice(_SYSTEM_PROMPTS)})
        if rng.random() < 0.2:
            messages.append({"role": "user", "content": " ".join(rng.choices(_WORDS, k=rng.randint(1, 6)))})
            messages.append({"role": "assistant", "content": TINY_R1_COMPLETION})
        text = " ".join(rng.choices(_WORDS, k=rng.randint(1, 10)))
        messages.append({"role": "user", "content": text[0].upper() + text[1:] + rng.choice(("?", ".", "!", ""))})
        conversations.append(messages)
    return conversations


def _build_tokenizer(corpus: list[str]):  # -> PreTrainedTokenizerFast
    """Byte-level BPE with R1's special tokens; `<think>`/`</think>` are added NON-special so decoding keeps them."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[BOS, EOS, USER, ASSISTANT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in (THINK_OPEN, THINK_CLOSE)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=EOS, model_max_length=512
    )
    fast.chat_template = DEEPSEEK_R1_CHAT_TEMPLATE
    return fast


def _train(tokenizer, seed: int, steps: int):  # -> LlamaForCausalLM
    """~300 AdamW steps on (R1 prompt → fixed completion); loss on the completion only."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    rng = random.Random(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    completion_ids = tokenizer.encode(TINY_R1_COMPLETION, add_special_tokens=False) + [tokenizer.eos_token_id]
    examples = []
    for messages in _training_prompts(rng, 512):
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        examples.append((prompt_ids + completion_ids, [-100] * len(prompt_ids) + completion_ids))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    batch_size = 16
    for step in range(steps):
        batch = [examples[(step * batch_size + i) % len(examples)] for i in range(batch_size)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((batch_size, width), tokenizer.pad_token_id)
        labels = torch.full((batch_size, width), -100)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        for row, (ids, labs) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(labs)] = torch.tensor(labs)
            attention[row, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.generation_config.do_sample = False
    model.generation_config.max_new_tokens = 64
    return model


def is_complete(model_dir: Path) -> bool:
    """A model dir is reusable only when the marker written last names the current recipe."""
    marker = model_dir / MARKER
    return marker.is_file() and marker.read_text().strip() == RECIPE_VERSION


def make_tiny_r1(out_dir: Path, *, seed: int = 1234, steps: int = 300) -> Path:
    """Build (or reuse) `out_dir/tiny-r1` and return its path.

    Built in a temporary sibling and renamed into place, so concurrent builders (pytest-xdist,
    two shells) never see a half-written model: one rename wins, the other's copy is dropped.
    """
    out_dir = Path(out_dir)
    model_dir = out_dir / MODEL_NAME
    if is_complete(model_dir):
        return model_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rng = random.Random(seed)
    corpus = [
        TINY_R1_COMPLETION,
        *(m["content"] for conv in _training_prompts(rng, 200) for m in conv),
        *_SYSTEM_PROMPTS,
    ]
    tokenizer = _build_tokenizer(corpus)
    model = _train(tokenizer, seed, steps)
    staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=out_dir))
    try:
        model.save_pretrained(staging)
        # Keep the template inside tokenizer_config.json, where R1 ships it.
        tokenizer.save_pretrained(staging, save_jinja_files=False)
        (staging / MARKER).write_text(RECIPE_VERSION + "\n")
        staging.chmod(0o755)  # mkdtemp makes it private; servers run as other users should read it
        for path in staging.iterdir():
            path.chmod(0o644)
        if model_dir.exists() and not is_complete(model_dir):
            shutil.rmtree(model_dir, ignore_errors=True)
        try:
            staging.rename(model_dir)
        except OSError:
            if not is_complete(model_dir):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(Path(__file__).resolve().parent.parent / ".cache" / "models"))
    parser.add_argument("--force", action="store_true", help="rebuild even if a finished model is there")
    args = parser.parse_args(argv)
    target = Path(args.out_dir) / MODEL_NAME
    if args.force and target.exists():
        shutil.rmtree(target)
    model_dir = make_tiny_r1(Path(args.out_dir))
    size = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
    print(json.dumps({"model_dir": str(model_dir), "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
