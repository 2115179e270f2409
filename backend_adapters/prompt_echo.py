"""Strip the prompt that tutorial `/generate` servers send back in front of the answer.

Hugging Face `generate` returns the prompt's tokens followed by the new ones, and the usual
tutorial decodes that whole output, most often with `skip_special_tokens=True`. The reply
then starts with the rendered prompt minus its special tokens, ending in R1's `<think>`, and
without this module the whole earlier conversation lands in the Thought block.

The prompt is matched with its special tokens or without them (each one may be kept or
dropped by the decoder, and a tokenizer that adds a BOS of its own may add a second one),
ignoring whitespace, since decoding can move spaces (`clean_up_tokenization_spaces`). The
prompt's trailing whitespace (R1's `<think>\\n`) is taken off the answer with it. It works on
a stream too (a `TextIteratorStreamer` without `skip_prompt`): text is held only while it
still matches the prompt.

Modes (the ECHO valve): `auto` strips only a reply that starts with the whole prompt; `strip`
also drops a reply cut short inside the prompt and, when the echo differs, cuts after the
prompt's last words if they are found; `keep` never touches the reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

EchoMode = Literal["auto", "strip", "keep"]
ECHO_MODES: tuple[str, ...] = ("auto", "strip", "keep")

# Special tokens of the common families look like `<｜…｜>` (DeepSeek) or `<|…|>` (ChatML, Llama 3).
GENERIC_SPECIAL = re.compile(r"<｜[^｜<>]{1,48}｜>|<\|[^|<>\s]{1,48}\|>")
# Whole-prompt echoes matched this far are an echo cut by max_length (auto mode, at the end of a reply).
_CUT_ECHO_SHARE = 0.8
_ANCHOR_CHARS = 24


def _units(prompt: str, specials: list[str]) -> tuple[list[str], str]:
    """The prompt as special tokens and single non-space characters, and its trailing whitespace."""
    pattern = re.compile("|".join(re.escape(s) for s in specials)) if specials else None
    units: list[str] = []
    pos = 0
    for match in pattern.finditer(prompt) if pattern else ():
        units += [c for c in prompt[pos : match.start()] if not c.isspace()]
        units.append(match.group())
        pos = match.end()
    units += [c for c in prompt[pos:] if not c.isspace()]
    body = prompt.rstrip()
    return units, prompt[len(body) :]


class EchoStripper:
    """Feed it a reply's text as it arrives; it returns the text that is the answer."""

    def __init__(self, prompt: str, special_tokens: Iterable[str] = (), mode: EchoMode = "auto") -> None:
        found = set(GENERIC_SPECIAL.findall(prompt)) | {s for s in special_tokens if s}
        self._specials = sorted(found, key=len, reverse=True)
        self._units, self._tail = _units(prompt, self._specials)
        self._unit_is_special = [u in found for u in self._units]
        # The generation prompt's text (R1's `<think>`, ChatML's `assistant`), else the prompt's last characters.
        last_special = max((prompt.rfind(s) + len(s) for s in self._specials if s in prompt), default=0)
        self._anchor = prompt[last_special:].strip()[-_ANCHOR_CHARS:] or prompt.strip()[-_ANCHOR_CHARS:]
        self._prompt_len = len(prompt)
        self._mode = mode
        self._passing = mode == "keep" or not self._units
        self._failed = False  # strip mode: the echo differs; waiting to look for the anchor
        self._buf = ""
        self._i = 0  # next reply character to match
        self._j = 0  # next prompt unit to match
        self._end = 0  # reply position just after the last matched unit

    def feed(self, text: str) -> str:
        if self._passing:
            return text
        self._buf += text
        return self._advance(final=False)

    def flush(self) -> str:
        """The end of the reply: what is still held is decided now."""
        if self._passing:
            return ""
        return self._advance(final=True)

    def _release(self, start: int) -> str:
        out, self._buf, self._passing = self._buf[start:], "", True
        return out

    def _advance(self, final: bool) -> str:
        if self._failed:
            return self._find_anchor(final)
        outcome = self._match(final)
        if outcome == "matched":
            return self._after_echo(final)
        if outcome == "differs":
            if self._mode == "strip":
                self._failed = True
                return self._find_anchor(final)
            return self._release(0)
        if not final:
            return ""
        # The reply ended inside the prompt: an echo cut by max_length, or an answer that happens to begin like it.
        if self._mode == "strip" or self._j >= _CUT_ECHO_SHARE * len(self._units):
            return self._release(len(self._buf))
        return self._release(0)

    def _match(self, final: bool) -> str:
        """'matched', 'differs', or 'more' (the held text matches so far)."""
        buf, units, n = self._buf, self._units, len(self._units)
        i, j = self._i, self._j
        try:
            while j < n:
                if i >= len(buf):
                    return "more"
                char = buf[i]
                unit = units[j]
                if self._unit_is_special[j]:
                    if buf.startswith(unit, i):
                        i += len(unit)
                        j += 1
                        self._end = i
                    elif char.isspace():
                        i += 1
                    elif not final and unit.startswith(buf[i:]):
                        return "more"
                    else:
                        j += 1  # the decoder dropped this special token
                    continue
                if char == unit:
                    i += 1
                    j += 1
                    self._end = i
                elif char.isspace():
                    i += 1
                else:
                    extra = next((s for s in self._specials if buf.startswith(s, i)), None)
                    if extra is not None:
                        i += len(extra)  # a special token the prompt has not here (a second BOS)
                    elif not final and any(s.startswith(buf[i:]) for s in self._specials):
                        return "more"
                    else:
                        return "differs"
            return "matched"
        finally:
            self._i, self._j = i, j

    def _after_echo(self, final: bool) -> str:
        """Cut the echo and the prompt's trailing whitespace that came back with it."""
        rest = self._buf[self._end :]
        if rest.startswith(self._tail):
            return self._release(self._end + len(self._tail))
        lead = len(rest) - len(rest.lstrip())
        if lead == len(rest) and not final:
            return ""  # only whitespace so far: wait to see how much of it is the prompt's
        return self._release(self._end + min(lead, len(self._tail)))

    def _find_anchor(self, final: bool) -> str:
        """Strip mode when the echo differs: cut after the prompt's last words, if the reply has them."""
        window = self._prompt_len + 64  # an echo is never longer than the prompt it echoes
        if not final and len(self._buf) < window:
            return ""
        at = self._buf.rfind(self._anchor, 0, window) if self._anchor else -1
        if at < 0:
            return self._release(0)
        self._end = at + len(self._anchor)
        return self._after_echo(True)
