"""load_model (device, dtype, 8-bit, safe weights, readable errors) and the shared ModelCache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
import time
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

from models import GenerationSettings, Kind, ModelCache, ModelLoadError, ModelSource, Precision, eight_bit_status, load_model
from models.loader import ModelDescription, pick_dtype, resolve_precision

from .conftest import CAUSAL_TINY, SEQ2SEQ_TINY
from .modelhelpers import generate_text, hub_error

EXPECTED = {
    "tiny-t5": (Kind.SEQ2SEQ, "AutoModelForSeq2SeqLM", "T5ForConditionalGeneration", "t5"),
    "tiny-bart": (Kind.SEQ2SEQ, "AutoModelForSeq2SeqLM", "BartForConditionalGeneration", "bart"),
    "tiny-gpt2": (Kind.CAUSAL, "AutoModelForCausalLM", "GPT2LMHeadModel", "gpt2"),
    "tiny-llama": (Kind.CAUSAL, "AutoModelForCausalLM", "LlamaForCausalLM", "llama"),
}


@pytest.mark.parametrize("name", [*SEQ2SEQ_TINY, *CAUSAL_TINY])
def test_load_tiny_models(load_tiny, name):
    loaded = load_tiny(name)
    kind, auto, resolved, model_type = EXPECTED[name]
    d = loaded.description
    assert loaded.kind is kind and d.kind is kind
    assert (d.auto_class, d.resolved_class, d.model_type) == (auto, resolved, model_type)
    assert type(loaded.model).__name__ == resolved
    auto = resolve_precision("auto", loaded.model.config, "cpu").value  # bfloat16 on a CPU with native bf16
    assert d.device == "cpu" and d.dtype == d.precision == auto and d.quantization == "none"
    assert d.params == sum(p.numel() for p in loaded.model.parameters()) > 0
    assert d.memory_bytes == loaded.model.get_memory_footprint() > 0 and d.revision is None
    assert not loaded.model.training
    assert loaded.tokenizer.pad_token_id is not None
    assert loaded.load_kwargs["trust_remote_code"] is False and loaded.load_kwargs["use_safetensors"] is True
    data = d.to_dict()
    assert data["kind"] == kind.value and data["resolved_class"] == resolved
    assert data["architecture"] == kind.architecture and data["params_text"] == d.params_text


def test_load_reports_progress(registry):
    messages: list[str] = []
    load_model(registry.resolve("tiny-gpt2"), on_status=messages.append)
    assert messages[0].startswith("Reading the config of tiny-gpt2")
    assert any(m.startswith("Loading weights of tiny-gpt2") for m in messages)


def test_params_text():
    def described(n):
        return ModelDescription("x", Kind.CAUSAL, "A", "B", "t", n, "float32", "cpu", 0, "none", "o", None, 0.0)

    assert described(77_000_000).params_text == "77M"
    assert described(1_240_000_000).params_text == "1.24B"
    assert described(49_700).params_text == "49.7K"
    assert described(999).params_text == "999"


def test_pick_dtype(monkeypatch):
    from transformers import GPT2Config, T5Config

    import models.loader as loader

    monkeypatch.setattr(loader, "cpu_has_native_bf16", lambda: False)
    assert pick_dtype(T5Config(), "cpu") == torch.float32
    assert pick_dtype(GPT2Config(), "cpu") == torch.float32
    monkeypatch.setattr(loader, "_gpu_bf16", lambda: False)
    assert pick_dtype(GPT2Config(), "cuda") == torch.float16
    assert pick_dtype(T5Config(), "cuda") == torch.float32  # T5 overflows in float16
    monkeypatch.setattr(loader, "_gpu_bf16", lambda: True)
    assert pick_dtype(T5Config(), "cuda") == torch.bfloat16
    assert pick_dtype(GPT2Config(), "cuda") == torch.bfloat16


# ---- readable errors ---------------------------------------------------------------------------

def test_missing_folder_is_a_readable_error(tmp_path):
    source = ModelSource("gone", str(tmp_path / "gone"), "test", local=True)
    with pytest.raises(ModelLoadError, match="^gone: the model files are missing or corrupt"):
        load_model(source)


def test_folder_without_model_type_is_a_readable_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="missing or corrupt"):
        load_model(ModelSource("empty", str(tmp_path), "test", local=True))


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5", "tiny-bart"])
def test_missing_tokenizer_is_a_readable_error(tiny_dir, tmp_path, name):
    """transformers 5 quietly builds an empty tokenizer here; the loader must refuse it, not generate garbage."""
    for file in ("config.json", "model.safetensors", "generation_config.json"):
        (tmp_path / file).write_bytes((tiny_dir / name / file).read_bytes())
    with pytest.raises(ModelLoadError, match="^no-tokenizer: no tokenizer files found"):
        load_model(ModelSource("no-tokenizer", str(tmp_path), "test", local=True))


def test_uncached_hub_model_offline_is_a_readable_error():
    source = ModelSource("google/flan-t5-small", "google/flan-t5-small", "Hugging Face cache (offline)")
    with pytest.raises(ModelLoadError, match="hub cannot be reached"):
        load_model(source)


@pytest.mark.parametrize("error_class, expected", [
    (RepositoryNotFoundError, "was not found on the Hugging Face hub"), (GatedRepoError, "was not found on the Hugging Face hub"),
    (LocalEntryNotFoundError, "is not on this machine and the Hugging Face hub cannot be reached"),
    (OfflineModeIsEnabled, "is not on this machine and the Hugging Face hub cannot be reached"),
])
def test_hub_errors_are_told_by_their_class(monkeypatch, error_class, expected):
    """Raised as they are, or wrapped in an OSError the way transformers wraps them (``raise OSError(...) from error``)."""
    import models.loader as loader

    source = ModelSource("someone/model", "someone/model", "Hugging Face hub")
    for wrap in (False, True):
        def fail(*args, wrap=wrap, **kwargs):
            error = hub_error(error_class, "hub said no")
            if wrap:
                raise OSError("a message that names nothing") from error
            raise error

        monkeypatch.setattr(loader.AutoConfig, "from_pretrained", fail)
        with pytest.raises(ModelLoadError, match=f"^someone/model {expected}"):
            load_model(source)


def test_other_oserrors_are_not_taken_for_hub_errors(monkeypatch):
    import models.loader as loader

    def fail(*args, **kwargs):
        raise OSError("disk quota exceeded") from ValueError("inner")

    monkeypatch.setattr(loader.AutoConfig, "from_pretrained", fail)
    with pytest.raises(ModelLoadError, match=r"^someone/model could not be loaded \(OSError: disk quota exceeded\)"):
        load_model(ModelSource("someone/model", "someone/model", "Hugging Face hub"))


@pytest.fixture(scope="module")
def pickle_only_dir(tiny_dir, tmp_path_factory):
    """tiny-gpt2 with its weights as a pickled ``pytorch_model.bin`` and no safetensors."""
    from safetensors.torch import load_file

    folder = tmp_path_factory.mktemp("pickle-only")
    for file in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / file).write_bytes((tiny_dir / "tiny-gpt2" / file).read_bytes())
    torch.save(load_file(tiny_dir / "tiny-gpt2" / "model.safetensors"), folder / "pytorch_model.bin")
    return folder


def test_pickle_weights_refused_unless_allowed(pickle_only_dir):
    source = ModelSource("pickled", str(pickle_only_dir), "test", local=True)
    with pytest.raises(ModelLoadError, match=r"pickle format \(\.bin\).*refused"):
        load_model(source)
    loaded = load_model(source, allow_pickle=True)
    assert "use_safetensors" not in loaded.load_kwargs
    text, stats = generate_text(loaded, "The cat", GenerationSettings(max_new_tokens=4))
    assert stats.output_tokens == 4


# ---- 8-bit -------------------------------------------------------------------------------------

def test_eight_bit_status_on_cpu():
    ok, reason = eight_bit_status("cpu")
    assert ok, reason
    assert "CPU" in reason and "bitsandbytes" in reason


@pytest.mark.parametrize("version, on_cpu", [("0.48.0", True), ("0.50.2", True), ("0.48.0.dev0", False), ("0.47.9", False),
                                             ("0.9", False), ("1.0", True), ("not-a-version", False)])
def test_eight_bit_status_compares_the_bitsandbytes_version(monkeypatch, version, on_cpu):
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: version if name == "bitsandbytes" else real(name))
    ok, reason = eight_bit_status("cpu")
    assert ok is on_cpu and f"bitsandbytes {version}" in reason
    if not on_cpu:
        assert "needs bitsandbytes >= 0.48" in reason
    assert eight_bit_status("cuda")[0], "on GPU every version quantizes"


def test_eight_bit_refused_with_reason_when_unavailable(registry, monkeypatch):
    import models.loader as loader

    monkeypatch.setattr(loader, "eight_bit_status", lambda device=None: (False, "8-bit needs the bitsandbytes package"))
    with pytest.raises(ModelLoadError, match="8-bit needs the bitsandbytes package"):
        load_model(registry.resolve("tiny-gpt2"), load_in_8bit=True)


@pytest.mark.parametrize("name", ["tiny-t5", "tiny-gpt2"])
def test_eight_bit_on_cpu(load_tiny, name):
    from bitsandbytes.nn import Linear8bitLt

    full = load_tiny(name, precision="float32")
    loaded = load_tiny(name, load_in_8bit=True)
    assert loaded is not full
    d = loaded.description
    assert "8-bit" in d.quantization and d.to_dict()["quantization"] == "8-bit (bitsandbytes)" and d.precision == "8-bit"
    assert d.device == "cpu"
    linears = {n: m for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.Linear)}
    quantized = {n for n, m in linears.items() if isinstance(m, Linear8bitLt)}
    assert quantized, "no Linear layer was quantized"
    assert all(linears[n].weight.dtype == torch.int8 for n in quantized)
    if name == "tiny-t5":  # T5 keeps its feed-forward output layers in full precision (_keep_in_fp32_modules)
        wo = [m for n, m in linears.items() if n.endswith("DenseReluDense.wo")]
        assert len(wo) == 4
        assert all(type(m) is torch.nn.Linear and m.weight.dtype == torch.float32 for m in wo)
    assert d.memory_bytes < full.description.memory_bytes
    text, stats = generate_text(loaded, "The quick dog reads", GenerationSettings(max_new_tokens=6))
    assert stats.finish_reason.value == "length" and stats.output_tokens == 6 and text.strip()


def test_eight_bit_is_cached_separately(cache, registry, load_tiny):
    source = registry.resolve("tiny-gpt2")
    eight_bit = load_tiny("tiny-gpt2", load_in_8bit=True)  # loaded first: the test must not rely on an earlier one
    assert cache.peek("tiny-gpt2", True) is eight_bit
    assert cache.get(source) is not cache.get(source, load_in_8bit=True)


# ---- the cache ---------------------------------------------------------------------------------

def test_cache_loads_once_under_concurrent_requests(registry):
    calls: list[str] = []
    calls_lock = threading.Lock()

    def counting_loader(source, **kwargs):
        with calls_lock:
            calls.append(source.name)
        time.sleep(0.2)  # keep the load in progress while the other threads arrive
        return load_model(source, **kwargs)

    cache = ModelCache(max_models=2, loader=counting_loader)
    source = registry.resolve("tiny-gpt2")
    barrier = threading.Barrier(8)
    results: list[object] = [None] * 8
    errors: list[BaseException] = []

    def request(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = cache.get(source)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(i,), name=f"cache-test-{i}") for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert calls == ["tiny-gpt2"]
    assert cache.loads == 1 and len(cache) == 1
    assert all(r is results[0] for r in results) and results[0] is not None
    assert cache.get(source) is results[0] and cache.loads == 1


def test_auto_and_the_precision_it_resolves_to_share_one_cached_copy_even_when_loaded_at_once():
    """Two visitors, one asking for auto and one for what auto resolves to (bfloat16 here), at the same moment:
    the loads run one after the other under the model's lock, and one copy stays in memory."""
    def resolving_loader(source, precision, **kwargs):
        time.sleep(0.2)  # both requests arrive while the first load runs
        return SimpleNamespace(source=source, description=SimpleNamespace(precision="bfloat16"), requested=precision)

    cache, source = ModelCache(max_models=4, loader=resolving_loader), _source("m")
    barrier = threading.Barrier(2)

    def request(precision: str):
        barrier.wait(timeout=30)
        return cache.get(source, precision)

    with ThreadPoolExecutor(2) as pool:
        auto, explicit = pool.map(request, ("auto", "bfloat16"))
    assert auto is explicit and len(cache) == 1, "one copy of the model, whichever name it was asked by"
    assert cache.get(source, "auto") is auto and cache.get(source, "bfloat16") is auto
    cache.clear()
    assert len(cache) == 0 and cache.peek("m", "auto") is None


def _fake_loader(counter: list[str]):
    def load(source, **kwargs):
        counter.append(source.name)
        return SimpleNamespace(source=source, precision=kwargs.get("precision"))

    return load


def _source(name: str) -> ModelSource:
    return ModelSource(name, f"/nowhere/{name}", "test", local=True)


def test_cache_evicts_least_recently_used():
    loads: list[str] = []
    cache = ModelCache(max_models=2, loader=_fake_loader(loads))
    a, b, c = _source("a"), _source("b"), _source("c")
    first_a = cache.get(a)
    cache.get(b)
    assert cache.get(a) is first_a  # a is now the most recently used
    cache.get(c)  # evicts b
    assert len(cache) == 2
    assert cache.peek("b") is None and cache.peek("a") is first_a and cache.peek("c") is not None
    assert loads == ["a", "b", "c"]
    cache.get(b)  # reloaded; evicts a (c was used more recently)
    assert loads == ["a", "b", "c", "b"] and cache.loads == 4
    assert cache.peek("a") is None and cache.peek("c") is not None
    cache.clear()
    assert len(cache) == 0


def test_cache_evicts_real_models(registry):
    cache = ModelCache(max_models=2)
    for name in ("tiny-t5", "tiny-gpt2", "tiny-llama"):
        cache.get(registry.resolve(name))
    assert cache.peek("tiny-t5") is None
    assert cache.peek("tiny-gpt2") is not None and cache.peek("tiny-llama") is not None
    assert cache.loads == 3


def test_cache_keys_include_eight_bit():
    loads: list[str] = []
    cache = ModelCache(max_models=4, loader=_fake_loader(loads))
    full, eight = cache.get(_source("a")), cache.get(_source("a"), load_in_8bit=True)
    assert full is not eight and eight.precision is Precision.INT8 and loads == ["a", "a"]
    assert cache.peek("a") is full and cache.peek("a", True) is eight and cache.peek("a", "8-bit") is eight


def test_cache_failed_load_can_be_retried():
    attempts: list[str] = []

    def flaky(source, **kwargs):
        attempts.append(source.name)
        if len(attempts) == 1:
            raise ModelLoadError("first load fails")
        return SimpleNamespace(source=source)

    cache = ModelCache(max_models=2, loader=flaky)
    with pytest.raises(ModelLoadError, match="first load fails"):
        cache.get(_source("a"))
    assert len(cache) == 0 and cache.loads == 0
    assert cache.get(_source("a")).source.name == "a"
    assert cache.loads == 1


def test_cache_passes_options_to_loader():
    seen: list[dict] = []

    def loader(source, **kwargs):
        seen.append(kwargs)
        return SimpleNamespace(source=source)

    status = []
    ModelCache(allow_pickle=True, loader=loader).get(_source("a"), load_in_8bit=True, on_status=status.append)
    assert [{k: v for k, v in kwargs.items() if k != "on_status"} for kwargs in seen] == [
        {"precision": Precision.INT8, "allow_pickle": True}]
    seen[0]["on_status"]("hello")
    assert status == [], "the load is over: nobody listens any more"


def test_a_request_waiting_on_a_load_hears_what_that_load_does():
    """The start-up preload converts a GGUF file (no status callback); a visitor who runs meanwhile waits on
    that load and must see its steps, not only "Loading … 79 s"."""
    started, release = threading.Event(), threading.Event()

    def slow_loader(source, on_status, **kwargs):
        on_status("step 1 of 2: reading")
        started.set()
        assert release.wait(30)
        on_status("step 2 of 2: saving")
        return SimpleNamespace(source=source)

    cache, source = ModelCache(max_models=2, loader=slow_loader), _source("gguf")
    with ThreadPoolExecutor(1) as pool:
        preload = pool.submit(cache.get, source)  # like Runner.preload: nobody shows its status
        assert started.wait(30)
        heard: list[str] = []
        waiter = threading.Thread(target=cache.get, args=(source,), kwargs={"on_status": heard.append})
        waiter.start()
        deadline = time.perf_counter() + 10
        while not heard and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert heard == ["step 1 of 2: reading"], "a late waiter hears the last status line at once"
        release.set()
        waiter.join(30)
        assert preload.result(30) is cache.peek("gguf")
    assert heard == ["step 1 of 2: reading", "step 2 of 2: saving"] and cache.loads == 1


def test_cache_needs_room_for_one_model():
    with pytest.raises(ValueError):
        ModelCache(max_models=0)


EIGHT_BIT_SCRIPT = """
import sys
from models import GenerationSettings, ModelCache, ModelRegistry
from tests.modelhelpers import generate_text
registry = ModelRegistry(online=False)
registry.register_dir(sys.argv[1])
loaded = ModelCache(1).get(registry.resolve("tiny-gpt2"), "auto", load_in_8bit=True)
for _ in range(2):  # two answers of 16 tokens: dozens of 8-bit matmuls each
    generate_text(loaded, "hello there", GenerationSettings(max_new_tokens=16))
print("answered")
"""


def test_a_bitsandbytes_warning_is_logged_once_not_once_per_token(tiny_dir):
    """bitsandbytes logs "MatMul8bitLt: inputs will be cast …" on every 8-bit matmul (26,880 lines for one
    128-token answer); the loader lets each such message through once per process."""
    if not eight_bit_status("cpu")[0]:
        pytest.skip(eight_bit_status("cpu")[1])
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", EIGHT_BIT_SCRIPT, str(tiny_dir)], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "answered" in done.stdout, done.stderr[-2000:]
    assert done.stderr.count("MatMul8bitLt") == 1, done.stderr.count("MatMul8bitLt")
