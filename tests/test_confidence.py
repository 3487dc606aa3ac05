"""Each token's probability and its alternatives: equal to an independent teacher-forced forward pass of the same
model, for lone, grouped and batched runs, greedy and sampled, seq2seq and causal."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import AutoTokenizer

from models import GenerationSettings, Kind, ModelCache, ModelRegistry
from models.confidence import token_pieces
from models.grouping import Grouper
from models.sets.batch import generate_rows
from models.sets.rows import PromptRow
from models.tiny import build_tiny
from models.types import TOP_TOKENS, TokenProb, confidence_summary
from tests.modelhelpers import generate_text, prepared_for
from tests.test_grouping import run_together

PROMPTS = ["The cat sat on the", "Once upon a time there was", "Hello", "A long prompt about rivers and their banks"]
MODELS = ["tiny-gpt2", "tiny-llama", "tiny-t5", "tiny-bart"]


def teacher_forced(loaded, prompt: str, settings: GenerationSettings, generated: list[int]) -> torch.Tensor:
    """The model's probabilities (rows: steps, columns: vocabulary) over its own answer, in one forward pass:
    prompt + answer for a decoder-only model; encoder input, then decoder start + answer for a seq2seq one."""
    prepared = prepared_for(loaded, prompt, settings)
    model = loaded.model
    with torch.inference_mode():
        if loaded.kind is Kind.CAUSAL:
            ids = torch.tensor([prepared.input_ids + generated])
            logits = model(input_ids=ids).logits[0, len(prepared.input_ids) - 1:-1]
        else:
            start = model.generation_config.decoder_start_token_id
            decoder = torch.tensor([[start] + generated[:-1]])
            logits = model(input_ids=torch.tensor([prepared.input_ids]), decoder_input_ids=decoder).logits[0]
    return torch.softmax(logits.float(), dim=-1)


def assert_matches(loaded, prompt: str, settings: GenerationSettings, tokens: list[TokenProb] | tuple[TokenProb, ...]):
    ids = [t.id for t in tokens]
    probs = teacher_forced(loaded, prompt, settings, ids)
    assert probs.shape[0] == len(tokens) > 0
    for step, token in enumerate(tokens):
        assert token.prob == pytest.approx(float(probs[step, token.id]), abs=1e-4), f"step {step}"
        top = torch.topk(probs[step], TOP_TOKENS)
        assert [c.id for c in token.top] == top.indices.tolist(), f"step {step}: the top {TOP_TOKENS}"
        for choice, expected in zip(token.top, top.values.tolist()):
            assert choice.prob == pytest.approx(expected, abs=1e-4)


def assert_well_formed(tokens, text: str, *, holds_chosen: bool):
    assert "".join(t.text for t in tokens) == text, "the tokens' texts add up to the answer"
    for token in tokens:
        probs = [c.prob for c in token.top]
        assert len(token.top) == TOP_TOKENS and probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1 + 1e-6 and 0 <= token.prob <= 1
        if holds_chosen:
            assert token.top[0].id == token.id and token.top[0].prob == pytest.approx(token.prob)


@pytest.fixture(scope="module")
def load_free(tmp_path_factory):
    """Tiny models whose generation config suppresses no token (the shared ones keep only word tokens), so
    that greedy decoding takes the raw top token, as it does for a real model."""
    root = tmp_path_factory.mktemp("free-models")
    for arch in ("gpt2", "t5"):
        folder = build_tiny(arch, root / f"free-{arch}")
        config = folder / "generation_config.json"
        config.write_text(config.read_text().replace('"suppress_tokens"', '"_unused"'))
    registry = ModelRegistry(online=False)
    registry.register_dir(root)
    cache = ModelCache(4)
    return lambda name: cache.get(registry.resolve(name), "float32")


@pytest.mark.parametrize("name", ["free-gpt2", "free-t5"])
def test_greedy_takes_the_top_token_and_the_top_list_holds_it(load_free, name):
    loaded = load_free(name)
    assert not loaded.model.generation_config.suppress_tokens
    settings = GenerationSettings(max_new_tokens=12)
    text, stats = generate_text(loaded, PROMPTS[3], settings)
    assert_matches(loaded, PROMPTS[3], settings, stats.tokens)
    assert_well_formed(stats.tokens, text, holds_chosen=True)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("settings", [GenerationSettings(max_new_tokens=10),
                                      GenerationSettings(max_new_tokens=10, temperature=1.3, top_k=20, seed=4),
                                      GenerationSettings(max_new_tokens=10, repetition_penalty=1.5)],
                         ids=["greedy", "sampled", "repetition-penalty"])
def test_a_lone_run_records_the_models_own_probabilities(load_tiny, name, settings):
    loaded = load_tiny(name, precision="float32")
    text, stats = generate_text(loaded, PROMPTS[0], settings)
    assert stats.tokens is not None and stats.tokens_note is None and len(stats.tokens) == stats.output_tokens
    assert_matches(loaded, PROMPTS[0], settings, stats.tokens)  # raw logits: before the penalty and the sampler
    assert_well_formed(stats.tokens, text, holds_chosen=False)  # these suppress non-words
    summary = stats.to_dict()["confidence"]
    assert summary["tokens"] == stats.output_tokens
    assert summary["below_half"] == sum(1 for t in stats.tokens if t.prob < 0.5)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_each_row_of_a_group_gets_its_own_tokens(load_tiny, name):
    loaded = load_tiny(name, precision="float32")
    settings = GenerationSettings(max_new_tokens=8)
    grouper = Grouper(window=0.5)
    results = run_together(loaded, PROMPTS, settings, grouper)
    assert grouper.sizes == [4]
    for prompt, (text, stats) in zip(PROMPTS, results):
        assert stats.batch_rows == 4 and stats.tokens is not None
        assert_matches(loaded, prompt, settings, stats.tokens)
        assert_well_formed(stats.tokens, text, holds_chosen=False)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-bart"])
def test_each_row_of_a_batched_set_gets_its_own_tokens(load_tiny, name):
    loaded = load_tiny(name, precision="float32")
    settings = GenerationSettings(max_new_tokens=8)
    results = list(generate_rows(loaded, [PromptRow(p) for p in PROMPTS], settings, batch_size=4))
    assert all(r.batch_size == 4 for r in results)
    for result in results:
        assert result.tokens is not None and len(result.tokens) == result.output_tokens
        assert_matches(loaded, PROMPTS[result.index], settings, result.tokens)
        assert_well_formed(result.tokens, result.text, holds_chosen=False)


def test_8bit_and_bfloat16_runs_record_tokens_too(load_tiny):
    for loaded in (load_tiny("tiny-gpt2", load_in_8bit=True), load_tiny("tiny-t5", precision="bfloat16")):
        text, stats = generate_text(loaded, PROMPTS[1], GenerationSettings(max_new_tokens=6))
        assert stats.tokens is not None and len(stats.tokens) == 6
        assert_well_formed(stats.tokens, text, holds_chosen=False)


def test_a_stopped_run_keeps_the_tokens_it_wrote(load_tiny):
    loaded = load_tiny("tiny-gpt2", precision="float32")
    stop = threading.Event()
    prepared = prepared_for(loaded, PROMPTS[0], GenerationSettings(max_new_tokens=200))
    from models import stream
    last = None
    for last in stream(loaded, prepared, GenerationSettings(max_new_tokens=200), stop_event=stop):
        if len(last.text) > 10:
            stop.set()
    assert last.stats.finish_reason.value == "stopped"
    assert last.stats.tokens and "".join(t.text for t in last.stats.tokens) == last.text


def test_pieces_add_up_to_the_decoded_text_across_split_characters(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir / "tiny-gpt2")
    text = "naïve café — 東京\nnext line ✓"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = token_pieces(tokenizer, ids)
    assert len(pieces) == len(ids) and "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    assert token_pieces(tokenizer, ids + [tokenizer.eos_token_id])[-1] == "", "an end token adds no text"


def test_confidence_summary_counts_uncertain_tokens():
    tokens = [TokenProb(1, "a", 0.9), TokenProb(2, "b", 0.4), TokenProb(3, "c", 0.2)]
    summary = confidence_summary(tokens)
    assert summary["below_half"] == 2 and summary["mean_prob"] == pytest.approx(0.5)
    assert confidence_summary([]) is None and confidence_summary(None) is None
    assert TokenProb.from_dict(tokens[0].to_dict()) == tokens[0]
