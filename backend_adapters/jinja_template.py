"""Render a model's own Jinja chat template (from its tokenizer_config.json) the way transformers does.

The built-in templates (chat_templates.py) cover five families; every other model ships its
template as Jinja in `tokenizer_config.json`. Rendering that text exactly as
`tokenizer.apply_chat_template` would (transformers/utils/chat_template_utils.py,
`_cached_compile_jinja_template` and `render_jinja_template`, read in transformers 5.x) makes a
prompt server work with any model family: jinja2's ImmutableSandboxedEnvironment with
`trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension and a `{% generation %}` tag,
a `tojson` filter that does not escape HTML, `raise_exception` and `strftime_now` globals, and
the variables `messages`, `tools`, `documents`, `add_generation_prompt` plus the tokenizer's
named special tokens (`bos_token`, `eos_token`, …) and any chat_template_kwargs.

The CHAT_TEMPLATE valve holds the whole tokenizer_config.json (its special tokens then come
along), only the template text, or the path of the file (or of the model directory) on the
Open WebUI server. jinja2 ships with Open WebUI through its dependencies; it is imported only
when a template is used, so a missing jinja2 is one sentence, not a failed function.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from backend_adapters.chat_templates import chat_template_text

# transformers' SPECIAL_TOKENS_ATTRIBUTES: the names a template may read.
NAMED_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class ChatTemplateError(ValueError):
    """A CHAT_TEMPLATE that cannot be read or cannot render this chat; the message is one sentence."""


@dataclass(frozen=True)
class ModelChatTemplate:
    """A model's chat template(s) and the special tokens that go with it."""

    templates: dict[str, str]  # "default" (and "tool_use", …) → Jinja text
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token → "<s>", …
    all_special: tuple[str, ...] = ()  # every special token's text, for spotting them in an echo

    def pick(self, tools: list[dict] | None) -> str:
        """transformers' `get_chat_template`: `tool_use` when tools are given and there is one, else `default`."""
        if tools and "tool_use" in self.templates:
            return self.templates["tool_use"]
        if "default" in self.templates:
            return self.templates["default"]
        raise ChatTemplateError(
            f"The CHAT_TEMPLATE setting has several templates and none is named default ({', '.join(sorted(self.templates))})."
        )


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]  # {"__type": "AddedToken", "content": …}
    return None


def _from_config(config: dict) -> ModelChatTemplate:
    raw = config.get("chat_template")
    if isinstance(raw, str):
        templates = {"default": raw}
    elif isinstance(raw, list):
        templates = {t["name"]: t["template"] for t in raw if isinstance(t, dict) and "name" in t and "template" in t}
    else:
        raise ChatTemplateError("The CHAT_TEMPLATE setting holds a tokenizer_config.json without a chat_template.")
    named = {name: text for name in NAMED_SPECIAL_TOKENS if (text := _token_text(config.get(name)))}
    added = config.get("added_tokens_decoder")
    extra = [
        entry["content"]
        for entry in (added.values() if isinstance(added, dict) else ())
        if isinstance(entry, dict) and entry.get("special") and isinstance(entry.get("content"), str)
    ]
    extra += [t for t in (_token_text(x) for x in config.get("additional_special_tokens") or ()) if t]
    return ModelChatTemplate(templates, named, tuple(dict.fromkeys([*named.values(), *extra])))


@lru_cache(maxsize=8)
def _read_setting(text: str, mtime: float | None) -> ModelChatTemplate:
    if mtime is not None:
        with open(text, encoding="utf-8") as handle:
            text = handle.read()
    if text.lstrip().startswith("{") and not text.lstrip().startswith(("{%", "{{", "{#")):
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise ChatTemplateError(f"The CHAT_TEMPLATE setting looks like JSON but is not valid JSON ({exc.msg}).") from None
        if not isinstance(config, dict):
            raise ChatTemplateError("The CHAT_TEMPLATE setting holds JSON that is not a tokenizer_config.json object.")
        return _from_config(config)
    return ModelChatTemplate({"default": text})


def load_chat_template(setting: str) -> ModelChatTemplate:
    """The template a CHAT_TEMPLATE valve names: tokenizer_config.json text, Jinja text, or a path to either."""
    text = setting.strip()
    if not text:
        raise ChatTemplateError("The CHAT_TEMPLATE setting is empty.")
    if "\n" not in text and not text.startswith(("{", "<")) and len(text) < 4096:
        path = os.path.join(text, "tokenizer_config.json") if os.path.isdir(text) else text
        if os.path.isfile(path):
            return _read_setting(path, os.path.getmtime(path))
        if text.endswith(".json") or os.sep in text:
            raise ChatTemplateError(f"The CHAT_TEMPLATE setting names a file that does not exist: {text}.")
    return _read_setting(setting, None)


@lru_cache(maxsize=16)
def _compiled(template: str) -> Any:
    """transformers' `_cached_compile_jinja_template`, without its assistant-mask tracking."""
    try:
        import jinja2
        from jinja2 import nodes
        from jinja2.ext import Extension, loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise ChatTemplateError("The CHAT_TEMPLATE setting needs the jinja2 package, which this Open WebUI does not have.") from None

    class GenerationTag(Extension):
        """`{% generation %}…{% endgeneration %}` marks assistant text for training masks; rendering keeps the text."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format: str) -> str:  # noqa: A002 - the name templates call it with
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"The CHAT_TEMPLATE setting is not a valid Jinja template (line {exc.lineno}: {exc.message}).") from None


def _text_messages(messages: list[dict]) -> list[dict]:
    """Content parts joined into text: prompt servers take text only."""
    return [{**m, "content": chat_template_text(m.get("content"))} if isinstance(m.get("content"), list) else m for m in messages]


def render_chat_template(
    chat_template: ModelChatTemplate,
    messages: list[dict],
    *,
    tools: list[dict] | None = None,
    add_generation_prompt: bool = True,
    **kwargs: Any,
) -> str:
    """The prompt `tokenizer.apply_chat_template(messages, tools=…, tokenize=False, …)` would give."""
    template = _compiled(chat_template.pick(tools))
    variables = {**chat_template.special_tokens, **kwargs}
    try:
        import jinja2
    except ImportError:  # _compiled already said so
        raise ChatTemplateError("The CHAT_TEMPLATE setting needs the jinja2 package.") from None
    try:
        return template.render(
            messages=_text_messages(messages), tools=tools, documents=None, add_generation_prompt=add_generation_prompt, **variables
        )
    except jinja2.exceptions.TemplateError as exc:
        raise ChatTemplateError(f"The model's chat template cannot render this chat: {exc}.") from None
    except (TypeError, KeyError, AttributeError, IndexError) as exc:
        raise ChatTemplateError(f"The model's chat template failed on this chat ({type(exc).__name__}: {exc}).") from None
