"""The "show code" script reproduces exactly what the playground generated."""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import io
import os
import subprocess
import sys

import pytest

from models import GenerationSettings, build_snippet, eight_bit_status, generate_call

from .modelhelpers import generate_text, prepared_for

PROMPT = "What is the capital of France?"
LONG_PROMPT = "the quick dog runs to the river and sees a bird " * 60  # longer than the tiny models' context


def snippet(loaded, prompt: str, settings: GenerationSettings) -> str:
    """The script for a run of ``prompt``: prepared once, as a run does."""
    return build_snippet(loaded, prepared_for(loaded, prompt, settings), settings, prompt)


def run_snippet(code: str) -> str:
    """Execute the script in a fresh namespace and return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})  # noqa: S102 - the code under test
    return out.getvalue()


CASES = {
    "t5 with task prefix": ("tiny-t5", PROMPT, {"task_prefix": "summarize: "}),
    "bart": ("tiny-bart", PROMPT, {}),
    "gpt2 plain continuation": ("tiny-gpt2", PROMPT, {}),
    "llama chat template": ("tiny-llama", PROMPT, {}),
    "llama template off": ("tiny-llama", PROMPT, {"use_chat_template": False}),
    "gpt2 sampling with seed": ("tiny-gpt2", PROMPT, {"temperature": 0.9, "top_k": 40, "top_p": 0.9, "seed": 7}),
    "gpt2 penalties": ("tiny-gpt2", PROMPT, {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2}),
    "gpt2 cut prompt": ("tiny-gpt2", LONG_PROMPT, {}),
    "t5 cut prompt": ("tiny-t5", LONG_PROMPT * 2, {}),
    "eos model": ("tiny-gpt2-eos", PROMPT, {}),
}


@pytest.mark.parametrize("name, prompt, settings", CASES.values(), ids=CASES.keys())
def test_snippet_prints_the_playground_text(load_tiny, name, prompt, settings):
    loaded = load_tiny(name)
    s = GenerationSettings(**{"max_new_tokens": 10, **settings})
    expected, _ = generate_text(loaded, prompt, s)
    code = snippet(loaded, prompt, s)
    assert run_snippet(code) == expected + "\n"
    assert f"{loaded.architecture.auto_class}.from_pretrained(" in code
    capped = prepared_for(loaded, prompt, s).max_new_tokens
    assert f"max_new_tokens={capped}," in code


def test_snippet_shows_each_way_of_building_the_prompt(load_tiny):
    chat = snippet(load_tiny("tiny-llama"), PROMPT, GenerationSettings())
    assert "apply_chat_template(messages, tokenize=False, add_generation_prompt=True)" in chat
    assert "add_special_tokens=False" in chat
    plain = snippet(load_tiny("tiny-gpt2"), PROMPT, GenerationSettings())
    assert "apply_chat_template" not in plain and "has no chat template" in plain
    seq = snippet(load_tiny("tiny-t5"), PROMPT, GenerationSettings(task_prefix="translate English to German: "))
    assert "task_prefix = 'translate English to German: '" in seq and "text = task_prefix + prompt" in seq
    capped = snippet(load_tiny("tiny-gpt2"), LONG_PROMPT, GenerationSettings(max_new_tokens=300))
    assert "max_new_tokens=128," in capped and "input_ids = input_ids[:, -128:]" in capped
    sampled = snippet(load_tiny("tiny-gpt2"), PROMPT, GenerationSettings(temperature=0.7, seed=42))
    assert "torch.manual_seed(42)" in sampled and "do_sample=True" in sampled and "temperature=0.7" in sampled


def test_odd_prompts_stay_exact_python_literals(load_tiny):
    prompt = 'He said """hi""" and \'\'\'bye\'\'\' \\n not a newline\nreal newline\t# not a comment \u2028 é 🙂 {x} ${y}'
    code = snippet(load_tiny("tiny-gpt2"), prompt, GenerationSettings(max_new_tokens=3))
    tree = ast.parse(code)
    literal = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], "id", None) == "prompt")
    assert ast.literal_eval(literal) == prompt


def test_hub_models_are_pinned_to_their_revision(load_tiny):
    loaded = load_tiny("tiny-t5")
    hub = dataclasses.replace(loaded, source=dataclasses.replace(loaded.source, path="google/flan-t5-small", local=False),
                              description=dataclasses.replace(loaded.description, revision="0123abcd"))
    code = snippet(hub, PROMPT, GenerationSettings())
    assert "model_id = 'google/flan-t5-small'" in code and "revision = '0123abcd'" in code
    assert "AutoTokenizer.from_pretrained(model_id, revision=revision)" in code
    assert "    revision=revision," in code
    ast.parse(code)


@pytest.mark.skipif(not eight_bit_status()[0], reason="bitsandbytes cannot quantize here")
def test_8bit_snippet_uses_bitsandbytes_and_matches(load_tiny):
    loaded = load_tiny("tiny-gpt2", load_in_8bit=True)
    s = GenerationSettings(max_new_tokens=8)
    code = snippet(loaded, PROMPT, s)
    assert "BitsAndBytesConfig" in code and "quantization_config=BitsAndBytesConfig(load_in_8bit=True)," in code
    assert "device_map=" in code and "model.to(" not in code, "a quantized model is placed by its device_map"
    expected, _ = generate_text(loaded, PROMPT, s)
    assert run_snippet(code) == expected + "\n"


def test_snippet_runs_standalone_with_the_venv_python(load_tiny, tmp_path):
    """Copy-paste proof: a separate interpreter, nothing from the test process but the offline switch."""
    loaded = load_tiny("tiny-llama")
    s = GenerationSettings(max_new_tokens=8)
    expected, _ = generate_text(loaded, PROMPT, s)
    script = tmp_path / "reproduce.py"
    script.write_text(snippet(loaded, PROMPT, s), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TMPDIR")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == expected + "\n"


@pytest.mark.parametrize("name, settings", [("tiny-gpt2", {"max_new_tokens": 300}), ("tiny-t5", {"temperature": 0.8, "top_k": 7}),
                                            ("tiny-llama", {"repetition_penalty": 1.2, "no_repeat_ngram_size": 3})])
def test_snippet_generate_arguments_are_the_runs_generate_call(load_tiny, name, settings):
    """The script's ``model.generate(...)`` is written from the same GenerateCall the stream passes to generate."""
    loaded = load_tiny(name)
    s = GenerationSettings(**settings)
    prepared = prepared_for(loaded, PROMPT, s)
    call = generate_call(loaded, prepared, s)
    args = generate_keywords(build_snippet(loaded, prepared, s, PROMPT))
    assert set(args) == {"input_ids", "attention_mask", "pad_token_id", "streamer", *call.options}
    assert {key: ast.literal_eval(args[key]) for key in call.options} == dict(call.options)
    assert ast.unparse(args["pad_token_id"]) == "tokenizer.pad_token_id"


def test_snippet_writes_the_pad_fallback_as_a_number(load_tiny):
    loaded = load_tiny("tiny-gpt2")
    tokenizer = copy.deepcopy(loaded.tokenizer)
    tokenizer.pad_token = None  # a tokenizer without pad (nor end) token: the model's end-of-sequence id pads
    tokenizer.eos_token = None
    no_pad = dataclasses.replace(loaded, tokenizer=tokenizer)
    s = GenerationSettings(max_new_tokens=4)
    prepared = prepared_for(loaded, PROMPT, s)
    pad = ast.literal_eval(generate_keywords(build_snippet(no_pad, prepared, s, PROMPT))["pad_token_id"])
    assert pad == generate_call(no_pad, prepared, s).pad_token_id == loaded.model.generation_config.eos_token_id


def generate_keywords(code: str) -> dict[str, ast.expr]:
    """The keyword arguments of the script's ``model.generate(...)`` call."""
    call = next(node for node in ast.walk(ast.parse(code))
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "generate")
    return {keyword.arg: keyword.value for keyword in call.keywords}
