"""Blind mode: the sides are shuffled and nothing naming a model reaches the page until the visitor rates;
the first rating reveals the models and is kept, marked blind, in the export."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest

from components.export import hidden, history_choices, to_markdown
from models import GenerationSettings
from tests.apphelpers import SETTINGS_VALUES, built_page, merged
from tests.modelhelpers import generate_text

PROMPT = "Name a colour."
CHOICES = {"left": ("tiny-t5", "float32"), "right": ("tiny-gpt2", "bfloat16")}


@pytest.fixture()
def page(registry, cache):
    built, runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    return built


def page_data(page, assignment: dict | None) -> dict[Any, Any]:
    """What the page sends to a side's run handler: the prompt, both panels' choices, the blind assignment."""
    controls, share = page.controls, page.share
    data: dict[Any, Any] = {controls.prompt: PROMPT, controls.link: True, share.blind_run: assignment}
    for side, (model, precision) in CHOICES.items():
        panel = page.panels[side]
        data.update({panel.model: model, panel.custom: "", panel.precision: precision, panel.task_prefix: "",
                     panel.chat_template: True, **dict(zip(panel.settings.components(), SETTINGS_VALUES))})
    return data


def run_blind(page, swapped: bool) -> tuple[dict, dict, list[dict]]:
    """Start a blind run (the coin forced to ``swapped``), run both sides; (start updates, assignment, every side update)."""
    share = page.share_handlers
    share.blind.choose = lambda: swapped
    start = share.run_start({page.controls.blind: True})
    assignment = start[page.share.blind_run]
    data = page_data(page, assignment)
    updates = [u for side in ("left", "right")
               for u in page.handlers.run[side](data, types.SimpleNamespace(session_hash="blind-test"))]
    return start, assignment, updates


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings(v)]
    return [s for v in vars(value).values() for s in strings(v)] if hasattr(value, "__dict__") else []


def file_of(update) -> Path:
    value = update.value
    return Path(value["path"] if isinstance(value, dict) else value)


@pytest.mark.parametrize("swapped", [True, False])
def test_a_blind_run_hides_the_models_until_the_first_rating_then_reveals_them(page, load_tiny, swapped):
    left, right, share = page.panels["left"], page.panels["right"], page.share
    start, assignment, updates = run_blind(page, swapped)
    assert {k: assignment[k] for k in ("blind", "swapped")} == {"blind": True, "swapped": swapped} and assignment["run"]
    assert start[left.identity].visible is False and start[right.details].visible is False
    assert "hidden" in start[left.heading]

    # nothing shown on the page names a model or a precision; the records (server-side state) keep everything
    shown = [s for update in updates for component, value in update.items() if component not in (left.record, right.record)
             for s in strings(value)]
    assert not any(component in update for update in updates for component in (left.card, right.card, left.code,
                                                                                right.code, left.tokens, right.tokens))
    for name in ("tiny-t5", "tiny-gpt2", "T5ForConditionalGeneration", "GPT2", "float32", "bfloat16"):
        assert not any(name in s for s in shown), f"{name} reached the page in blind mode"
    final = merged(updates)
    ran = {"left": CHOICES["right" if swapped else "left"], "right": CHOICES["left" if swapped else "right"]}
    for panel in (left, right):
        model, precision = ran[panel.side]
        expected, _ = generate_text(load_tiny(model, precision=precision), PROMPT, GenerationSettings(max_new_tokens=6))
        assert final[panel.output] == expected, f"{panel.side} ran {model} in {precision}"
        assert final[panel.record]["model"] == model and final[panel.record]["stats"]["precision"] == precision

    handlers = page.share_handlers
    done = handlers.side_done({left.record: final[left.record], right.record: final[right.record], share.comparisons: [],
                               share.rating: None, share.blind_run: assignment})
    comparison = done[share.comparisons][0]
    assert comparison["blind"] is True and comparison["swapped"] is swapped and hidden(comparison)
    assert done[share.download_json].interactive is False, "no file to download while the names are hidden"
    assert "models hidden until rated" in history_choices(done[share.comparisons])[0][0]

    rated = handlers.rate({share.rating: "left", share.history: comparison["id"], share.comparisons: done[share.comparisons]})
    assert rated[left.identity].visible is True and rated[right.details].visible is True
    assert ran["left"][0] in rated[left.heading] and ran["right"][0] in rated[right.card]
    assert f"**{ran['left'][0]}** in {ran['left'][1]}" in rated[share.reveal]
    assert ("had been shuffled" in rated[share.reveal]) is swapped
    assert f"ran in {ran['right'][1]}" in rated[right.stats]
    # after the reveal, each panel's selectors say what ran there (as its card and stats do): swapped, they change sides
    for panel in (left, right):
        model, precision = ran[panel.side]
        if swapped:
            assert rated[panel.model] == model and rated[panel.precision] == precision, panel.side
        else:  # not shuffled: the selectors already say it and stay as the visitor set them
            assert panel.model not in rated and panel.precision not in rated
    exported = json.loads(file_of(rated[share.download_json]).read_text(encoding="utf-8"))
    assert exported["blind"] is True and exported["blind_rating"] == "left" and exported["swapped"] is swapped
    assert exported["sides"]["left"]["model"] == ran["left"][0]
    assert "(given blind" in file_of(rated[share.download_md]).read_text(encoding="utf-8")

    again = handlers.rate({share.rating: "tie", share.history: comparison["id"], share.comparisons: rated[share.comparisons]})
    changed = again[share.comparisons][0]
    assert changed["rating"] == "tie" and changed["blind_rating"] == "left", "the blind rating is kept"
    assert share.reveal not in again, "revealed once"
    assert "first given blind: Left better, changed after the names were revealed" in to_markdown(changed)


def test_a_rating_given_during_a_blind_run_reveals_when_the_run_ends(page):
    left, right, share = page.panels["left"], page.panels["right"], page.share
    _start, assignment, updates = run_blind(page, True)
    final = merged(updates)
    done = page.share_handlers.side_done({left.record: final[left.record], right.record: final[right.record],
                                          share.comparisons: [], share.rating: "right", share.blind_run: assignment})
    assert done[share.comparisons][0]["blind_rating"] == "right" and "Revealed" in done[share.reveal]


def test_a_rating_given_before_the_comparison_is_saved_makes_it_and_reveals(page):
    """Rated in the moment between both answers ending and their comparison joining the history (seen under
    load in the browser): the rating makes the comparison itself, keeps it as the blind rating and reveals."""
    left, right, share = page.panels["left"], page.panels["right"], page.share
    _start, assignment, updates = run_blind(page, True)
    final = merged(updates)
    data = {left.record: final[left.record], right.record: final[right.record], share.comparisons: [],
            share.history: None, share.rating: "left", share.blind_run: assignment}
    rated = page.share_handlers.rate(data)
    assert rated[share.comparisons][0]["blind_rating"] == "left" and "Revealed" in rated[share.reveal]
    later = page.share_handlers.side_done({**data, share.comparisons: rated[share.comparisons]})
    assert [c["id"] for c in later[share.comparisons]] == [assignment["run"]], "the side's own step makes no second"


def test_an_unrated_blind_comparison_stays_hidden_when_reopened(page):
    left, right, share = page.panels["left"], page.panels["right"], page.share
    _start, assignment, updates = run_blind(page, True)
    final = merged(updates)
    done = page.share_handlers.side_done({left.record: final[left.record], right.record: final[right.record],
                                          share.comparisons: [], share.rating: None, share.blind_run: assignment})
    history = done[share.comparisons]
    restored = page.share_handlers.reopen({share.history: history[0]["id"], share.comparisons: history})
    assert restored[left.identity].visible is False and "Hidden until you rate" in restored[left.code]
    assert "tiny-" not in restored[left.tokens] + restored[right.code] and "bfloat16" not in restored[left.stats]


def test_unticking_blind_shows_the_panels_and_a_plain_run_is_not_blind(page):
    handlers, share, left = page.share_handlers, page.share, page.panels["left"]
    shown = handlers.blind.toggled(False)
    assert shown[left.identity].visible is True and shown[share.reveal] == ""
    start = handlers.run_start({page.controls.blind: False})
    assert start[share.blind_run]["blind"] is False and start[share.blind_run]["swapped"] is False
    assert left.identity not in start
    assert handlers.run_start()[share.blind_run]["blind"] is False, "no box value: not blind"
