"""Run both pressed while a run is going: the new run replaces the old one (stopped, nothing more of it on the page,
never paired with the new one), the panels are cleared at once, and the Run button says a run is going until both
sides end. The handlers are called as the page calls them, on the tiny models; the browser side is in
``tests/test_browser_runs.py``."""

from __future__ import annotations

import threading
import types
from typing import Any

import gradio as gr
import pytest

from tests.apphelpers import SETTINGS_VALUES, built_page, merged
from web.handlers import RESTARTING, RUN_BUSY, RUN_IDLE, STARTING, run_button_after

PROMPT = "Name three colours."
MODELS = {"left": "tiny-t5", "right": "tiny-gpt2"}
SESSION = "restart-test"


@pytest.fixture()
def page(registry, cache):
    built, runner = built_page(registry, cache, seq2seq=MODELS["left"], causal=MODELS["right"])
    built.runner = runner  # (a test tracks a prompt set of its own beside the page's runs)
    return built


def page_data(page, assignment: dict[str, Any], prompt: str = PROMPT) -> dict[Any, Any]:
    """What the page sends to a side's run handler."""
    data: dict[Any, Any] = {page.controls.prompt: prompt, page.controls.link: True, page.share.blind_run: assignment}
    for side, model in MODELS.items():
        panel = page.panels[side]
        data.update({panel.model: model, panel.custom: "", panel.precision: "auto", panel.task_prefix: "",
                     panel.chat_template: True, **dict(zip(panel.settings.components(), SETTINGS_VALUES))})
    return data


class OtherRun:
    """A run of another kind (a prompt set's place) tracked for the same session: what the runner's Stop stops."""

    session = SESSION

    def __init__(self) -> None:
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()


def request() -> Any:
    return types.SimpleNamespace(session_hash=SESSION)


def test_a_run_starts_by_clearing_both_panels_and_its_first_update_clears_its_panel(page):
    start = page.handlers.run_start(request())  # nothing running: nothing to stop
    for panel in page.panels.values():
        assert start[panel.output] == "" and start[panel.stats] == STARTING and start[panel.confidence] == ""
    assert start[page.controls.run].value == RUN_BUSY
    assignment = page.share_handlers.run_start()[page.share.blind_run]
    left = page.panels["left"]
    first = next(iter(page.handlers.run["left"](page_data(page, assignment), request())))
    assert first == {left.output: "", left.stats: STARTING, left.confidence: ""}, "the first update clears the panel"


def test_run_both_during_a_run_replaces_it_and_leaves_a_prompt_set_running(page):
    runner, left = page.handlers.run["left"], page.panels["left"]
    old = page.share_handlers.run_start()[page.share.blind_run]
    updates = iter(runner(page_data(page, old, "an old prompt"), request()))
    seen = [next(updates) for _ in range(3)]  # cleared, then the run's first events (it is going)
    prompt_set = OtherRun()
    runs = page.runner
    runs.track(prompt_set, True)
    try:
        start = page.handlers.run_start(request())
        assert all(start[panel.stats] == RESTARTING for panel in page.panels.values())
        rest = list(updates)  # the replaced run ends at once, with its panel cleared
        assert rest == [{left.output: "", left.stats: STARTING, left.confidence: ""}], rest
        assert not prompt_set.stop_event.is_set(), "a prompt set of the same session runs on"
        assert left.record not in merged(seen + rest), "a replaced run leaves no record"
    finally:
        runs.track(prompt_set, False)


def test_only_the_two_records_of_one_run_are_paired_and_the_run_button_waits_for_both(page):
    share, handlers = page.share, page.share_handlers
    left, right = page.panels["left"], page.panels["right"]
    first = handlers.run_start()[share.blind_run]
    second = handlers.run_start()[share.blind_run]
    assert first["run"] != second["run"]
    records = {run["run"]: {side: merged(list(page.handlers.run[side](page_data(page, run), request())))[page.panels[side].record]
                            for side in MODELS} for run in (first, second)}
    assert all(r["run"] == run for run, pair in records.items() for r in pair.values())

    def done(left_record, right_record, current):
        data = {left.record: left_record, right.record: right_record, share.comparisons: [], share.rating: None,
                share.blind_run: current}
        return handlers.side_done(data), run_button_after([left_record, right_record], current, page.controls.run)

    # the first run's left ended after the second began; the second run's right is done: not a pair
    old_new = done(records[first["run"]]["left"], records[second["run"]]["right"], second)
    assert old_new == (gr.skip(), gr.skip()), "records of two runs were paired"
    comparison, button = done(records[second["run"]]["left"], records[second["run"]]["right"], second)
    assert button[page.controls.run].value == RUN_IDLE
    history = comparison[share.comparisons]
    twice, _ = done(records[second["run"]]["left"], records[second["run"]]["right"], second)
    assert twice[share.comparisons][0]["id"] == history[0]["id"] == second["run"], \
        "both sides' steps seeing both records make one comparison (one id), not two"
    assert len(history) == 1 and all("run" not in side for side in history[0]["sides"].values()), \
        "the run's id is the page's, not the export's"
    refused = {side: {"error": "prompt: is empty", "run": second["run"]} for side in MODELS}
    assert done(refused["left"], refused["right"], second)[1][page.controls.run].value == RUN_IDLE, \
        "two refused sides end the run too"
