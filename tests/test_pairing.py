"""Free pairing: either panel takes any generative model, the same model may sit on both sides (in two
precisions), the pairing examples pick models and precisions, and exports say left/right and the model."""

from __future__ import annotations

import pytest

from components.examples import EXAMPLES
from components.export import build_comparison, to_markdown
from models import GenerationSettings, Kind
from models.settings import Precision
from tests.apphelpers import built_page, merged, run_side, show_selection
from tests.modelhelpers import generate_text


@pytest.fixture(scope="module")
def page(registry, cache):
    return built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")


def test_both_panels_offer_every_generative_model_and_start_on_the_two_kinds(page):
    built, _runner = page
    left, right = built.panels["left"], built.panels["right"]
    offered = {side: {value for _label, value in built.panels[side].model.choices} for side in ("left", "right")}
    assert offered["left"] == offered["right"]
    assert {"tiny-t5", "tiny-bart", "tiny-gpt2", "tiny-llama"} <= offered["left"]
    assert (left.model.value, right.model.value) == ("tiny-t5", "tiny-gpt2"), "defaults: seq2seq left, causal right"
    labels = dict((value, label) for label, value in left.model.choices)
    assert "seq2seq" in labels["google/flan-t5-small"] and "causal" in labels["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert built.panels[Kind.SEQ2SEQ] is left and built.panels[Kind.CAUSAL] is right, "kinds still name the start panels"


def test_a_causal_model_on_the_left_and_a_seq2seq_model_on_the_right(page, load_tiny):
    built, _runner = page
    left, right = built.panels["left"], built.panels["right"]
    on_left = merged(run_side(built, "left", "The cat sat", "tiny-llama", session="pair-1"))
    on_right = merged(run_side(built, "right", "The cat sat", "tiny-bart", session="pair-1"))
    expected_left, _ = generate_text(load_tiny("tiny-llama"), "The cat sat", GenerationSettings(max_new_tokens=6))
    expected_right, _ = generate_text(load_tiny("tiny-bart"), "The cat sat", GenerationSettings(max_new_tokens=6))
    assert on_left[left.output] == expected_left and on_right[right.output] == expected_right
    assert "AutoModelForCausalLM" in on_left[left.card] and "tiny-llama" in on_left[left.card]
    assert "AutoModelForSeq2SeqLM" in on_right[right.card]
    assert on_left[left.record]["prompt_view"]["used_chat_template"] is True, "a causal model on the left gets its template"
    assert "Encoder input" in on_right[right.tokens]


def test_the_class_answer_follows_the_model_not_the_panel(page):
    built, _runner = page
    left_causal = show_selection(built, "left", "tiny-gpt2", "")["class"]
    right_seq2seq = show_selection(built, "right", "tiny-t5", "")["class"]
    assert "Decoder-only (causal)" in left_causal and "GPT2LMHeadModel" in left_causal
    assert "Encoder-decoder (seq2seq)" in right_seq2seq and "T5ForConditionalGeneration" in right_seq2seq


def test_the_same_model_on_both_sides_in_two_precisions(page):
    built, runner = page
    left, right = built.panels["left"], built.panels["right"]
    a = merged(run_side(built, "left", "Hello", "tiny-gpt2", session="pair-2", precision="float32"))
    b = merged(run_side(built, "right", "Hello", "tiny-gpt2", session="pair-2", precision="bfloat16"))
    assert a[left.record]["stats"]["precision"] == "float32" and b[right.record]["stats"]["precision"] == "bfloat16"
    assert "precision **float32**" in a[left.card] and "precision **bfloat16**" in b[right.card]
    assert "ran in float32" in a[left.stats] and "ran in bfloat16" in b[right.stats]
    assert runner.engines["transformers"].cache.peek("tiny-gpt2", "float32") is not runner.engines["transformers"].cache.peek("tiny-gpt2", "bfloat16")
    comparison = build_comparison(a[left.record], b[right.record], rating="right")
    assert set(comparison["sides"]) == {"left", "right"} and comparison["rating_label"] == "Right better"
    md = to_markdown(comparison)
    assert "## Left: tiny-gpt2" in md and "## Right: tiny-gpt2" in md and "seq2seq" not in md.split("## Prompt")[0]


def test_pairing_examples_pick_models_and_precisions(page):
    built, runner = page
    controls, panels = built.controls, built.panels
    from web.page import example_handler

    titles = {example.title: example for example in EXAMPLES}
    assert {"FLAN-T5 float32 vs 8-bit", "SmolLM2 float32 vs bfloat16"} <= set(titles)
    for title, kind, precisions in (("FLAN-T5 float32 vs 8-bit", Kind.SEQ2SEQ, ("float32", "8-bit")),
                                    ("SmolLM2 float32 vs bfloat16", Kind.CAUSAL, ("float32", "bfloat16"))):
        updates = example_handler(runner, titles[title], controls, panels)(3)
        model = runner.default_model(kind)
        assert updates[panels["left"].model] == updates[panels["right"].model] == model, "the same model on both sides"
        assert (updates[panels["left"].precision], updates[panels["right"].precision]) == precisions
        assert all(Precision(p) for p in precisions)
        assert updates[controls.run_token] == 4, "it starts the run"
        assert f"left: {model} in {precisions[0]}" in updates[controls.how]
    plain = example_handler(runner, EXAMPLES[0], controls, panels)(0)
    assert panels["left"].model not in plain, "a plain example keeps the panels' models"
