"""The precision-quality and visitors benchmark sections' arithmetic, and the README tables drawn from their results."""

from __future__ import annotations

import pytest

from bench.readme import README, REPORTS, RESULTS, blocks, render, report_block, reports, rewrite, sections
from bench.sections import by_key
from bench.sections.precision_quality import ModelSamples, cell, compare, first_difference, prompt_rows
from bench.sections.visitors import Burst, figures, percentile, shipped_option


def test_first_difference_is_one_based_and_a_prefix_differs_where_it_ends():
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [9, 2, 3]) == 1
    assert first_difference([1, 2, 3], [1, 2, 4]) == 3
    assert first_difference([1, 2], [1, 2, 3]) == 3, "the shorter answer ended (its end token) where the other went on"


def test_compare_counts_identical_answers_and_averages_where_the_others_part():
    model = ModelSamples("m", "causal", True, outputs={"float32": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                                                        "bfloat16": [[1, 2, 3], [4, 0, 6], [0, 8, 9]]})
    figures_ = compare(model, "bfloat16")
    assert (figures_["identical"], figures_["prompts"], figures_["first_differences"]) == (1, 3, [2, 1])
    assert figures_["mean_first_difference"] == 1.5 and figures_["share"] == pytest.approx(1 / 3)
    assert cell(figures_) == "1/3 identical (33%); the others part at token 1.5 on average"
    assert compare(model, "8-bit") is None and cell(None, "no bitsandbytes") == "not run: no bitsandbytes"


def test_the_prompt_set_is_fixed_and_mixed():
    rows = prompt_rows(12)
    assert [r.prompt for r in rows] == [r.prompt for r in prompt_rows(12)]
    assert len({r.prompt for r in rows}) == 12


def test_percentiles_and_burst_figures():
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)
    bursts = [Burst(2, 2.0, [0.1, 0.3], [10, 20], ["a", "b"], [2, 2]), Burst(2, 3.0, [0.2, 0.4], [10, 20], ["a", "x"], [2, 2])]
    out = figures(bursts, ["a", "b"])
    assert out["aggregate_tokens_per_second"] == pytest.approx(12.5)  # median of 15 and 10 tok/s
    assert out["identical_to_lone"] == 1, "the worst repetition counts"
    assert out["figures"]["aggregate"]["n"] == 2


def test_the_shipped_option_is_read_from_the_app_configuration():
    from web.config import AppConfig

    option = shipped_option()
    config = AppConfig()
    assert option.concurrency == config.concurrency and option.group == (config.group_window > 0)


def test_rewrite_redraws_only_the_marked_blocks():
    entry = {"results": {"models": {"tiny-x": {"kind": "causal", "real": False, "unavailable": {},
                                               "float32": None, "bfloat16": {"identical": 1, "prompts": 2, "share": 0.5,
                                                                             "mean_first_difference": 3.0},
                                               "tokens_per_second": {"float32": {"median": 10.0}, "bfloat16": {"median": 20.0}}}}}}
    text = "intro\n<!-- bench:precision_quality -->\nold table\n<!-- /bench:precision_quality -->\nafter\n"
    new = rewrite(text, {"sections": {"precision_quality": entry}})
    assert new.startswith("intro\n") and new.endswith("after\n") and "old table" not in new
    assert "| `tiny-x` | causal | untrained (random) | 1/2 (50%) | token 3.0 | 20.0 vs 10.0 tok/s (2.00×) |" in new
    assert rewrite(text, {"sections": {}}) == text, "a section not in the results keeps its block"


def test_a_whole_run_block_is_its_header_and_table():
    run = reports()["real"]
    text = "a\n<!-- bench:real -->\nold\n<!-- /bench:real -->\nb\n"
    drawn = blocks(rewrite(text, {"sections": {}}, {"real": run}))["real"]
    assert drawn == report_block(run)
    lines = drawn.splitlines()
    assert lines[0].startswith("- **Machine:**") and f"commit {run['machine']['git']}" in drawn
    numbers = {int(line.split("|")[1]) for line in lines if line.startswith("| ") and line.split("|")[1].strip().isdigit()}
    assert numbers == {by_key(key).number for key in run["sections"]}, "a row for every section the run holds"


@pytest.mark.skipif(not all(path.exists() for path in RESULTS.values()), reason="no committed results files yet")
def test_the_readme_tables_are_the_committed_results():
    committed = sections()
    shown = blocks(README.read_text(encoding="utf-8"))
    runs = reports()
    assert set(shown) >= {"precision_quality", "visitors", "real"}
    for key, table in shown.items():
        if key in REPORTS:
            assert table == report_block(runs[key]), f"README block {key} is not the one {REPORTS[key].name} gives"
        else:
            assert table == render(key, committed[key]), f"README table {key} is not the one {RESULTS[key].name} gives"
