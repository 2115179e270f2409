"""Which models begin their output inside the thinking.

DeepSeek-R1 (since its January 2025 template update), its distills, QwQ and
Qwen3's `-Thinking-2507` models pre-fill `<think>\\n` in the prompt, so the
model itself never emits the opening tag. Guessing wrong is cheap in one
direction only: an opening tag the model does emit is recognised anyway, so
the family list leans towards "yes".
"""

from __future__ import annotations

import re
from typing import Literal

ThinkStart = Literal["auto", "yes", "no"]

_PREFILLS_THINK = re.compile(
    r"deepseek[-_ ]?r1|deepseek[-_]reasoner|r1[-_]distill|qwq|thinking-2507|(?:^|[-_/:. ])r1(?:$|[-_/:. ])",
    re.IGNORECASE,
)


def starts_in_thinking(model_id: str, setting: ThinkStart = "auto") -> bool:
    """Whether output of `model_id` without `<think>` is thinking, honouring a valve override."""
    if setting == "yes":
        return True
    if setting == "no":
        return False
    return bool(_PREFILLS_THINK.search(model_id))


def always_thinks(model_id: str) -> bool:
    """Models whose chat template forces the thinking open (R1, its distills, QwQ, Qwen3 `-Thinking-2507`):
    `enable_thinking: false` does nothing for them on an OpenAI-compatible server."""
    return bool(_PREFILLS_THINK.search(model_id))
