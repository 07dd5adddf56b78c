#!/usr/bin/env python3
"""Reference renderings of a model's chat template, for ChatTemplateReferenceTest.

Renders a fixed set of conversations through the tokenizer_config.json chat template exactly the way Hugging Face
transformers' apply_chat_template(messages, tokenize=False, add_generation_prompt=...) does, and writes them as JSON.

Two renderers:
  * "jinja2": a copy of transformers' _compile_jinja_template environment (ImmutableSandboxedEnvironment with
    trim_blocks, lstrip_blocks and loopcontrols; tojson that does not HTML-escape; raise_exception; strftime_now),
    rendered with the same variables apply_chat_template passes (special_tokens_map, tools=None, documents=None,
    add_generation_prompt, then the extra kwargs). Needs only jinja2.
  * "transformers": AutoTokenizer.from_pretrained(dir).apply_chat_template, used when transformers is importable;
    every case must then agree with the jinja2 rendering, or the script fails.

Usage: chat_template_reference.py TOKENIZER_DIR OUTPUT_JSON
"""
import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

CASES = [
    {"name": "single_user", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "user", "content": "Hello!"}]},
    {"name": "single_user_no_generation_prompt", "add_generation_prompt": False, "kwargs": {},
     "messages": [{"role": "user", "content": "Hello!"}]},
    {"name": "system_user", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": "What is the capital of France?"}]},
    {"name": "multi_turn", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "And 3+3?"}]},
    {"name": "multi_turn_no_generation_prompt", "add_generation_prompt": False, "kwargs": {},
     "messages": [{"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "And 3+3?"}]},
    {"name": "enable_thinking_false", "add_generation_prompt": True, "kwargs": {"enable_thinking": False},
     "messages": [{"role": "user", "content": "Give me a short answer."}]},
    {"name": "enable_thinking_true", "add_generation_prompt": True, "kwargs": {"enable_thinking": True},
     "messages": [{"role": "user", "content": "Think hard."}]},
    {"name": "assistant_think_in_history", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "user", "content": "Is 7 prime?"},
                  {"role": "assistant", "content": "<think>\nIt has no divisors but 1 and 7.\n</think>\n\nYes."},
                  {"role": "user", "content": "Is 9 prime?"}]},
    {"name": "assistant_think_last_turn", "add_generation_prompt": False, "kwargs": {},
     "messages": [{"role": "user", "content": "Is 7 prime?"},
                  {"role": "assistant", "content": "<think>reasoning</think>answer"}]},
    {"name": "assistant_without_think_last_turn", "add_generation_prompt": False, "kwargs": {},
     "messages": [{"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello there"}]},
    {"name": "assistant_think_between_tool_free_turns", "add_generation_prompt": False, "kwargs": {},
     "messages": [{"role": "user", "content": "q1"},
                  {"role": "assistant", "content": "<think>r1</think>a1"},
                  {"role": "user", "content": "q2"},
                  {"role": "assistant", "content": "<think>\n\nr2\n\n</think>\n\na2"}]},
    {"name": "unicode", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "system", "content": "你是一个乐于助人的助手。"},
                  {"role": "user", "content": "上海是一座什么样的城市？👋🏽 👨‍👩‍👧‍👦 こんにちは 안녕하세요 مرحبا Привет"}]},
    {"name": "newlines_and_jinja_looking_text", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "user",
                   "content": "  line one\n\n\tline two {{ x }} {% if y %}z{% endif %} {# c #}\nend  \n"}]},
    {"name": "user_starting_with_tool_response_tag", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "user", "content": "<tool_response>not really a tool</tool_response>"}]},
    {"name": "tool_results_after_assistant", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": "<think>need the tool</think>Let me check."},
                  {"role": "tool", "content": "{\"temp_c\": 21}"},
                  {"role": "tool", "content": "sunny"}]},
    {"name": "system_only_later", "add_generation_prompt": True, "kwargs": {},
     "messages": [{"role": "user", "content": "first"},
                  {"role": "system", "content": "late system"},
                  {"role": "user", "content": "second"}]},
]


def compile_like_transformers(chat_template):
    """The environment of transformers.utils.chat_template_utils._compile_jinja_template."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(chat_template)


def special_tokens_map(config):
    """What PreTrainedTokenizerBase.special_tokens_map holds: the set special tokens, as strings."""
    result = {}
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if value is not None:
            result[key] = value
    if config.get("additional_special_tokens"):
        result["additional_special_tokens"] = config["additional_special_tokens"]
    return result


def chat_template_of(config):
    template = config.get("chat_template")
    if isinstance(template, list):
        template = {t["name"]: t["template"] for t in template}["default"]
    if not isinstance(template, str):
        sys.exit("tokenizer_config.json has no chat_template")
    return template


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tokenizer_dir, output = Path(sys.argv[1]), Path(sys.argv[2])
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    template = compile_like_transformers(chat_template_of(config))
    tokens = special_tokens_map(config)

    try:
        from transformers import AutoTokenizer
        hf_tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    except ImportError:
        hf_tokenizer = None
    renderers = ["jinja2"] + (["transformers"] if hf_tokenizer is not None else [])

    results = []
    for case in CASES:
        rendered = template.render(messages=case["messages"], tools=None, documents=None,
                                   add_generation_prompt=case["add_generation_prompt"],
                                   **{**tokens, **case["kwargs"]})
        if hf_tokenizer is not None:
            by_transformers = hf_tokenizer.apply_chat_template(
                case["messages"], tokenize=False, add_generation_prompt=case["add_generation_prompt"],
                **case["kwargs"])
            if by_transformers != rendered:
                sys.exit(f"case {case['name']}: jinja2 and transformers disagree:\n"
                         f"{rendered!r}\n{by_transformers!r}")
        results.append({**case, "expected": rendered})

    document = {
        "renderers": renderers,
        "jinja2_version": jinja2.__version__,
        "transformers_version": None if hf_tokenizer is None else __import__("transformers").__version__,
        "cases": results,
    }
    output.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"rendered {len(results)} cases with {' and '.join(renderers)} into {output}")


if __name__ == "__main__":
    main()
