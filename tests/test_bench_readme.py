"""The precision-quality and visitors benchmark sections' arithmetic, and the tables of docs/benchmarks.md drawn
from their results (``python -m bench.readme``) and from the test run (``python -m tests.readme_figures``)."""

from __future__ import annotations

import copy
import json
import types

import pytest

from bench.promptsets import BUILTIN_SETS, builtin_set
from bench.readme import PAGE, REPORTS, RESULTS, WHOLE, blocks, confidence_block, endpoint_block, lone_answer_block, \
    main, render, report_block, reports, rewrite, sections
from bench.sections import by_key
from bench.sections.precision_quality import ModelSamples, cell, compare, first_difference, prompt_rows
from bench.sections.visitors import OPTIONS, Burst, figures, percentile, shipped_option
from tests import readme_figures

COMMITTED = pytest.mark.skipif(not all(path.exists() for path in [*RESULTS.values(), *REPORTS.values()]),
                               reason="no committed results files yet")


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


def test_the_prompts_are_taken_in_turn_from_every_built_in_set():
    sets = [[row.prompt for row in builtin_set(name).rows] for name in BUILTIN_SETS]
    rows = [row.prompt for row in prompt_rows(12)]
    assert len(set(rows)) == 12
    owner = [next(i for i, prompts in enumerate(sets) if prompt in prompts) for prompt in rows]
    assert owner == [k % len(sets) for k in range(12)], "one row from each set in turn, so lengths and tasks are mixed"
    assert rows[:len(sets)] == [prompts[0] for prompts in sets] and rows[len(sets)] == sets[0][1]


def test_percentiles_and_burst_figures():
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)
    bursts = [Burst(2, 2.0, [0.1, 0.3], [10, 20], ["a", "b"], [2, 2]), Burst(2, 3.0, [0.2, 0.4], [10, 20], ["a", "x"], [2, 2])]
    out = figures(bursts, ["a", "b"])
    assert out["aggregate_tokens_per_second"] == pytest.approx(12.5)  # median of 15 and 10 tok/s
    assert out["identical_to_lone"] == 1, "the worst repetition counts"
    assert out["figures"]["aggregate"]["n"] == 2


def test_the_shipped_option_follows_the_app_configuration(monkeypatch):
    import models.loader
    import web.config

    def serving(concurrency, group_window, precision):
        monkeypatch.setattr(web.config, "AppConfig", lambda: types.SimpleNamespace(concurrency=concurrency,
                                                                                   group_window=group_window))
        monkeypatch.setattr(models.loader, "resolve_precision", lambda *a: types.SimpleNamespace(value=precision))
        return shipped_option().name

    assert serving(4, 0, "float32") == "today"
    assert serving(8, 0.1, "bfloat16") == "bfloat16, 8 slots, grouped"
    assert serving(8, 0.1, "float32") == "float32, 8 slots, grouped"
    assert serving(2, 0.1, "float32") == "float32, 2 slots, grouped", "a configuration no option measured is named"


@COMMITTED
def test_the_committed_visitors_table_marks_the_option_the_app_ships():
    """Changing the app's slots or grouping without a new ``--sections 9`` run leaves the page's "(as shipped)"
    on an option the app no longer serves with."""
    from web.config import AppConfig

    label = sections()["visitors"]["results"]["shipped"]
    option = next(o for o in OPTIONS if o.name == label)
    config = AppConfig()
    assert (option.concurrency, option.group) == (config.concurrency, config.group_window > 0), \
        f"the page marks {label!r} as shipped; run python -m bench --real --sections 9 --name visitors again"


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


@COMMITTED
def test_the_page_tables_are_the_committed_results():
    committed = sections()
    shown = blocks(PAGE.read_text(encoding="utf-8"))
    runs = reports()
    assert set(shown) >= {"precision_quality", "visitors", "real", "endpoint", "confidence"}
    for key, table in shown.items():
        if key in REPORTS:
            assert table == WHOLE[key](runs[key]), f"{PAGE.name} block {key} is not the one {REPORTS[key].name} gives"
        else:
            assert table == render(key, committed[key]), f"{PAGE.name} table {key} is not the one {RESULTS[key].name} gives"


def test_the_endpoint_block_shows_the_figures_of_its_results_file():
    run = json.loads(REPORTS["endpoint"].read_text(encoding="utf-8")) if REPORTS["endpoint"].exists() else None
    if run is None:
        pytest.skip("no committed endpoint results")
    run = copy.deepcopy(run)
    run["figures"]["in-process"].update(first_text_seconds=0.25, tokens_per_second=20.0, own_first_token_seconds=0.1)
    run["figures"]["endpoint"].update(first_text_seconds=0.2, tokens_per_second=16.0, own_first_token_seconds=0.12)
    run["figures"]["in-process"]["samples"] = [{"own_first_token": 0.1}, {"own_first_token": 0.2}, {"own_first_token": 0.3}]
    run["figures"]["endpoint"]["samples"] = [{"own_first_token": 0.13}, {"own_first_token": 0.21}, {"own_first_token": 0.34}]
    run.update(paired_first_text_overhead_seconds=-0.041, paired_tokens_per_second_ratio=0.75, same_text="3/11")
    lines = endpoint_block(run).splitlines()
    assert "| in-process (`models.stream`) | 250 ms | 20.0 | 100 ms |" in lines
    assert "| endpoint (`transformers serve` on loopback) | 200 ms | 16.0 | 120 ms |" in lines
    assert "| endpoint vs in-process, median of each repetition's pair | **−41 ms** | **× 0.75** | +30 ms |" in lines, \
        "the own-first-token cell is the median of the pairs' differences (30, 10, 40 ms)"
    assert "- **Same text on both paths:** 3/11 repetitions" in lines
    assert lines[-1].startswith("On the endpoint: tokens/s −25 % ") and "+12.5 ms a token" in lines[-1]


def test_the_confidence_block_shows_the_figures_of_its_results_file():
    if not REPORTS["confidence"].exists():
        pytest.skip("no committed confidence results")
    run = copy.deepcopy(json.loads(REPORTS["confidence"].read_text(encoding="utf-8")))
    models = run["sections"]["confidence"]["results"]["models"]
    key, model = next((k, m) for k, m in models.items() if not m.get("unavailable") and m["precision"] == "float32")
    model["decoding"]["tokens_per_second"]["without"]["median"] = 20.0
    model["decoding"]["tokens_per_second"]["with"]["median"] = 19.5
    model["decoding"]["cost"] = 0.025
    model["decoding"]["pair_ratios"]["samples"] = [1.01, 0.975, 0.95]
    model["whole_call"]["tokens_per_second"]["without"]["median"] = 18.0
    model["whole_call"]["tokens_per_second"]["with"]["median"] = 17.6
    model["whole_call"]["cost"] = 0.02
    model["recorder"].update(see_seconds_per_token=0.0005, call_seconds_per_token=0.0001)
    model["recorder"]["share_of_generate"]["median"] = 0.012
    model["build_tokens_seconds"]["median"] = 0.0042
    model["tokens"]["median"] = 64
    model["same_answer"] = {"identical": 4, "runs": 5}
    model["load_average"] = [1.5, 1.0, 0.5]
    lines = confidence_block(run).splitlines()
    assert (f"| `{model['name']}` | float32 | 20.0 → 19.5 | **2.5 %** | −1.0 % to 5.0 % | 18.0 → 17.6, 2.0 % | "
            "600 µs (1.2 %) | 4.2 ms for 64 tokens | 4/5 | 1.5 |") in lines, key
    assert any(line.startswith("- **Settings:** greedy, ") for line in lines)
    assert any(line.startswith("- **Date:**") and "load average (1 min) at start/end" in line for line in lines)


def test_the_lone_answer_block_shows_the_figures_of_its_results_file():
    if not REPORTS["lone_answer"].exists():
        pytest.skip("no committed one-answer results")
    run = copy.deepcopy(json.loads(REPORTS["lone_answer"].read_text(encoding="utf-8")))
    res = run["sections"]["lone_answer"]["results"]
    res.update(bandwidth_bytes_per_second=25e9, copy_bytes=512 * 2**20, native_bf16=False, auto_precision="float32")
    model = next(m for m in res["models"].values() if not m.get("unavailable") and m["kind"] == "causal")
    model.update(bandwidth_limit_tokens_per_second=46.0, compile_seconds=135.4, params=134_515_008)
    compiled = model["options"]["compiled"]
    compiled["tokens_per_second"]["median"] = 30.0
    compiled["whole_call_tokens_per_second"]["median"] = 28.0
    compiled.update(ratio_to_current=1.25, bandwidth_fraction=30 / 46, identical_to_current=4, runs=5)
    res["llama_cpp"] = {"installed": True, "version": "0.3.9", "note": "whole call", "tokens_per_second": {"median": 123.0}}
    lines = lone_answer_block(run).splitlines()
    assert (f"| `{model['name']}` (trained, 135M params) | {model['precision']} | compiled | 30.0 | 1.25× | 65 % of 46 | "
            "28.0 | 4/5 |") in lines
    assert any(line.startswith("- **Memory bandwidth:** 25.0 GB/s (512 MiB torch copy") and "auto = float32" in line
               for line in lines)
    assert f"`{model['name']}` {model['precision']}: 135 s" in lines[-3]
    assert lines[-1] == "llama.cpp on the same GGUF: 123.0 tokens/s (llama-cpp-python 0.3.9, whole call)."


@COMMITTED
def test_a_block_edited_by_hand_is_found_stale_and_redrawn(tmp_path, capsys):
    page = tmp_path / "benchmarks.md"
    text = PAGE.read_text(encoding="utf-8")
    page.write_text(text, encoding="utf-8")
    assert main(["--check", "--page", str(page)]) == 0
    visitors = blocks(text)["visitors"]
    row = next(line for line in visitors.splitlines() if "(as shipped)" in line and "| causal | 8 |" in line)
    rate = row.split("|")[4]
    edited = text.replace(row, row.replace(rate, " 999.9 ", 1))
    assert edited != text
    page.write_text(edited, encoding="utf-8")
    capsys.readouterr()
    assert main(["--check", "--page", str(page)]) == 1
    assert "visitors" in capsys.readouterr().out and page.read_text(encoding="utf-8") == edited, "--check writes nothing"
    assert main(["--page", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == text, "a rewrite gives back the committed results' block"


# ----- the reliability table (python -m tests.readme_figures, from artifacts/reliability.json) -----

def test_the_page_has_one_reliability_row_per_check_in_order():
    table = readme_figures.shown(PAGE.read_text(encoding="utf-8")).splitlines()
    assert table[:2] == ["| check | figures |", "|---|---|"]
    checks = [line[2:].split(" | ", 1)[0] for line in table[2:]]
    assert checks == [what for _key, what, _render in readme_figures.ROWS], \
        "run the full suite, then python -m tests.readme_figures --write"
    assert "**0 lost**" in table[2], "the load test asserts that no request is lost"


def test_the_reliability_table_is_written_from_the_artifact_into_its_block_only(tmp_path, monkeypatch, capsys):
    figures = {"file_routes": {"tried": 7, "behaved": 7},
               "faults": {"tried": 3, "behaved": 2},
               "public: scheduled prune": {"pruned_after_s": 4.56}}
    artifact = tmp_path / "reliability.json"
    artifact.write_text(json.dumps(figures))
    monkeypatch.setattr(readme_figures, "ARTIFACT", artifact)
    page = tmp_path / "page.md"
    page.write_text(f"before\n{readme_figures.START}\n| old |\n{readme_figures.END}\nafter\n")
    assert readme_figures.main(["--check", "--page", str(page)]) == 1
    assert readme_figures.main(["--write", "--page", str(page)]) == 0
    text = page.read_text()
    assert text.startswith(f"before\n{readme_figures.START}\n| check | figures |") and text.endswith(f"{readme_figures.END}\nafter\n")
    assert "| old |" not in text
    rows = readme_figures.shown(text).splitlines()[2:]
    assert [row[2:-2].split(" | ", 1)[1] for row in rows] == [
        "3 tried · **2 survived**: clear message, partial text kept, the next request works",
        "7 tried · **0 served**",
        "cache empty 4.6 s after the export",
    ], "rows in the order of ROWS, with the JSON's figures; a section the run did not write is left out"
    assert readme_figures.main(["--check", "--page", str(page)]) == 0
    with pytest.raises(ValueError):
        readme_figures.replace("no markers here", "| t |")
