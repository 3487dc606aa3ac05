"""The "show code" script reproduces exactly what the playground generated."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import os
import subprocess
import sys

import pytest

from models import GenerationSettings, build_snippet, eight_bit_status, generate_text, prepare

PROMPT = "What is the capital of France?"
LONG_PROMPT = "the quick dog runs to the river and sees a bird " * 60  # longer than the tiny models' context


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
    code = build_snippet(loaded, prompt, s)
    assert run_snippet(code) == expected + "\n"
    assert f"{loaded.architecture.auto_class}.from_pretrained(" in code
    capped = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, s).max_new_tokens
    assert f"max_new_tokens={capped}," in code


def test_snippet_shows_each_way_of_building_the_prompt(load_tiny):
    chat = build_snippet(load_tiny("tiny-llama"), PROMPT, GenerationSettings())
    assert "apply_chat_template(messages, tokenize=False, add_generation_prompt=True)" in chat
    assert "add_special_tokens=False" in chat
    plain = build_snippet(load_tiny("tiny-gpt2"), PROMPT, GenerationSettings())
    assert "apply_chat_template" not in plain and "has no chat template" in plain
    seq = build_snippet(load_tiny("tiny-t5"), PROMPT, GenerationSettings(task_prefix="translate English to German: "))
    assert "task_prefix = 'translate English to German: '" in seq and "text = task_prefix + prompt" in seq
    capped = build_snippet(load_tiny("tiny-gpt2"), LONG_PROMPT, GenerationSettings(max_new_tokens=300))
    assert "max_new_tokens=128," in capped and "input_ids = input_ids[:, -128:]" in capped
    sampled = build_snippet(load_tiny("tiny-gpt2"), PROMPT, GenerationSettings(temperature=0.7, seed=42))
    assert "torch.manual_seed(42)" in sampled and "do_sample=True" in sampled and "temperature=0.7" in sampled


def test_odd_prompts_stay_exact_python_literals(load_tiny):
    prompt = 'He said """hi""" and \'\'\'bye\'\'\' \\n not a newline\nreal newline\t# not a comment \u2028 é 🙂 {x} ${y}'
    code = build_snippet(load_tiny("tiny-gpt2"), prompt, GenerationSettings(max_new_tokens=3))
    tree = ast.parse(code)
    literal = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], "id", None) == "prompt")
    assert ast.literal_eval(literal) == prompt


def test_hub_models_are_pinned_to_their_revision(load_tiny):
    loaded = load_tiny("tiny-t5")
    hub = dataclasses.replace(loaded, source=dataclasses.replace(loaded.source, path="google/flan-t5-small", local=False),
                              description=dataclasses.replace(loaded.description, revision="0123abcd"))
    code = build_snippet(hub, PROMPT, GenerationSettings())
    assert "model_id = 'google/flan-t5-small'" in code and "revision = '0123abcd'" in code
    assert "AutoTokenizer.from_pretrained(model_id, revision=revision)" in code
    assert "    revision=revision," in code
    ast.parse(code)


@pytest.mark.skipif(not eight_bit_status()[0], reason="bitsandbytes cannot quantize here")
def test_8bit_snippet_uses_bitsandbytes_and_matches(load_tiny):
    loaded = load_tiny("tiny-gpt2", load_in_8bit=True)
    s = GenerationSettings(max_new_tokens=8)
    code = build_snippet(loaded, PROMPT, s)
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
    script.write_text(build_snippet(loaded, PROMPT, s), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TMPDIR")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == expected + "\n"
