"""How the prompt enters the model (token view) and the class question, from models/ to the page."""

from __future__ import annotations


import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from components.render import class_markdown, prompt_view_html
from models import GenerationSettings, Kind, prepare
from models import explain
from models.explain import ROLES, class_report, class_report_for_config, prompt_view
from tests.apphelpers import built_page, run_side, show_selection
from tests.modelhelpers import prepared_for

PROMPT = "What is the capital of France?"


def view_of(load_tiny, name: str, prompt: str = PROMPT, **settings):
    loaded = load_tiny(name)
    s = GenerationSettings(**settings)
    return loaded, s, prompt_view(loaded, prepared_for(loaded, prompt, s), s, prompt)


def assert_matches_prepare(loaded, settings, prompt, view):
    """The view shows exactly the ids generation feeds the model, each tagged with a known role."""
    prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, settings)
    assert [t.id for t in view.tokens] == prepared.input_ids
    assert {t.role for t in view.tokens} <= set(ROLES)
    assert view.max_new_tokens == prepared.max_new_tokens and view.notices == prepared.notices


# ----- causal -----

def test_chat_template_tokens_are_tagged_and_counted(load_tiny):
    loaded, s, view = view_of(load_tiny, "tiny-llama")
    assert_matches_prepare(loaded, s, PROMPT, view)
    assert view.kind == "causal" and view.used_chat_template and view.decoder == []
    assert view.wrapper == "<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n"
    assert view.tokens[0].token == "<|im_start|>" and view.tokens[0].role == "template"
    assert view.tokens[-1].role == "template", "the template ends where the assistant's answer starts"
    assert "".join(t.text for t in view.tokens if t.role == "prompt") == PROMPT
    assert view.added_by_template == sum(t.role == "template" for t in view.tokens) > 5
    assert view.added_by_template + view.prompt_tokens + view.special_tokens == len(view.tokens)

    html = prompt_view_html(view.to_dict())
    assert f"Chat template added <b>{view.added_by_template} tokens</b>" in html
    assert "&lt;|im_start|&gt;user↵…&lt;|im_end|&gt;" in html
    assert f"these {len(view.tokens)} tokens" in html


def test_template_switched_off_continues_the_plain_prompt(load_tiny):
    loaded, s, view = view_of(load_tiny, "tiny-llama", use_chat_template=False)
    assert_matches_prepare(loaded, s, PROMPT, view)
    assert not view.used_chat_template and view.has_chat_template and view.wrapper is None
    assert [t.role for t in view.tokens][:2] == ["added", "prompt"], "the tokenizer's own <s>, then the prompt"
    assert view.added_by_template == 0
    assert "switched off" in prompt_view_html(view.to_dict())


def test_model_without_template_continues_the_text(load_tiny):
    loaded, s, view = view_of(load_tiny, "tiny-gpt2")
    assert_matches_prepare(loaded, s, PROMPT, view)
    assert not view.has_chat_template and {t.role for t in view.tokens} == {"prompt"}
    assert "".join(t.text for t in view.tokens) == PROMPT
    assert "has no chat template" in prompt_view_html(view.to_dict())


# ----- seq2seq -----

def test_seq2seq_encoder_input_with_prefix_and_decoder_start(load_tiny):
    loaded, s, view = view_of(load_tiny, "tiny-t5", task_prefix="summarize: ")
    assert_matches_prepare(loaded, s, PROMPT, view)
    roles = [t.role for t in view.tokens]
    assert roles[0] == "prefix" and roles[-1] == "added" and view.tokens[-1].token == "</s>"
    assert roles.index("prompt") == view.added_by_prefix, "prefix tokens first, then the prompt"
    assert "".join(t.text for t in view.tokens if t.role == "prompt").strip() == PROMPT
    assert [(t.token, t.role) for t in view.decoder] == [("<pad>", "start")], "T5's decoder starts from <pad>"
    html = prompt_view_html(view.to_dict())
    assert f"Encoder input: {len(view.tokens)} tokens" in html and "from the task prefix" in html
    assert "Decoder starts from" in html and "&lt;pad&gt;" in html


def test_bart_decoder_starts_from_its_own_token(load_tiny):
    loaded, s, view = view_of(load_tiny, "tiny-bart")
    assert_matches_prepare(loaded, s, PROMPT, view)
    assert view.tokens[0].token == "<s>" and view.tokens[0].role == "added"
    assert [t.token for t in view.decoder] == ["</s>"]
    assert view.added_by_prefix == 0


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5", "tiny-llama"])
def test_truncated_prompt_shows_the_tokens_really_used(load_tiny, name):
    long_prompt = "the quick dog runs to the river and sees a bird " * 80  # > 512 tokens
    loaded, s, view = view_of(load_tiny, name, long_prompt, max_new_tokens=64)
    assert_matches_prepare(loaded, s, long_prompt, view)
    assert view.notices and "cut" in view.notices[0]
    assert "cut" in prompt_view_html(view.to_dict())


def test_untaggable_tokenizer_still_shows_the_real_ids(load_tiny, monkeypatch):
    monkeypatch.setattr(explain, "_tag", lambda *args, **kwargs: None)  # as for a slow tokenizer (no offsets)
    loaded, s, view = view_of(load_tiny, "tiny-llama")
    assert_matches_prepare(loaded, s, PROMPT, view)
    assert {t.role for t in view.tokens} <= {"text", "added"}


def test_prompt_view_html_is_inert():
    hostile = "<script>alert(1)</script>"
    view = {"kind": "causal", "used_chat_template": True, "has_chat_template": True, "added_by_template": 1,
            "wrapper": f"{hostile}…", "prompt_tokens": 1, "special_tokens": 0, "max_new_tokens": 5,
            "tokens": [{"id": 1, "token": hostile, "text": hostile, "role": "onclick=alert(1)"}],
            "notices": [hostile]}
    html = prompt_view_html(view)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "onclick" not in html, "an unknown role never reaches a class attribute"
    assert "<script>" not in prompt_view_html(None, error=hostile)


# ----- the class question -----

def test_seq2seq_model_is_refused_by_the_causal_auto_class(registry):
    report = class_report(registry.resolve("tiny-t5"))
    assert (report.auto_class, report.resolved_class) == ("AutoModelForSeq2SeqLM", "T5ForConditionalGeneration")
    assert report.other_auto_class == "AutoModelForCausalLM" and not report.other_accepts
    # transformers' own words, not a hard-coded sentence: the same refusal, first line.
    config = AutoConfig.from_pretrained(registry.resolve("tiny-t5").path)
    with pytest.raises(ValueError) as info, torch.device("meta"):
        AutoModelForCausalLM.from_config(config)
    assert report.other_result == str(info.value).splitlines()[0]
    assert "T5Config" in report.other_result


def test_causal_model_is_refused_by_the_seq2seq_auto_class(registry):
    report = class_report(registry.resolve("tiny-llama"))
    assert (report.kind, report.resolved_class, report.other_auto_class) == ("causal", "LlamaForCausalLM", "AutoModelForSeq2SeqLM")
    assert not report.other_accepts and "LlamaConfig" in report.other_result


def test_bart_is_accepted_by_both_auto_classes(registry):
    report = class_report(registry.resolve("tiny-bart"))
    assert report.resolved_class == "BartForConditionalGeneration"
    assert report.other_accepts and "BartForCausalLM" in report.other_result
    assert "only part of this model" in class_markdown(report.to_dict())


def test_class_markdown_explains_in_plain_words_and_escapes(registry):
    text = class_markdown(class_report(registry.resolve("tiny-gpt2")).to_dict())
    assert "`AutoModelForCausalLM`, which resolves to `GPT2LMHeadModel`" in text
    assert "transformers refuses" in text and "In plain words" in text and "lookup table" in text
    assert "<class" not in text and "&lt;class" in text, "the refusal quotes <class ...> escaped"
    hostile = class_report_for_config(AutoConfig.for_model("gpt2")).to_dict() | {"model_type": "<img src=x onerror=alert(1)>"}
    assert "<img" not in class_markdown(hostile)
    assert "<b>" not in class_markdown(error="<b>boom</b>")


# ----- in the app -----

@pytest.fixture(scope="module")
def page(registry, cache):
    return built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-llama")


def test_panels_have_the_explain_components(page):
    built, _runner = page
    ids = {b.elem_id for b in built.demo.blocks.values() if getattr(b, "elem_id", None)}
    for side in ("left", "right"):
        assert {f"{side}-class", f"{side}-arch", f"{side}-tokens", f"{side}-tokens-accordion",
                f"{side}-code", f"{side}-code-accordion"} <= ids


def test_class_info_handler_answers_for_the_selection(page):
    def class_info(name, custom):
        return show_selection(page[0], Kind.SEQ2SEQ, name, custom)["class"]

    assert "T5ForConditionalGeneration" in class_info("tiny-t5", "") and "refuses" in class_info("tiny-t5", "")
    assert "LlamaForCausalLM" in class_info("tiny-llama", None)
    assert "cannot be reached" in class_info("google/flan-t5-small", ""), "offline: a clear reason, no crash"
    assert "⚠️" in class_info(None, "")


def test_run_handler_yields_the_token_view_when_the_run_starts(page):
    built, _runner = page
    right = built.panels[Kind.CAUSAL]
    outputs = run_side(page[0], Kind.CAUSAL, PROMPT, "tiny-llama", session="explain")
    first_with_tokens = next(i for i, out in enumerate(outputs) if right.tokens in out)
    assert first_with_tokens < len(outputs) - 1, "the tokens are shown before the answer is complete"
    html = outputs[first_with_tokens][right.tokens]
    assert "Chat template added" in html and "&lt;|im_start|&gt;" in html
    assert "apply_chat_template" in outputs[first_with_tokens][right.code]
    record = outputs[-1][right.record]
    assert record["prompt"] == PROMPT and record["prompt_view"]["used_chat_template"] is True
    assert record["code"] == outputs[first_with_tokens][right.code]
