"""End-to-end in headless Chromium: Run both pressed while a run is going (the new prompt replaces the run),
the panels cleared at once when a run starts, and the blind reveal putting each panel's selectors to what ran there.

The restart tests use the canned engine (``tests/fakeengine.py``: each answer is the prompt's words reversed,
one word per step), so that which prompt a panel answered is known exactly; the blind test uses the tiny models.
"""

from __future__ import annotations

import re
import time
from typing import Iterator

import pytest
from playwright.sync_api import Page

from models import ModelCache, ModelRegistry
from tests.apphelpers import Served
from tests.fakeengine import ENGINE, CannedEngines, canned_answer
from tests import test_browser
from tests.test_browser import (CAUSAL, SEQ2SEQ, SIDES, app, broken_root, browser, finished, last_seen, models,
                                no_leftover_generation, output, page, recorded, start_recording, stats, type_and_run,
                                wait_both_finished, wait_for)
from web.config import AppConfig
from web.handlers import RUN_BUSY, RUN_IDLE
from web.page import build_page
from web.serving import build_runner, launch

pytestmark = test_browser.pytestmark  # skipped without Chromium
SHARED_FIXTURES = (app, broken_root, browser, models, no_leftover_generation, page)  # test_browser's, used here by name
CANNED = {"left": "canned-left", "right": "canned-right"}
WORDS = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen".split()
OLD = " ".join(f"{word}-{round}" for round in range(3) for word in WORDS)  # 48 words
NEW = "Name three colours."
STEP = 0.25  # seconds between two canned words: the old prompt's answer takes 12 s (it must outlast a busy machine)


@pytest.fixture(scope="module")
def canned_app(tiny_dir) -> Iterator[Served]:
    """The app with a canned model on each side (their words ``STEP`` s apart)."""
    config = AppConfig(online=False, preload=False, seq2seq=CANNED["left"], causal=CANNED["right"])
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    runner = build_runner(config, registry=registry, cache=ModelCache(2), endpoints=[])
    canned = CannedEngines(*CANNED.values(), delay=STEP)
    runner.engines.register(canned)
    for source in canned.sources():
        registry.register_endpoint(source)
    built = build_page(runner, config)
    url = launch(built.demo, config, host="127.0.0.1", quiet=True)
    try:
        yield Served(url, built, runner)
    finally:
        built.demo.close()
        built.share_handlers.exports.remove()


@pytest.fixture
def canned_page(browser, canned_app: Served) -> Iterator[Page]:  # noqa: F811 - the imported fixture
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.goto(canned_app.url)
    tab.locator("#run-btn").wait_for(state="visible")
    for side in SIDES:
        wait_for(lambda side=side: CANNED[side] in tab.locator(f"#{side}-card").inner_text(), 20, f"the {side} card")
    yield tab
    context.close()
    wait_for(lambda: canned_app.runner.running() == 0, 15, "this test's runs to end")


def run_button(page: Page) -> str:
    return page.locator("#run-btn").inner_text().strip()


def history_label(page: Page) -> str:
    return page.locator("#history input").input_value()


def answered(page: Page, prompt: str) -> bool:
    """Both panels show the whole canned answer to ``prompt``, with a finish reason."""
    return all(output(page, side) == canned_answer(prompt) and finished(page, side) for side in SIDES)


def test_run_pressed_mid_run_restarts_both_sides_with_the_new_prompt(canned_page: Page, canned_app: Served) -> None:
    page = canned_page
    assert run_button(page) == RUN_IDLE
    type_and_run(page, OLD)
    wait_for(lambda: all(len(output(page, side).split()) >= 2 for side in SIDES), 20, "both old answers to start")
    wait_for(lambda: run_button(page) == RUN_BUSY, 5, lambda: f"the Run button to look busy (it says {run_button(page)!r})")
    page.locator("#prompt textarea").fill(NEW)
    start_recording(page)
    page.locator("#run-btn").click()
    # at once: both panels lose the old answer and its stats
    wait_for(lambda: all(not output(page, side).startswith(canned_answer(OLD)[:10]) and "finish:" not in stats(page, side)
                         for side in SIDES), 3.0,  # (the old code never clears: the old run ends at 12 s)
             lambda: f"both panels to clear at once (last seen: {last_seen(page)})")
    wait_for(lambda: answered(page, NEW), 20, lambda: f"both panels to answer the new prompt (last seen: {last_seen(page)})")
    for side, values in recorded(page).items():  # once cleared, the old answer never shows again
        texts = [text for _at, text in values]
        cleared = texts.index("") if "" in texts else len(texts)
        old = [text for text in texts[cleared:] if text and not canned_answer(NEW).startswith(text)]
        assert not old, f"{side}: the old answer came back after the panel was cleared: {old[:3]!r} in {values!r}"
    for side in SIDES:
        assert "finish: eos" in stats(page, side), f"{side}: the new run did not end by itself: {stats(page, side)}"
    wait_for(lambda: run_button(page) == RUN_IDLE, 5, lambda: f"the Run button back to {RUN_IDLE!r} ({run_button(page)!r})")
    # the replaced run is not a comparison: one entry, the new prompt's
    wait_for(lambda: history_label(page).startswith("#1 ·"), 5, lambda: f"the history entry ({history_label(page)!r})")
    assert "Name three colours." in history_label(page) and "one-0" not in history_label(page), history_label(page)
    time.sleep(STEP * 4)  # the replaced run would write on: nothing changes any more
    assert answered(page, NEW), last_seen(page)
    assert canned_app.runner.running() == 0


def test_three_runs_in_a_row_leave_one_finished_run_of_the_last_prompt(canned_page: Page) -> None:
    page = canned_page
    prompts = [OLD, " ".join(reversed(OLD.split())), "last one wins"]  # 12 s each, unless replaced
    box = page.locator("#prompt textarea")
    for index, prompt in enumerate(prompts):
        box.fill(prompt)
        if index < 2:
            page.locator("#run-btn").click()
        else:  # Ctrl+Enter after an edit, as the prompt box says
            box.press("Control+Enter")
        time.sleep(0.3)
    wait_for(lambda: answered(page, prompts[-1]), 30,
             lambda: f"both panels to answer the last prompt (last seen: {last_seen(page)})")
    wait_for(lambda: run_button(page) == RUN_IDLE, 5, lambda: f"the Run button back to {RUN_IDLE!r} ({run_button(page)!r})")
    wait_for(lambda: history_label(page).startswith("#1 ·"), 5, lambda: f"one history entry ({history_label(page)!r})")
    assert "last one wins" in history_label(page), history_label(page)
    for side in SIDES:
        assert "finish: eos" in stats(page, side), stats(page, side)


def test_a_new_run_clears_the_last_answer_before_the_model_answers(canned_page: Page, canned_app: Served) -> None:
    """No run going: Run both clears both answers and stats at once, before the model has its input (slowed to 3 s
    here: until then the run layer has nothing to show, only the page can clear the panels)."""
    page = canned_page
    type_and_run(page, "short answer")
    wait_for(lambda: answered(page, "short answer"), 20, lambda: f"the first run to end (last seen: {last_seen(page)})")
    canned = canned_app.runner.engines[ENGINE]
    for engine in canned.engines.values():
        engine.prepare = _slowed(engine.prepare, 3.0)
    try:
        page.locator("#prompt textarea").fill("another answer")
        clicked = time.monotonic()
        page.locator("#run-btn").click()
        wait_for(lambda: all(output(page, side) == "" and "finish:" not in stats(page, side) for side in SIDES), 2.5,
                 lambda: f"both panels to clear at once (last seen: {last_seen(page)})")
        cleared_after = time.monotonic() - clicked
        assert all("starting" in stats(page, side) for side in SIDES), last_seen(page)
        wait_for(lambda: answered(page, "another answer"), 20, lambda: f"the new answers (last seen: {last_seen(page)})")
    finally:
        for engine in canned.engines.values():
            vars(engine).pop("prepare", None)
    print(f"both panels cleared {cleared_after:.2f} s after the click")


def _slowed(function, seconds: float):
    def slow(*args, **kwargs):
        time.sleep(seconds)
        return function(*args, **kwargs)
    return slow


def pick(page: Page, selector: str, label: str) -> None:
    page.locator(f"{selector} input").click()
    page.locator(f"[role=option][aria-label='{label}']:visible").click()
    wait_for(lambda: page.locator(f"{selector} input").input_value() == label, 5, f"{selector} to say {label}")
    page.locator("#prompt textarea").click()  # leave the list: it closes


def test_blind_reveal_puts_each_panels_selectors_to_what_ran_there(page: Page, app: Served) -> None:
    """The sides forced to swap: after the rating each panel's model and precision selectors name what its card and
    stats say, and the sentence that reveals them stands right under the rating, above the downloads."""
    pick(page, "#left-precision", "float32")
    pick(page, "#right-precision", "bfloat16")
    blind = app.page.share_handlers.blind
    choose = blind.choose
    blind.choose = lambda: True  # the coin says: swap
    try:
        page.locator("#blind input[type=checkbox]").check()
        wait_for(lambda: not page.locator("#left-card").is_visible(), 10, "the selectors and cards to hide")
        type_and_run(page, "Name a colour.")
        wait_both_finished(page)
    finally:
        blind.choose = choose
    wait_for(lambda: history_label(page).startswith("#1 ·"), 10, "the comparison to be kept")  # then rate it
    page.locator("#rating label", has_text="Tie").click()
    wait_for(lambda: "Revealed" in page.locator("#reveal").inner_text(), 20, "the reveal after the rating")
    ran = {"left": (CAUSAL, "bfloat16"), "right": (SEQ2SEQ, "float32")}  # swapped
    for side, (model, precision) in ran.items():
        wait_for(lambda side=side, model=model: model in page.locator(f"#{side}-model input").input_value(), 10,
                 lambda side=side: f"the {side} model selector to name what ran there "
                                   f"({page.locator(f'#{side}-model input').input_value()!r})")
        wait_for(lambda side=side, precision=precision: page.locator(f"#{side}-precision input").input_value() == precision,
                 10, lambda side=side: f"the {side} precision selector to say {precision} "
                                       f"({page.locator(f'#{side}-precision input').input_value()!r})")
        assert model in page.locator(f"#{side}-card").inner_text()
        assert f"ran in {precision}" in stats(page, side), stats(page, side)
    reveal, rating = page.locator("#reveal").bounding_box(), page.locator("#rating").bounding_box()
    downloads = page.locator("#export-json").bounding_box()
    assert rating["y"] < reveal["y"] < downloads["y"], f"the reveal is not under the rating: {rating} {reveal} {downloads}"
    assert re.search(r"selectors now show what ran there", page.locator("#reveal").inner_text())
