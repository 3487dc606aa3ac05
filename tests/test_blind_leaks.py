"""Blind mode leaks nothing before the vote: 20 blind comparisons of two different models (tiny T5 in float32
against tiny Llama in bfloat16, long prompts cut to the input budget, each side with its own max_new_tokens),
the sides swapped by a shuffled fair coin; everything the page's real handlers send to the browser before the
vote, the answer texts left out, must be the same on both sides and the same whether or not the sides were
swapped, so that a predictor guesses the swap no better than chance. After the vote the figures appear.
"""

from __future__ import annotations

import json
import random
import re
import threading
import types
from dataclasses import fields
from typing import Any

import pytest

from models import ModelCache
from models.settings import PublicLimits
from tests.apphelpers import SETTINGS_VALUES, built_page, case, merged, set_figures
from web.handlers import BLIND_LOADING
from web.page import side_ended

RUNS = 20
PROMPT = ("Summarize: the quick brown fox jumps over the lazy dog near the river bank, and then it runs far away "
          "into the green hills where nobody can find it again.")
CHOICES = {"left": ("tiny-t5", "float32", 5), "right": ("tiny-llama", "bfloat16", 8)}  # model, precision, max_new_tokens
SECTION = "public: blind-mode prediction rate"
CLOCK = re.compile(r"\b\d\d:\d\d:\d\d\b")


@pytest.fixture()
def page(registry, cache):
    built, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-llama",
                                limits=PublicLimits(max_new_tokens=64, max_input_tokens=16))  # both prompts get cut
    return built


def page_data(page, assignment: dict) -> dict[Any, Any]:
    """What the page sends to a side's handler: the prompt, both panels' choices and own settings (not shared)."""
    data: dict[Any, Any] = {page.controls.prompt: PROMPT, page.controls.link: False, page.share.blind_run: assignment}
    for side, (model, precision, max_new) in CHOICES.items():
        panel = page.panels[side]
        data.update({panel.model: model, panel.custom: "", panel.precision: precision, panel.task_prefix: "",
                     panel.chat_template: True,
                     **dict(zip(panel.settings.components(), (max_new, *SETTINGS_VALUES[1:])))})
    return data


def roles(page) -> dict[int, tuple[str, str]]:
    """Every component of the page by id: (side or "page", field name)."""
    named: dict[int, tuple[str, str]] = {}
    for side, panel in page.panels.items():
        for f in fields(panel):
            named[id(getattr(panel, f.name))] = (side, f.name)
        for name, component in zip(("settings",) * 99, panel.settings.components()):
            named[id(component)] = (side, name)
    for group in (page.share, page.vote, page.controls):
        for name, value in vars(group).items():
            named.setdefault(id(value), ("page", name))
    return named


def payload(value: Any) -> str:
    """What the browser gets for one component's update, as text (a component returned as an update: the
    arguments it was built with)."""
    args = getattr(value, "constructor_args", None)
    if isinstance(args, dict):
        value = args
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr)


def blind_run(page, swapped: bool) -> tuple[list[tuple[str, str, str]], dict[str, dict], dict]:
    """One blind comparison through the page's handlers, both sides at once as the page runs them. Returns what
    the browser receives before the vote, answer texts, server-side state and answer-derived lines left out
    (``(side, field, payload)`` in the order sent, the side's own title taken out), the records, the final updates."""
    handlers, share, named = page.share_handlers, page.share, roles(page)
    handlers.blind.choose = lambda: swapped
    start = handlers.run_start({page.controls.blind: True})
    assignment = start[share.blind_run]
    data = page_data(page, assignment)
    request = types.SimpleNamespace(session_hash=f"leaks-{assignment['run']}")
    sent: dict[str, list[dict]] = {"left": [], "right": []}
    threads = [threading.Thread(target=lambda s=side: sent[s].extend(page.handlers.run[s](data, request)))
               for side in sent]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    final = {side: merged(updates) for side, updates in sent.items()}
    records = {side: final[side][page.panels[side].record] for side in sent}
    ending = {page.panels["left"].record: records["left"], page.panels["right"].record: records["right"],
              share.comparisons: [], share.rating: None, share.blind_run: assignment}
    if handlers.evidence is not None:
        ending.update({component: None for component in handlers.evidence.inputs()})  # the task
    ended = side_ended(handlers, page.controls.run)(ending, request)
    server_side = {"record", "comparisons", "blind_run", "run_token"}
    answer = {"output", "parting"}  # the answers themselves, and where they part (made of their words only)
    received: list[tuple[str, str, str]] = []
    for update in [start, *sent["left"], *sent["right"], ended]:
        for component, value in update.items():
            side, name = named.get(id(component), ("page", "?"))
            if name in server_side or name in answer:
                continue
            # the run's id and the history's clock differ in every run, whichever side ran what
            text = CLOCK.sub("<clock>", payload(value).replace(assignment["run"], "<run>"))
            if side != "page":
                text = text.replace(side.capitalize(), "<side>")  # the panel's own title, which never moves
            received.append((side, name, text))
    return received, records, {**ended, "assignment": assignment}


def per_side(received: list[tuple[str, str, str]], side: str) -> list[tuple[str, str]]:
    """One side's payloads in the order sent, a repeat of the same payload to the same component dropped."""
    out: list[tuple[str, str]] = []
    last: dict[str, str] = {}
    for s, name, text in received:
        if s == side and last.get(name) != text:
            out.append((name, text))
            last[name] = text
    return out


def words(received: list[tuple[str, str, str]]) -> set[str]:
    """The predictor's features: every word of every payload, with where it went."""
    return {f"{side}:{name}:{word}" for side, name, text in received for word in text.replace("·", " ").split()}


def nearest_neighbour(features: list[set[str]], swaps: list[bool]) -> int:
    """Leave-one-out 1-nearest-neighbour (Jaccard distance) on ``features``: how many swaps it guesses right.
    When the nearest runs disagree it guesses "not swapped" (the coin's other face is as likely)."""
    right = 0
    for i, mine in enumerate(features):
        distance = {j: 1 - len(mine & other) / max(1, len(mine | other)) for j, other in enumerate(features) if j != i}
        best = min(distance.values())
        votes = {swaps[j] for j, d in distance.items() if d == best}
        right += (votes.pop() if len(votes) == 1 else False) == swaps[i]
    return right


def test_nothing_sent_before_the_vote_tells_which_model_ran_where(page):
    swaps = [True] * (RUNS // 2) + [False] * (RUNS // 2)
    random.Random(24).shuffle(swaps)
    features, signatures, identical = [], set(), 0
    for number, swapped in enumerate(swaps):
        with case(SECTION):
            received, records, done = blind_run(page, swapped)
            ran = {"left": CHOICES["right" if swapped else "left"], "right": CHOICES["left" if swapped else "right"]}
            for side, record in records.items():
                assert record["model"] == ran[side][0] and record["stats"]["precision"] == ran[side][1], side
                # the settings stay with the panel: a side's own max_new_tokens does not travel with its model
                assert record["settings"]["max_new_tokens"] == CHOICES[side][2], side
                assert record["stats"]["notices"], "the prompt was cut to the input budget"
            left, right = per_side(received, "left"), per_side(received, "right")
            assert left == right, f"run {number}: the two sides got different payloads before the vote"
            identical += 1
            shown = " ".join(text for _s, _n, text in received)
            for leak in ("tiny-t5", "tiny-llama", "float32", "bfloat16", " in → ", "tokens/s", "cut", "length", "eos",
                         "loading tiny"):
                assert leak not in shown, f"{leak!r} reached the page before the vote"
            features.append(words(received))
            signatures.add(tuple(left))
            if number == RUNS - 1:  # the vote: the figures appear, each on the panel it ran on
                share = page.share
                rated = page.share_handlers.rate({share.rating: "left", share.history: done["assignment"]["run"],
                                                  share.comparisons: done[share.comparisons]})
                for side, (model, precision, _max_new) in ran.items():
                    stats = rated[page.panels[side].stats]
                    assert " in → " in stats and f"ran in {precision}" in stats and "cut" in stats, stats
                    assert model in rated[page.panels[side].heading]
    correct = nearest_neighbour(features, swaps)
    set_figures(SECTION, runs=RUNS, swapped=sum(swaps), predicted_right=correct, chance=RUNS // 2,
                sides_identical=identical, distinct_signatures=len(signatures))
    assert len(signatures) == 1, "what one side receives varies between runs"
    assert correct <= 14, f"a 1-nearest-neighbour predictor guessed {correct}/{RUNS} swaps"


@pytest.mark.parametrize("blind", [True, False])
def test_a_blind_side_loads_the_other_sides_model_before_it_starts(registry, blind):
    """Each blind side loads both models before it starts (so both say the same while loading); a plain run
    loads only its own."""
    fresh = ModelCache(4)
    built, _runner = built_page(registry, fresh, seq2seq="tiny-t5", causal="tiny-llama")
    built.share_handlers.blind.choose = lambda: False
    assignment = built.share_handlers.run_start({built.controls.blind: blind})[built.share.blind_run]
    updates = list(built.handlers.run["left"](page_data(built, assignment), types.SimpleNamespace(session_hash="one-side")))
    assert merged(updates)[built.panels["left"].record]["model"] == "tiny-t5"
    assert fresh.peek("tiny-t5", "float32") is not None
    assert (fresh.peek("tiny-llama", "bfloat16") is not None) is blind
    loading = [u for u in updates if u.get(built.panels["left"].stats) == BLIND_LOADING]
    assert len(loading) == (1 if blind else 0), "the loading line once, with no timer"
