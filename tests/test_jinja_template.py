"""CHAT_TEMPLATE: a model's own Jinja template rendered byte for byte as transformers renders it.

The reference is transformers' own `render_jinja_template` (the code behind
`tokenizer.apply_chat_template`) on the same template, messages, tools and kwargs; ours is the
copy inlined in the built Flask pipe.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples.make_tiny_r1 import DEEPSEEK_R1_CHAT_TEMPLATE
from tests.support.built import load_function
from tests.support.reference_chat_templates import LLAMA3_INSTRUCT_CHAT_TEMPLATE, QWQ_32B_CHAT_TEMPLATE

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather <now> & \"later\"",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi <b>there</b> — ünïcode"},
    {"role": "assistant", "content": "<think>\nold thinking\n</think>\n\nHello!"},
    {"role": "user", "content": "Weather in Paris?"},
]
# A Qwen3-style fragment: enable_thinking, strftime_now, loop controls, {% generation %}, raise_exception.
QWEN3_LIKE = (
    "{%- for m in messages %}{%- if m.role == 'tool' %}{{ raise_exception('no tools here') }}{%- endif %}"
    "{%- if loop.index > 9 %}{% break %}{% endif %}"
    "<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}"
    "{% else %}{{ m.content }}{% endif %}<|im_end|>\n{%- endfor %}"
    "{%- if tools %}<tools>{{ tools | tojson }}</tools>{%- endif %}"
    "{{ strftime_now('%Y') | length }}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{%- endif %}{%- endif %}"
)


@pytest.fixture(scope="module")
def flask_module(built_dir: Path):
    return load_function(built_dir / "r1relay_flask.py")


def transformers_render(template: str, messages: list[dict], tools=None, **kwargs) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template([messages], tools=tools, chat_template=template, add_generation_prompt=True, **kwargs)
    return rendered[0]


@pytest.mark.parametrize(
    ("template", "tokens"),
    [
        (DEEPSEEK_R1_CHAT_TEMPLATE, {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}),
        (QWQ_32B_CHAT_TEMPLATE, {"eos_token": "<|im_end|>"}),
        (LLAMA3_INSTRUCT_CHAT_TEMPLATE, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
        (QWEN3_LIKE, {}),
    ],
    ids=["deepseek-r1", "qwq-32b", "llama3", "qwen3-like"],
)
@pytest.mark.parametrize("tools", [None, TOOLS], ids=["no-tools", "tools"])
@pytest.mark.parametrize("kwargs", [{}, {"enable_thinking": False}], ids=["", "thinking-off"])
def test_renders_as_transformers_does(flask_module, template: str, tokens: dict, tools, kwargs: dict) -> None:
    config = json.dumps({"chat_template": template, **tokens, "added_tokens_decoder": {}})
    model_template = flask_module.load_chat_template(config)
    ours = flask_module.render_chat_template(model_template, CHAT, tools=tools, **kwargs)
    assert ours == transformers_render(template, CHAT, tools=tools, **tokens, **kwargs)


def test_tokenizer_config_gives_tokens_and_named_templates(flask_module, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for setting in (str(tiny_model_dir), str(tiny_model_dir / "tokenizer_config.json"), (tiny_model_dir / "tokenizer_config.json").read_text()):
        model_template = flask_module.load_chat_template(setting)
        assert "<｜begin▁of▁sentence｜>" in model_template.all_special
        prompt = flask_module.render_chat_template(model_template, CHAT)
        assert prompt == tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    named = flask_module.load_chat_template(
        json.dumps({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T{{ tools | length }}"}]})
    )
    assert flask_module.render_chat_template(named, CHAT) == "D"
    assert flask_module.render_chat_template(named, CHAT, tools=TOOLS) == "T1"


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("{% if %}", "not a valid Jinja template"),
        ("{{ raise_exception('System role not supported') }}", "System role not supported"),
        ('{"chat_template": 5}', "without a chat_template"),
        ('{"chat_template": ', "not valid JSON"),
        ("/no/such/tokenizer_config.json", "does not exist"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "cannot render"),
    ],
    ids=["syntax", "raise-exception", "no-template", "bad-json", "missing-file", "sandboxed"],
)
async def test_bad_templates_are_one_sentence(flask_module, setting: str, words: str) -> None:
    from tests.support.pipe_driver import chat_body, make_pipe, run_pipe

    pipe = make_pipe(flask_module, BASE_URLS="http://127.0.0.1:9", CHAT_TEMPLATE=setting)
    run = await run_pipe(pipe, flask_module, chat_body("r1relay_flask.tiny-r1"))
    (error,) = run.errors
    assert words in error and error.endswith(".") and "Traceback" not in error


def test_model_template_plans_tools_and_thinking_off(flask_module) -> None:
    """Through the prompt plan: tools reach the template and its call markup is parsed; thinking off closes thinking."""
    config = json.dumps({"chat_template": QWQ_32B_CHAT_TEMPLATE, "eos_token": "<|im_end|>"})
    body = {"messages": CHAT, "tools": TOOLS}
    plan = flask_module.plan_prompt(flask_module.ChatRequest.from_body(body, "m"), "plain", config)
    assert plan.prompt == transformers_render(QWQ_32B_CHAT_TEMPLATE, CHAT, tools=TOOLS, eos_token="<|im_end|>")
    assert plan.tool_parser is not None and not plan.thinking_closed
    assert "<|im_end|>" in plan.special_tokens
    none_asked = flask_module.plan_prompt(flask_module.ChatRequest.from_body({**body, "tool_choice": "none"}, "m"), "plain", config)
    assert none_asked.tool_parser is None and "<tools>" not in none_asked.prompt
    off = {"messages": CHAT, "chat_template_kwargs": {"enable_thinking": False}}
    plan = flask_module.plan_prompt(flask_module.ChatRequest.from_body(off, "m"), "plain", json.dumps({"chat_template": QWEN3_LIKE}))
    assert plan.thinking_closed and plan.prompt.endswith("<think>\n\n</think>")


def test_missing_jinja2_is_one_sentence(flask_module, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in [m for m in sys.modules if m == "jinja2" or m.startswith("jinja2.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import jinja2` now fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "jinja2", None)
    flask_module._compiled.cache_clear()
    try:
        with pytest.raises(flask_module.ChatTemplateError, match="needs the jinja2 package, which this Open WebUI does not have"):
            flask_module.render_chat_template(flask_module.load_chat_template("{{ messages | length }} new"), CHAT)
    finally:
        flask_module._compiled.cache_clear()
