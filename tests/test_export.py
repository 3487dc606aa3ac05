"""Export (JSON, Markdown), per-session history and rating: pure functions, then the app's handlers."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr
import pytest

from components.export import (FORMAT, FORMAT_VERSION, MAX_HISTORY, RATING_CHOICES, add_to_history, build_comparison,
                               export_form, file_stem, find_comparison, history_choices, to_json, to_markdown, with_rating,
                               write_exports)
from components.panel import CODE_EMPTY, TOKENS_EMPTY
from components.settings import SHARED_FIELDS
from models import GenerationSettings, Kind
from tests.apphelpers import built_page, merged, run_side
from tests.modelhelpers import generate_text

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def record(model: str, text: str, **extra) -> dict:
    """A side record shaped like the app's (``models.run.RunResult.to_dict``)."""
    return {"model": model, "prompt": "Hi there", "text": text, "prompt_as_seen": "<user>Hi there</user>",
            "description": {"name": model, "auto_class": "AutoModelForCausalLM", "resolved_class": "GPT2LMHeadModel",
                            "architecture": "decoder-only", "params_text": "45K", "dtype": "float32", "device": "cpu",
                            "quantization": "none", "origin": "local folder /x", "revision": "abc123"},
            "settings": GenerationSettings(max_new_tokens=7).to_dict(),
            "stats": {"input_tokens": 3, "output_tokens": 7, "time_to_first_token": 0.0123, "tokens_per_second": 88.5,
                      "total_seconds": 0.2, "finish_reason": "length", "error": None, "notices": ["a notice"]},
            "code": "print('hi')\n", **extra}


# ----- the comparison -----

def test_comparison_holds_both_sides_rating_and_time():
    c = build_comparison(record("tiny-t5", "Paris"), record("tiny-gpt2", "The capital"), rating="left", created=WHEN)
    assert c["format"] == FORMAT and c["version"] == FORMAT_VERSION
    assert c["created"] == "2026-01-02T03:04:05Z" and c["prompt"] == "Hi there", "the prompt comes from the records"
    assert c["rating"] == "left" and c["rating_label"] == "Left better"
    assert c["sides"]["left"]["text"] == "Paris" and c["sides"]["right"]["description"]["revision"] == "abc123"
    assert json.loads(to_json(c)) == export_form(c)
    assert build_comparison(None, None, prompt="p", rating="best")["rating"] is None, "unknown ratings are dropped"
    assert {value for _, value in RATING_CHOICES} == {"left", "right", "tie", "both_bad"}


def test_comparison_is_a_copy_of_the_records():
    left = record("a", "x")
    c = build_comparison(left, None)
    left["text"] = "changed"
    assert c["sides"]["left"]["text"] == "x"


def test_with_rating_changes_only_the_rating():
    c = build_comparison(record("a", "x"), record("b", "y"), created=WHEN)
    rated = with_rating(c, "tie")
    assert rated["rating"] == "tie" and rated["rating_label"] == "Tie" and c["rating"] is None
    assert {k: v for k, v in rated.items() if not k.startswith("rating")} == {k: v for k, v in c.items() if not k.startswith("rating")}
    assert rated["blind"] is False and rated["blind_rating"] is None, "not blind: the rating is not kept as a blind one"
    assert with_rating(rated, None)["rating_label"] == "not rated"


def test_markdown_has_everything_and_nothing_renders():
    hostile = "<img src=x onerror=alert(1)>"
    left = record("tiny-t5", "Paris ``` not a fence end", model_type="t5")
    right = record(hostile, f"{hostile} | pipe")
    right["description"] = dict(right["description"], origin=hostile)
    c = build_comparison(left, right, prompt=f"What?\n{hostile}", rating="right", created=WHEN)
    md = to_markdown(c)
    assert md.startswith("# One prompt, two models, side by side\n")
    assert "2026-01-02T03:04:05Z" in md and "Right better" in md
    assert "AutoModelForCausalLM → GPT2LMHeadModel" in md and "abc123" in md and "max_new_tokens=7" in md
    assert "first token 0.01 s · 88.5 tokens/s · 3 in → 7 out" in md and "finish: length" in md and "a notice" in md
    assert "````text\nParis ``` not a fence end\n````" in md, "a fence longer than any backtick run in the text"
    # Outside code fences, nothing is raw HTML; inside fences, text is shown literally by Markdown.
    outside = re.sub(r"(`{3,})[a-z]*\n.*?\n\1\n", "", md, flags=re.DOTALL)
    assert "<img" not in outside and "&lt;img" in outside
    assert md.count("<img") == 2, "the prompt and the output, each inside its fence"
    assert "## Right: &lt;img src=x onerror=alert(1)&gt;" in md
    assert "print('hi')" in md


def test_markdown_files_show_quotes_and_token_texts_as_they_are():
    """Escaping for the page (``&quot;``, ``&#x27;``) does not leak into files: quotes read as quotes, a token
    such as ``<pad>`` reads as itself in its code span, and still nothing outside code renders as HTML."""
    settings = dict(GenerationSettings(max_new_tokens=7).to_dict(), task_prefix="", stop="\"end\"")
    token = {"id": 0, "text": "<pad>", "prob": 0.5, "top": [{"id": 0, "text": "<pad>", "prob": 0.5},
                                                            {"id": 1, "text": "it's", "prob": 0.2}]}
    left = record("tiny-t5", "It's \"quoted\"", settings=settings)
    left["stats"] = dict(left["stats"], tokens=[token], notices=["the model's \"notice\" <b>"])
    md = to_markdown(build_comparison(left, record("tiny-gpt2", "x"), prompt="Hi there", created=WHEN))
    assert "&quot;" not in md and "&#x27;" not in md and "&amp;" not in md, md
    assert "task_prefix=''" in md and "stop='\"end\"'" in md
    assert "the model's \"notice\" &lt;b&gt;" in md, "quotes as they are, a tag as entities"
    assert "| 1 | `<pad>` | 50 % | `<pad>` 50 % · `it's` 20 % |" in md, "a code span shows a token literally"
    outside = re.sub(r"(`{3,})[a-z]*\n.*?\n\1\n", "", md, flags=re.DOTALL)
    assert "<b>" not in re.sub(r"`[^`\n]*`", "", outside)


def test_markdown_for_a_failed_or_missing_side():
    md = to_markdown(build_comparison({"error": "tiny-x could not be loaded <b>", "model": "tiny-x"}, None, prompt="p"))
    assert "⚠️ tiny-x could not be loaded &lt;b&gt;" in md and "_No result._" in md


def test_files_are_written_under_a_safe_name(tmp_path):
    c = build_comparison(record("a", "x"), record("b", "y"), created=WHEN, comparison_id="../../etc/passwd")
    assert file_stem(c) == "comparison-20260102-030405-etcpas"
    json_path, md_path = write_exports(c, tmp_path / "out")
    assert json_path.parent == md_path.parent == tmp_path / "out"
    assert json.loads(json_path.read_text(encoding="utf-8")) == export_form(c)
    assert md_path.read_text(encoding="utf-8") == to_markdown(c)
    again, _ = write_exports(with_rating(c, "tie"), tmp_path / "out")
    assert again == json_path and json.loads(again.read_text())["rating"] == "tie", "re-rating replaces the file"


# ----- history -----

def test_history_appends_replaces_in_place_and_is_bounded():
    a = build_comparison(record("a", "1"), record("b", "1"), created=WHEN)
    b = build_comparison(record("a", "2"), record("b", "2"), created=WHEN)
    history = add_to_history(add_to_history([], a), b)
    assert [c["id"] for c in history] == [a["id"], b["id"]]
    history = add_to_history(history, with_rating(a, "tie"))
    assert [c["id"] for c in history] == [a["id"], b["id"]] and history[0]["rating"] == "tie", "re-rating keeps the place"
    same_run = build_comparison(record("a", "2"), record("b", "2"))  # both sides reported the same run
    assert len(add_to_history(history, same_run)) == 2
    many: list = []
    for i in range(MAX_HISTORY + 5):
        many = add_to_history(many, build_comparison(record("a", str(i)), None))
    assert len(many) == MAX_HISTORY and many[-1]["sides"]["left"]["text"] == str(MAX_HISTORY + 4)
    assert find_comparison(history, b["id"])["id"] == b["id"] and find_comparison(history, "nope") is None
    assert find_comparison(None, "x") is None


def test_history_choices_are_newest_first_with_readable_labels():
    a = build_comparison(record("tiny-t5", "1"), record("tiny-gpt2", "1"), prompt="First prompt", created=WHEN)
    b = build_comparison(record("tiny-t5", "2"), record("tiny-gpt2", "2"), prompt="x" * 100, rating="tie", created=WHEN)
    choices = history_choices([a, b])
    assert [value for _, value in choices] == [b["id"], a["id"]]
    assert choices[1][0] == "#1 · 03:04:05 · First prompt · tiny-t5 vs tiny-gpt2"
    assert choices[0][0].startswith("#2 · 03:04:05 · " + "x" * 39 + "…") and choices[0][0].endswith("· Tie")
    assert history_choices(None) == []
    failed = build_comparison({"model": "google/flan-t5-small", "error": "needs the hub"}, record("tiny-gpt2", "3"),
                              prompt="Hi", created=WHEN)
    lone = build_comparison(None, record("tiny-gpt2", "4"), prompt="Hi", created=WHEN)
    assert history_choices([failed])[0][0].endswith("· google/flan-t5-small (failed) vs tiny-gpt2"), \
        "a side that gave no answer is not named as if it had"
    assert history_choices([lone])[0][0].endswith("· (no answer) vs tiny-gpt2")


# ----- in the app -----

@pytest.fixture(scope="module")
def page(registry, cache):
    return built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")


def run(page, kind: Kind, prompt_text: str, model: str) -> dict:
    """Run one side's real handler to the end; every component's last value."""
    return merged(run_side(page[0], kind, prompt_text, model, session="export-test"))


def file_of(update) -> Path:
    """The file a gr.DownloadButton update points at."""
    value = update.value
    return Path(value["path"] if isinstance(value, dict) else value)


def test_page_has_rate_and_share_components(page):
    built, _runner = page
    ids = {b.elem_id for b in built.demo.blocks.values() if getattr(b, "elem_id", None)}
    assert {"rating", "history", "export-json", "export-md"} <= ids


def test_a_run_becomes_a_comparison_that_can_be_rated_downloaded_and_reopened(page, load_tiny):
    built, _runner = page
    handlers, share = built.share_handlers, built.share
    left, right = built.panels[Kind.SEQ2SEQ], built.panels[Kind.CAUSAL]
    prompt_text = "What is <b>the</b> capital of France?"
    seq, causal = run(page, Kind.SEQ2SEQ, prompt_text, "tiny-t5"), run(page, Kind.CAUSAL, prompt_text, "tiny-gpt2")
    expected, _ = generate_text(load_tiny("tiny-gpt2"), prompt_text, GenerationSettings(max_new_tokens=6))
    assert causal[right.output] == expected and causal[right.record]["text"] == expected

    done = handlers.side_done
    start = handlers.run_start()
    assert start[left.record] is None and start[right.record] is None and start[share.rating] is None
    assert start[share.download_json].interactive is False, "nothing to download while a run is going"
    assert done({left.record: seq[left.record], right.record: None, share.comparisons: [], share.rating: None}) == gr.skip(), \
        "waits for the other side"
    out = done({left.record: seq[left.record], right.record: causal[right.record], share.comparisons: [], share.rating: None})
    history = out[share.comparisons]
    assert len(history) == 1 and history[0]["rating"] is None
    assert out[share.history].value == history[0]["id"] and len(out[share.history].choices) == 1
    exported = json.loads(file_of(out[share.download_json]).read_text(encoding="utf-8"))
    assert exported["prompt"] == prompt_text and exported["sides"]["right"]["text"] == expected
    assert exported["sides"]["left"]["description"]["resolved_class"] == "T5ForConditionalGeneration"
    assert exported["sides"]["right"]["stats"]["output_tokens"] == 6 and exported["created"].endswith("Z")
    assert "AutoModelForCausalLM" in exported["sides"]["right"]["code"]
    assert exported["sides"]["left"]["model_input"] == {"before": "", "after": ""}, "what the model read, around the prompt"
    assert json.dumps(exported).count(json.dumps(prompt_text)[1:-1]) == 1, "the file holds the prompt once"
    markdown = file_of(out[share.download_md]).read_text(encoding="utf-8")
    assert expected in markdown and f"## Prompt\n\n```text\n{prompt_text}\n```" in markdown, "the prompt fenced, verbatim"

    rated = handlers.rate({share.rating: "right", share.history: history[0]["id"], share.comparisons: history})
    history = rated[share.comparisons]
    assert history[0]["rating"] == "right"
    assert json.loads(file_of(rated[share.download_json]).read_text())["rating_label"] == "Right better"
    assert rated[share.history].choices[0][0].endswith("Right better")

    # A second run, then reopen the first one.
    causal2 = run(page, Kind.CAUSAL, "Another prompt", "tiny-gpt2")
    seq2 = run(page, Kind.SEQ2SEQ, "Another prompt", "tiny-t5")
    second = {left.record: seq2[left.record], right.record: causal2[right.record], share.comparisons: history, share.rating: "left"}
    history = done(second)[share.comparisons]
    assert len(history) == 2 and history[1]["rating"] == "left", "a rating given during the run is kept"
    prompt_box = built.controls.prompt
    reopen = handlers.reopen
    restored = reopen({share.history: history[0]["id"], share.comparisons: history})
    assert restored[prompt_box] == prompt_text and restored[share.rating] == "right"
    assert restored[right.output] == expected and restored[left.output] == seq[left.output]
    assert "6 out" in restored[right.stats] and "Chat" not in restored[left.tokens] and "Encoder input" in restored[left.tokens]
    assert restored[right.code] == causal[right.code]
    assert reopen({share.history: "missing", share.comparisons: history}) == gr.skip()


def test_reopening_puts_each_panels_model_precision_and_settings_back(page):
    """Reopen, then Run both, repeats the past run: the selectors and settings are what that run used."""
    built, _runner = page
    handlers, share = built.share_handlers, built.share
    left, right = built.panels[Kind.SEQ2SEQ], built.panels[Kind.CAUSAL]
    seq, causal = run(page, Kind.SEQ2SEQ, "Hi", "tiny-t5"), run(page, Kind.CAUSAL, "Hi", "tiny-gpt2")
    typed = {**causal[right.record], "model": "someone/not-in-the-list",
             "settings": {**causal[right.record]["settings"], "temperature": 0.7, "seed": 42, "use_chat_template": False}}
    history = handlers.side_done({left.record: seq[left.record], right.record: typed, share.comparisons: [],
                                  share.rating: None})[share.comparisons]
    restored = handlers.reopen({share.history: history[0]["id"], share.comparisons: history})
    assert restored[left.model] == "tiny-t5" and restored[left.custom] == ""
    assert right.model not in restored and restored[right.custom] == "someone/not-in-the-list", "a typed id goes back in its box"
    assert restored[left.precision] == seq[left.record]["stats"]["precision"]
    values = dict(zip(SHARED_FIELDS, right.settings.components()))
    assert restored[values["temperature"]] == 0.7 and restored[values["seed"]] == 42
    assert restored[values["max_new_tokens"]] == 6 and restored[right.chat_template] is False
    assert restored[built.controls.link] is False, "the sides ran with different settings: each gets its own back"
    assert set(restored) <= handlers.reopen_outputs(), "every update goes to a declared output"
    same = handlers.reopen({share.history: history[0]["id"],
                            share.comparisons: [{**history[0], "sides": {"left": seq[left.record], "right": causal[right.record]}}]})
    assert built.controls.link not in same, "equal settings leave the box as it is"


def test_clear_blanks_answers_token_views_and_code_and_keeps_the_history(page):
    built, _runner = page
    left, right = built.panels["left"], built.panels["right"]
    ran = run(page, Kind.SEQ2SEQ, "Hi", "tiny-t5")
    assert ran[left.code] != CODE_EMPTY and ran[left.tokens] != TOKENS_EMPTY
    clear = next(f for f in built.demo.fns.values() if (built.controls.clear._id, "click") in f.targets)
    updates = clear.fn()
    assert set(updates) == set(clear.outputs), "the registered event declares every component it clears"
    assert updates[built.controls.prompt] == "" and updates[left.output] == "" and updates[right.stats] == ""
    assert updates[left.tokens] == TOKENS_EMPTY and updates[right.code] == CODE_EMPTY
    assert built.share.comparisons not in updates and left.model not in updates, "history and choices stay"


def test_refused_runs_do_not_fill_the_history(page):
    built, _runner = page
    handlers, share = built.share_handlers, built.share
    left, right = built.panels[Kind.SEQ2SEQ], built.panels[Kind.CAUSAL]
    seq, causal = run(page, Kind.SEQ2SEQ, "   ", "tiny-t5"), run(page, Kind.CAUSAL, "   ", "tiny-gpt2")
    assert "prompt" in seq[left.record]["error"], "an empty prompt still gives the side a record"
    done = handlers.side_done
    assert done({left.record: seq[left.record], right.record: causal[right.record], share.comparisons: [],
                 share.rating: None}) == gr.skip()
    assert handlers.rate({share.rating: "tie", share.history: None, share.comparisons: [], share.blind_run: None,
                          left.record: seq[left.record], right.record: causal[right.record]}) == gr.skip()
