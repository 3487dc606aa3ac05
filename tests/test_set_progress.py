"""What a visitor sees while a prompt set runs (the tab's handler, tiny models): progress from the first update with
loading as a stage, a clock that ticks between batches, one count for the line and the table, rows filling from
the top, "try the first N rows", the single-prompt tab's models, and no score chart for a set without references."""

from __future__ import annotations

import re
import threading
import time
import types
from typing import Callable

import pytest

from components.promptset_tab import TABLE_HEADERS
from components.set_export import to_set_csv
from models import ModelCache, ModelRegistry
from models.settings import Precision
from models.sources import scan_model_dir
from tests.apphelpers import built_page, slowed
from tests.fakeengine import CannedEngine, CannedEngines
from tests.test_set_app import tab_data

LEFT_S, RIGHT_S = TABLE_HEADERS.index("left s"), TABLE_HEADERS.index("right s")
SIDE_RE = {side: re.compile(rf"{side} [▰▱]+ (\d+)/(\d+) rows") for side in ("left", "right")}
ELAPSED_RE = re.compile(r"rows(?: ✓)? · (\d+) s")


def run_tab(page, data, session: str) -> list[tuple[float, dict]]:
    """Every update of the tab's run handler, with the seconds since the handler was called."""
    handlers = page.handlers.prompt_set
    started = time.perf_counter()
    return [(time.perf_counter() - started, update)
            for update in handlers.run(data, types.SimpleNamespace(session_hash=session))]


def counts(line: str) -> tuple[int, int] | None:
    found = [SIDE_RE[side].search(line) for side in ("left", "right")]
    return None if not all(found) else (int(found[0].group(1)), int(found[1].group(1)))


class LoadingCanned(CannedEngines):
    """Canned engines whose ``slow`` model takes ``load_seconds`` to open, saying so, as a model load does."""

    def __init__(self, *names: str, load_seconds: float, delay: float = 0.0) -> None:
        super().__init__(*names, delay=delay)
        self.load_seconds, self.opened = load_seconds, threading.Event()

    def ready(self, source, precision: Precision) -> CannedEngine | None:
        return self.engines[source.name] if source.name != "slow" or self.opened.is_set() else None

    def open(self, source, precision: Precision, on_status: Callable[[str], None]) -> CannedEngine:
        on_status(f"Loading {source.name}")
        time.sleep(self.load_seconds)
        self.opened.set()
        return self.engines[source.name]


@pytest.fixture
def canned_page(tiny_dir):
    """A page whose runner also serves ``canned`` (ready at once) and ``slow`` (2.5 s to load)."""
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    page, runner = built_page(registry, ModelCache(2), seq2seq="tiny-t5", causal="tiny-gpt2")
    canned = LoadingCanned("canned", "slow", load_seconds=2.5, delay=0.05)
    runner.engines.register(canned)
    for source in canned.sources():
        registry.register_endpoint(source)
    yield page
    page.share_handlers.exports.remove()


def test_each_side_shows_its_stage_from_the_first_update_and_loading_ticks(canned_page):
    tab = canned_page.handlers.prompt_set.tab
    updates = run_tab(canned_page, tab_data(tab, builtin="short_answers", left="canned", right="slow"), "loading")
    first_at, first = updates[0]
    assert first_at < 1.0 and "left" in first[tab.progress] and "right" in first[tab.progress], first
    assert tab.table in first, "the set's rows are listed from the first update"
    lines = [update[tab.progress] for _at, update in updates if tab.progress in update]
    loading = [line for line in lines if "right ⏳ Loading slow" in line]
    assert len(loading) >= 3, "the load is a stage of its own, reported while it lasts"
    assert any(int(SIDE_RE["left"].search(line).group(1)) > 0 for line in loading if SIDE_RE["left"].search(line)), \
        "the left side runs its rows while the right one still loads"
    seconds = [int(m.group(1)) for m in (re.search(r"Loading slow… (\d+) s", line) for line in loading) if m]
    assert seconds == sorted(seconds) and seconds[-1] >= 2, "the loading clock ticks"
    assert "✅ done" in lines[-1]


def test_the_line_and_the_table_count_the_same_rows_which_fill_from_the_top_and_the_clock_ticks(registry, cache, load_tiny):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    tab = page.handlers.prompt_set.tab
    data = tab_data(tab, builtin="short_answers", first=6, batch_size=2, max_new_tokens=10)
    load_tiny("tiny-t5"), load_tiny("tiny-gpt2")
    with slowed([load_tiny("tiny-t5"), load_tiny("tiny-gpt2")], 0.12):  # a batch of 2 rows: over a second
        updates = [update for _at, update in run_tab(page, data, "counts")]
    seen: list[tuple[tuple[int, int], int, str]] = []
    table_counts = None
    for update in updates[:-1]:
        line = update[tab.progress]
        if tab.table in update:
            cells = update[tab.table]["data"]
            done = [[row[column] is not None for row in cells] for column in (LEFT_S, RIGHT_S)]
            for side in done:
                assert side == sorted(side, reverse=True), f"rows fill from the top: {side}"
            table_counts = (sum(done[0]), sum(done[1]))
            assert f"| rows done | {table_counts[0]} | {table_counts[1]} |" in update[tab.summary]
        shown = counts(line)
        if shown is None:  # a side still starting or loading
            continue
        assert shown == table_counts, f"the line counts the rows the table shows: {line!r} vs {table_counts}"
        elapsed = ELAPSED_RE.search(line)
        seen.append((shown, int(elapsed.group(1)), line.split(" s", 1)[-1] if "left" in line else line))
    assert [c for c, _s, _l in seen] == sorted(c for c, _s, _l in seen), "the counts never go back"
    ticks = [(a, b) for a, b in zip(seen, seen[1:]) if a[0] == b[0] and b[1] > a[1]]
    assert ticks, "between two batches the clock moves on"
    for (count_a, _sa, line_a), (count_b, _sb, line_b) in zip(seen, seen[1:]):
        left_a = re.search(r"about (\d+) s left", line_a)
        left_b = re.search(r"about (\d+) s left", line_b)
        if count_a == count_b:
            assert (left_a and left_a.group(1)) == (left_b and left_b.group(1)), "the time left moves only with rows done"
    final = updates[-1]
    assert len(final[tab.table]["data"]) == 6 and len(final[tab.result]["rows"]) == 6, "only the first 6 rows ran"


def test_first_rows_must_be_a_whole_number(registry, cache):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    tab = page.handlers.prompt_set.tab
    updates = run_tab(page, tab_data(tab, builtin="short_answers", first=-1), "bad-first")
    assert len(updates) == 1 and "first rows" in updates[0][1][tab.progress]


def test_the_set_tab_starts_with_the_single_tabs_models_and_runs_the_side_that_can_run(tiny_dir):
    """Offline with one causal model: the left panel starts on a seq2seq preset that is not here. The set tab shows
    the same models, and its set runs on the right while every left row says why it has no answer."""
    registry = ModelRegistry(online=False)
    for source in scan_model_dir(tiny_dir):
        if source.name == "tiny-gpt2":
            registry.register(source)
    page, _runner = built_page(registry, ModelCache(2))
    tab = page.handlers.prompt_set.tab
    for side in ("left", "right"):
        assert getattr(tab, side).model.value == page.panels[side].model.value, side
    left, right = tab.left.model.value, tab.right.model.value
    assert right == "tiny-gpt2" and registry.availability(left), "the left model is not on this machine"
    updates = run_tab(page, tab_data(tab, builtin="short_answers", left=left, right=right, first=3), "offline")
    final = updates[-1][1]
    result = final[tab.result]
    assert result is not None, final.get(tab.progress)
    assert all(row["right"]["stats"]["finish_reason"] in ("length", "eos") for row in result["rows"])
    assert all(row["left"]["stats"]["error"] and left in row["left"]["stats"]["error"] for row in result["rows"])
    assert "left ⚠️" in final[tab.progress] and left in final[tab.progress]


def test_a_set_without_references_says_so_instead_of_an_empty_score_chart(registry, cache, tmp_path):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    tab = page.handlers.prompt_set.tab
    upload = tmp_path / "plain.txt"
    upload.write_text("Once upon a time\nThe cat sat\n", encoding="utf-8")
    updates = [u for _at, u in run_tab(page, tab_data(tab, upload=str(upload)), "no-refs")]
    for update in (updates[0], updates[-1]):
        assert update[tab.score_box].visible is False and update[tab.score_note].visible is True
        assert "no references: no scores" in update[tab.score_note].value
    assert tab.score_plot not in updates[-1]
    scored = [u for _at, u in run_tab(page, tab_data(tab, builtin="short_answers", first=2), "refs")][-1]
    assert scored[tab.score_box].visible is True and scored[tab.score_note].visible is False
    assert len(scored[tab.score_plot]), "a set with references draws its score chart"


def test_the_table_names_its_score_and_keeps_figures_on_one_line(registry, cache):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    tab = page.handlers.prompt_set.tab
    final = run_tab(page, tab_data(tab, builtin="short_answers", first=2), "headers")[-1][1]
    headers = final[tab.table]["headers"]
    assert "left\u00a0chrF" in headers and "right\u00a0chrF" in headers, headers
    assert all(" " not in h for h in headers[LEFT_S:LEFT_S + 8]), "a figure's header never splits"
    assert all(len(str(row[LEFT_S]).split(".")[-1]) <= 2 for row in final[tab.table]["data"]), "seconds: 2 decimals"
    assert to_set_csv(final[tab.result]).splitlines()[0].split(",")[11:13] == ["left chrF", "right chrF"]
