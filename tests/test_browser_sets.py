"""End-to-end in headless Chromium: the "Prompt set" tab as a visitor uses it (upload, run, table, filter, chart)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page

from tests.apphelpers import Served, running_app
from tests.test_browser import browser, pytestmark, wait_for  # noqa: F401 - the shared Chromium fixture and skip mark

ROOT = Path(__file__).resolve().parent.parent
ROWS = [{"prompt": "What is the capital of France?", "reference": "Paris"},
        {"prompt": "Translate to German: good morning", "reference": "Guten Morgen"},
        {"prompt": "Name a red fruit.", "reference": "apple"}]


@pytest.fixture(scope="module")
def app(registry, cache) -> Iterator[Served]:
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2") as served:
        yield served


@pytest.fixture
def page(browser, app: Served) -> Iterator[Page]:  # noqa: F811 - uses the imported fixture
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.goto(app.url)
    tab.locator("#run-btn").wait_for(state="visible")
    yield tab
    context.close()


def test_upload_run_and_see_the_table_fill_and_a_chart_drawn(page: Page, tmp_path: Path) -> None:
    upload = tmp_path / "my-set.jsonl"
    upload.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n", encoding="utf-8")
    assert not page.locator("#set-run").is_visible(), "the set tab's page shows under the single-prompt tab"
    page.get_by_role("tab", name="Prompt set").click()
    page.locator("#set-run").wait_for(state="visible")
    assert not page.locator("#run-btn").is_visible(), "the single-prompt page still shows in the set tab"
    page.locator("#set-upload input[type=file]").set_input_files(str(upload))
    wait_for(lambda: "3 rows" in page.locator("#set-about").inner_text(), 20, "the uploaded set's description")
    page.locator("#set-run").click()
    wait_for(lambda: "done" in page.locator("#set-progress").inner_text(), 60,
             lambda: f"the set to finish (progress: {page.locator('#set-progress').inner_text()!r})")
    table = page.locator("#set-table")
    wait_for(lambda: all(row["prompt"] in table.inner_text() for row in ROWS), 20, "every prompt in the table")
    assert "chrF (0–100)" in page.locator("#set-summary").inner_text()
    assert "0 of 3 rows" in page.locator("#set-summary").inner_text(), "two untrained models never agree"
    assert table.inner_text().count("differs at word") == len(ROWS) and " %" in table.inner_text()
    header = table.locator("thead").inner_text().replace("\xa0", " ")
    assert "left chrF" in header and "right chrF" in header, "the score columns name their score"
    page.locator("#set-filter").get_by_label("Identical").check()
    wait_for(lambda: not any(row["prompt"] in table.inner_text() for row in ROWS), 20, "the identical filter to hide every row")
    page.locator("#set-filter").get_by_label("All rows").check()
    wait_for(lambda: all(row["prompt"] in table.inner_text() for row in ROWS), 20, "every row back")
    wait_for(lambda: page.locator("#set-score-plot canvas, #set-score-plot svg").count() > 0, 20,
             "the score chart to be drawn")
    page.mouse.move(0, 0)
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    screenshot = ROOT / "artifacts" / "prompt-set.png"
    screenshot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # the README's copy, refreshed on purpose only
        shutil.copyfile(screenshot, ROOT / "docs" / "prompt-set.png")


def test_a_bad_upload_is_refused_with_its_line(page: Page, tmp_path: Path) -> None:
    upload = tmp_path / "broken.csv"
    upload.write_text("question,answer\nWhat?,That\n", encoding="utf-8")
    page.get_by_role("tab", name="Prompt set").click()
    page.locator("#set-upload input[type=file]").set_input_files(str(upload))
    wait_for(lambda: "prompt" in page.locator("#set-about").inner_text() and "⚠️" in page.locator("#set-about").inner_text(),
             20, "the refusal naming the missing prompt column")


def test_a_set_without_references_says_it_has_no_scores(page: Page, tmp_path: Path) -> None:
    upload = tmp_path / "plain.txt"
    upload.write_text("Once upon a time\nThe cat sat\n", encoding="utf-8")
    page.get_by_role("tab", name="Prompt set").click()
    page.locator("#set-upload input[type=file]").set_input_files(str(upload))
    wait_for(lambda: "2 rows" in page.locator("#set-about").inner_text(), 20, "the uploaded set's description")
    page.locator("#set-run").click()
    wait_for(lambda: "no references: no scores" in page.locator("#set-score-note").inner_text(), 30,
             "the note in the score chart's place")
    wait_for(lambda: "done" in page.locator("#set-progress").inner_text(), 60, "the set to finish")
    assert not page.locator("#set-score-plot").is_visible(), "no empty score chart"
    wait_for(lambda: page.locator("#set-latency-plot canvas, #set-latency-plot svg").count() > 0, 20,
             "the time chart to be drawn")
