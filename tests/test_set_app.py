"""Prompt sets in the app: the /run_set API, the tab's handler, Stop, ratings and the exports."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import threading
import time
import types
from pathlib import Path

import pandas as pd
import pytest
import torch
from gradio_client import Client

from components.promptset_tab import TABLE_HEADERS, table_rows
from components.render import percent
from components.set_export import summary_markdown, to_set_csv, to_set_json, to_set_markdown, write_set_exports
from models import GenerationSettings, Kind
from models.local import LocalEngine
from models.sets.batch import generate_rows
from models.sets.rows import MAX_ROWS, PromptRow, builtin_set
from models.sets.compare import rate
from models.types import TOP_TOKENS, TokenProb
from tests.apphelpers import built_page, generation_threads, running_app, slowed

ROWS = [{"prompt": "What is the capital of France?", "reference": "Paris"},
        {"prompt": "Name a red fruit.", "reference": "apple"},
        {"prompt": "Once upon a time"}]


def tab_data(tab, *, builtin=None, upload=None, left="tiny-t5", right="tiny-gpt2", precision="auto", show="all",
             first=0, batch_size=0, max_new_tokens=5):
    """The set tab's input values, as Gradio hands them to its run handler (5 new tokens, greedy)."""
    return {tab.builtin: builtin, tab.upload: upload, tab.task_prefix: "", tab.batch_size: batch_size, tab.show: show,
            tab.first_rows: first,
            **dict(zip(tab.settings.components(), (max_new_tokens, 0.0, 1.0, 0, 1.0, 0, 0))),
            tab.left.model: left, tab.left.custom: "", tab.left.precision: precision,
            tab.right.model: right, tab.right.custom: "", tab.right.precision: precision}


@pytest.fixture(scope="module")
def app(registry, cache):
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2") as served:
        yield served


def test_run_set_streams_progress_then_rows_in_input_order_equal_to_one_at_a_time(app, load_tiny):
    client = Client(app.url, verbose=False)
    job = client.submit(left="tiny-t5", right="tiny-gpt2", rows=ROWS, max_new_tokens=7, batch_size=1, api_name="/run_set")
    updates = list(job)
    final = job.result()
    progress = [u for u in updates if "total" in u]
    assert progress and all(p["total"] == 3 for p in progress)
    assert progress[-1]["done_left"] <= 3 and progress[-1]["done_right"] <= 3
    assert [row["prompt"] for row in final["rows"]] == [r["prompt"] for r in ROWS], "input order"
    settings = GenerationSettings(max_new_tokens=7)
    rows = [PromptRow(r["prompt"], r.get("reference")) for r in ROWS]
    for side, model in (("left", "tiny-t5"), ("right", "tiny-gpt2")):
        expected = {r.index: r.text for r in generate_rows(load_tiny(model), rows, settings, batch_size=1)}
        assert [row[side]["text"] for row in final["rows"]] == [expected[i] for i in range(3)]
        assert all(row[side]["stats"]["output_tokens"] == 7 for row in final["rows"])
    assert set(final["rows"][0]["scores"]["left"]) == {"chrf"} and final["rows"][2]["scores"]["left"] == {}
    assert final["summary"]["left"]["rows_done"] == 3 and final["summary"]["right"]["rows_scored"] == 2


@pytest.mark.parametrize(("values", "named"), [
    ({"rows": [{"prompt": "ok"}, {"prompt": "   "}]}, "row 2"),
    ({"rows": [{"prompt": "x"}] * (MAX_ROWS + 1)}, "200"),
    ({"rows": [{"prompt": "x", "answer": "y"}]}, "answer"),
    ({"rows": "not a list"}, "rows"),
    ({"batch_size": 65}, "batch_size"),
    ({"top_p": 0}, "top_p"),
    ({"left": "/etc/passwd"}, "left"),
    ({"load_in_8bit_right": "yes"}, "load_in_8bit_right"),
    ({"precision_left": "float64"}, "precision_left: must be one of"),
    ({"precision_right": "float32", "load_in_8bit_right": True}, "load_in_8bit_right=true asks for 8-bit but precision_right"),
    ({"precision_left": "float16"}, "precision_left: float16 runs on a GPU only"),
])
def test_bad_requests_are_refused_naming_what_was_wrong(app, values, named):
    if values.get("precision_left") == "float16" and torch.cuda.is_available():
        pytest.skip("float16 runs on this machine's GPU")
    client = Client(app.url, verbose=False)
    arguments = {"left": "tiny-t5", "right": "tiny-gpt2", "rows": ROWS, "max_new_tokens": 4, **values}
    with pytest.raises(Exception, match=named):
        client.predict(**arguments, api_name="/run_set")
    assert not generation_threads()


def test_stop_halts_both_sides_and_keeps_the_rows_done(app, load_tiny):
    client = Client(app.url, verbose=False)
    many = [{"prompt": f"Row {i} says hello"} for i in range(12)]
    with slowed([load_tiny("tiny-t5"), load_tiny("tiny-gpt2")], 0.02):
        job = client.submit(left="tiny-t5", right="tiny-gpt2", rows=many, max_new_tokens=30, batch_size=2,
                            api_name="/run_set")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(min(o.get("done_left", 0), o.get("done_right", 0)) >= 2
                                                      for o in job.outputs()):  # one batch done on each side
            time.sleep(0.05)
        client.predict(api_name="/stop")
        final = job.result(timeout=60)
    assert final["stopped"] is True
    for side in ("left", "right"):
        done = [row for row in final["rows"] if row[side] and row[side]["stats"]["finish_reason"] in ("length", "eos")]
        assert len(done) >= 2, f"the {side} rows finished before Stop are kept"
    assert any(row["left"] is None or row["left"]["stats"]["finish_reason"] == "stopped" for row in final["rows"])
    assert not generation_threads() and app.runner.running() == 0


def test_tab_handler_fills_table_summary_and_charts_then_rates(registry, cache):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    tab, handlers = page.handlers.prompt_set.tab, page.handlers.prompt_set
    data = tab_data(tab, builtin="short_answers")
    updates = list(handlers.run(data, types.SimpleNamespace(session_hash="set-tab")))
    final = updates[-1]
    rows = builtin_set("short_answers").rows
    assert len(final[tab.table]["data"]) == len(rows) and final[tab.table]["data"][0][1] == rows[0].prompt
    assert "exact match (0–1)" in final[tab.summary] and "chrF (0–100)" in final[tab.summary] and "tokens/s" in final[tab.summary]
    assert final[tab.result]["summary"]["score_labels"]["chrf"] == ["chrF", 100.0], "the export says each score's scale"
    scores = final[tab.score_plot]
    assert set(scores["side"]) == {"left", "right"} and {"chrf", "exact", "contains"} <= set(scores["metric"])
    assert scores["bar"].is_unique and scores["score"].between(0, 100).all(), "one bar per metric and side, none stacked"
    assert len(final[tab.length_plot]) == 2 * len(rows)
    result = final[tab.result]
    rated = handlers.rate({tab.result: result, tab.rating_row: 2, tab.rating: "right", tab.show: "all"})
    assert rated[tab.result]["rows"][1]["rating"] == "right" and rated[tab.table]["data"][1][-1] == "right"
    assert rated[tab.result]["summary"]["ratings"] == {"left": 0, "right": 1, "tie": 0}
    value = rated[tab.download_json].value
    saved = json.loads(Path(value["path"] if isinstance(value, dict) else value).read_text(encoding="utf-8"))
    assert saved["rows"][1]["rating"] == "right", "the download holds the rating"
    again = handlers.rate({tab.result: rated[tab.result], tab.rating_row: 3, tab.rating: "tie", tab.show: "all"})
    assert again[tab.download_json].value == value, "a rating rewrites the run's files, it does not add new ones"
    folder = Path(value["path"] if isinstance(value, dict) else value).parent
    assert len(list(folder.iterdir())) == 3, sorted(p.name for p in folder.iterdir())


def test_tab_refuses_a_bad_upload_with_its_line(registry, cache, tmp_path):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    tab, handlers = page.handlers.prompt_set.tab, page.handlers.prompt_set
    bad = tmp_path / "set.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n')
    data = tab_data(tab, upload=str(bad))
    updates = list(handlers.run(data, types.SimpleNamespace(session_hash="bad-upload")))
    assert len(updates) == 1 and "line 2" in updates[0][tab.progress]


def test_exports_round_trip(tmp_path):
    result = {"set": "demo<set>", "rows": [
        {"prompt": "Hi | there", "reference": "Hello", "scores": {"left": {"chrf": 50.0}, "right": {}},
         "left": {"text": "<b>a</b>", "stats": {"seconds": 0.1, "output_tokens": 3}},
         "right": {"text": "b\nc", "stats": {"seconds": 0.2, "output_tokens": 4}}, "rating": None}],
        "summary": {"left": {"scores": {"chrf": 50.0}}, "right": {"scores": {}}, "ratings": {"left": 0, "right": 0, "tie": 0}},
        "settings": {"left": {"max_new_tokens": 4}}, "models": {"left": {"name": "a", "revision": "abc"}}}
    result = rate(result, 0, "tie")
    csv_path, json_path, md_path = write_set_exports(result, tmp_path)
    assert json.loads(json_path.read_text(encoding="utf-8"))["rows"] == result["rows"]
    assert json.loads(to_set_json(result))["models"]["left"]["revision"] == "abc"
    table = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert table[0]["prompt"] == "Hi | there" and table[0]["right output"] == "b\nc" and table[0]["rating"] == "tie"
    assert to_set_csv(result) == csv_path.read_text(encoding="utf-8")
    markdown = md_path.read_text(encoding="utf-8")
    assert "&lt;b&gt;a&lt;/b&gt;" in markdown and "<b>" not in markdown and "Hi \\| there" in markdown
    assert markdown == to_set_markdown(result)
    assert "| your ratings (ties: 1) | left better: 0 | right better: 0 |" in markdown, \
        "ties stand with the row's label, under neither side's column"
    assert summary_markdown(result) in markdown, "the file starts with the summary the page shows"


def test_charts_name_both_sides_from_their_first_frame(registry, cache):
    """Gradio's plots keep the colour scale of their first frame: a side missing from it is never drawn. So the
    charts wait until both sides have a row, and then every frame lists both (empty values where one has none)."""
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    handlers, tab = page.handlers.prompt_set, page.handlers.prompt_set.tab
    done = {"text": "Paris", "stats": {"seconds": 0.2, "output_tokens": 2}}
    partial = {"rows": [{"prompt": "Capital of France?", "reference": "Paris", "right": done, "left": None,
                         "scores": {"right": {"chrf": 100.0, "exact": 1.0}}}],
               "summary": {"right": {"rows_done": 1, "mean_seconds_per_row": 0.2, "scores": {"chrf": 100.0, "exact": 1.0}},
                           "left": {"rows_done": 0, "scores": {}}, "ratings": {},
                           "score_labels": {"chrf": ["chrF", 100.0], "exact": ["exact match", 1.0]}}}
    assert tab.latency_plot not in handlers.render(partial), "one side only: no chart is drawn yet"
    final = handlers.render(partial, final=True)
    plot = final[tab.latency_plot]
    latency = pd.DataFrame(plot.value["data"], columns=plot.value["columns"])
    assert plot.y_lim == [0, 0.25], "from zero, and above the tallest bar (0.2 s)"
    scores, lengths = final[tab.score_plot], final[tab.length_plot]
    for frame in (scores, latency, lengths):
        assert set(frame["side"]) == {"left", "right"}, frame
    assert scores.set_index("bar")["score"].to_dict() == pytest.approx(
        {"chrF · left": float("nan"), "exact match · left": float("nan"), "chrF · right": 100.0, "exact match · right": 100.0},
        nan_ok=True)
    assert latency.set_index("side")["seconds per row"].isna().to_dict() == {"left": True, "right": False}


def test_a_rating_outside_the_set_is_refused():
    with pytest.raises(IndexError, match="row 3"):
        rate({"rows": [{}], "summary": {}}, 2, "left")


def test_public_limits_hold_for_prompt_sets_too(registry, cache):
    from models.settings import PublicLimits

    limits = PublicLimits(max_new_tokens=16)
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", limits=limits) as served:
        client = Client(served.url, verbose=False)
        with pytest.raises(Exception, match="max_new_tokens"):
            client.predict(left="tiny-t5", right="tiny-gpt2", rows=ROWS, max_new_tokens=17, api_name="/run_set")
        final = client.predict(left="tiny-t5", right="tiny-gpt2", rows=ROWS[:1], max_new_tokens=16, api_name="/run_set")
        assert final["rows"][0]["left"]["stats"]["output_tokens"] == 16
        slider = served.page.handlers.prompt_set.tab.settings.max_new_tokens
        assert slider.maximum == 16, "the tab's slider stops at the public limit"


# ----- both sides at once (models.sets.compare) -----

def _both(load_tiny, rows, left="tiny-t5", right="tiny-gpt2", precision="auto", **kwargs):
    from models.sets.compare import compare_set

    return list(compare_set(LocalEngine(load_tiny(left, precision=precision)), LocalEngine(load_tiny(right, precision=precision)),
                            rows, GenerationSettings(max_new_tokens=6), task="qa", **kwargs))


def test_a_side_that_crashes_fails_its_remaining_rows_and_the_other_side_finishes(load_tiny, monkeypatch):
    import models.local as local

    real = local.generate_rows

    def crash_on_t5(loaded, rows, settings, **kwargs):
        iterator = real(loaded, rows, settings, **kwargs)
        if loaded.kind is Kind.SEQ2SEQ:
            yield next(iterator)
            raise RuntimeError("worker died")
        yield from iterator

    monkeypatch.setattr(local, "generate_rows", crash_on_t5)
    rows = [PromptRow(r["prompt"], r.get("reference")) for r in ROWS]
    result = _both(load_tiny, rows, batch_size=1)[-1]
    left = [row["left"]["stats"] for row in result.rows]
    assert sum(s["finish_reason"] == "error" and "worker died" in s["error"] for s in left) == 2
    assert all(row["right"]["stats"]["finish_reason"] == "length" for row in result.rows)
    assert result.summary["left"]["errors"] == 2 and result.summary["right"]["rows_done"] == 3


def test_closing_the_set_early_stops_both_workers(load_tiny):
    from models.sets.compare import compare_set

    stop = threading.Event()
    run = compare_set(LocalEngine(load_tiny("tiny-t5")), LocalEngine(load_tiny("tiny-gpt2")), [PromptRow(f"row {i}") for i in range(20)],
                      GenerationSettings(max_new_tokens=50), batch_size=1, stop_event=stop)
    next(run)
    run.close()
    assert stop.is_set()
    assert not [t for t in threading.enumerate() if t.name.startswith("set_")], "no worker thread left"


def test_run_set_takes_a_precision_per_side(app):
    final = Client(app.url, verbose=False).predict(left="tiny-gpt2", right="tiny-gpt2", rows=ROWS[:1], max_new_tokens=3,
                                                   precision_left="float32", precision_right="bfloat16",
                                                   api_name="/run_set")
    assert final["models"]["left"]["precision"] == "float32" and final["models"]["right"]["precision"] == "bfloat16"


# ----- token probabilities and where the two answers part -----

def _parts_at(left: str, right: str, word: int) -> bool:
    """The answers share their first ``word - 1`` words and differ at word ``word``."""
    a, b = left.split(), right.split()
    return a[:word - 1] == b[:word - 1] and a[word - 1:word] != b[word - 1:word]


def test_run_set_rows_carry_each_sides_tokens_and_where_two_models_part(app, load_tiny):
    final = Client(app.url, verbose=False).predict(left="tiny-t5", right="tiny-gpt2", rows=ROWS, max_new_tokens=7,
                                                   batch_size=1, api_name="/run_set")
    rows = [PromptRow(r["prompt"], r.get("reference")) for r in ROWS]
    for side, model in (("left", "tiny-t5"), ("right", "tiny-gpt2")):
        alone = sorted(generate_rows(load_tiny(model), rows, GenerationSettings(max_new_tokens=7), batch_size=1),
                       key=lambda r: r.index)
        for row, expected in zip(final["rows"], alone):
            answer = row[side]
            tokens = [TokenProb.from_dict(t) for t in answer["tokens"]]
            assert "".join(t.text for t in tokens) == answer["text"], "the tokens' texts add up to the answer"
            assert len(tokens) == answer["stats"]["output_tokens"] == 7 and answer["tokens_note"] is None
            assert all(0 <= t.prob <= 1 and len(t.top) == TOP_TOKENS for t in tokens)
            assert answer["tokens"] == [t.to_dict() for t in expected.tokens], "the tokens of a lone run"
            mean_log = statistics.fmean(math.log(max(t.prob, 1e-45)) for t in expected.tokens)
            assert answer["mean_logprob"] == pytest.approx(mean_log, abs=1e-5)
            assert answer["mean_prob"] == pytest.approx(statistics.fmean(t.prob for t in tokens), abs=1e-5)
    for row in final["rows"]:
        assert row["identical"] is False and _parts_at(row["left"]["text"], row["right"]["text"], row["differs_at"])
    summary = final["summary"]
    assert summary["identical_rows"] == 0
    for side in ("left", "right"):
        every = [t["prob"] for row in final["rows"] for t in row[side]["tokens"]]
        assert summary[side]["mean_prob"] == pytest.approx(statistics.fmean(every), abs=1e-5), "over all its tokens"


def test_the_same_model_on_both_sides_in_float32_gives_identical_rows(app):
    final = Client(app.url, verbose=False).predict(left="tiny-gpt2", right="tiny-gpt2", rows=ROWS, max_new_tokens=7,
                                                   precision_left="float32", precision_right="float32",
                                                   api_name="/run_set")
    assert all(row["identical"] is True and row["differs_at"] is None for row in final["rows"])
    assert [row["left"]["tokens"] for row in final["rows"]] == [row["right"]["tokens"] for row in final["rows"]]
    summary = final["summary"]
    assert summary["identical_rows"] == summary["rows"] == len(ROWS)
    assert summary["left"]["mean_prob"] == summary["right"]["mean_prob"] is not None


@pytest.fixture(scope="module")
def agreeing_and_parting(load_tiny):
    """Two real set results over the same rows: tiny-gpt2 against itself in float32 (every row identical), and
    tiny-t5 against tiny-gpt2 (every row parts)."""
    rows = [PromptRow(r["prompt"], r.get("reference")) for r in ROWS]
    same = _both(load_tiny, rows, left="tiny-gpt2", right="tiny-gpt2", precision="float32")[-1].to_dict()
    different = _both(load_tiny, rows)[-1].to_dict()
    return same, different


def test_the_filter_keeps_only_the_matching_rows_with_their_numbers(registry, cache, agreeing_and_parting):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    handlers, tab = page.handlers.prompt_set, page.handlers.prompt_set.tab
    same, different = agreeing_and_parting
    mixed = {"rows": [same["rows"][0], different["rows"][1], same["rows"][2], different["rows"][0]]}
    column = TABLE_HEADERS.index("identical / differs")
    shown = {show: handlers.filter_table({tab.result: mixed, tab.show: show})["data"] for show in ("all", "identical", "differs")}
    assert [row[0] for row in shown["all"]] == [1, 2, 3, 4]
    assert [row[0] for row in shown["identical"]] == [1, 3] and {row[column] for row in shown["identical"]} == {"identical"}
    assert [row[0] for row in shown["differs"]] == [2, 4]
    assert all(row[column] == f"differs at word {mixed['rows'][row[0] - 1]['differs_at']}" for row in shown["differs"])
    picked = handlers.select_row(types.SimpleNamespace(index=[1, 3], row_value=shown["differs"][1]))
    assert picked == 4, "a click on a filtered table rates the row it shows"
    pending = dict(different["rows"][0], right=None, identical=False, differs_at=None)
    assert table_rows([pending], "differs") == [] and table_rows([pending], "identical") == [], "not done: all only"


def test_the_tab_shows_confidence_agreement_and_filters_a_run(registry, cache):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    handlers, tab = page.handlers.prompt_set, page.handlers.prompt_set.tab
    data = tab_data(tab, builtin="short_answers", left="tiny-gpt2", right="tiny-gpt2", precision="float32",
                    show="differs")
    final = list(handlers.run(data, types.SimpleNamespace(session_hash="set-filter")))[-1]
    result, total = final[tab.result], len(builtin_set("short_answers").rows)
    assert final[tab.table]["data"] == [], "every row is identical: the differs filter keeps none"
    assert f"**{total} of {total} rows** identical" in final[tab.summary]
    assert "mean token probability" in final[tab.summary]
    table = handlers.filter_table({tab.result: result, tab.show: "identical"})["data"]
    conf = TABLE_HEADERS.index("left conf"), TABLE_HEADERS.index("right conf")
    assert len(table) == total and all(row[TABLE_HEADERS.index("identical / differs")] == "identical" for row in table)
    assert [row[conf[0]] for row in table] == [percent(row["left"]["mean_prob"]) for row in result["rows"]]
    assert [row[conf[1]] for row in table] == [row[conf[0]] for row in table]


def test_exports_carry_confidence_tokens_and_agreement(tmp_path, agreeing_and_parting):
    for name, result in zip(("same", "different"), agreeing_and_parting):
        csv_path, json_path, md_path = write_set_exports(dict(result, set=name), tmp_path / name)
        saved = json.loads(json_path.read_text(encoding="utf-8"))
        assert saved["rows"] == result["rows"] and saved["rows"][0]["left"]["tokens"], "JSON: every token"
        assert saved["summary"]["identical_rows"] == result["summary"]["identical_rows"]
        table = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
        for line, row in zip(table, result["rows"]):
            assert line["left conf"] == percent(row["left"]["mean_prob"])
            assert line["right conf"] == percent(row["right"]["mean_prob"])
            agreement = "identical" if row["identical"] else f"differs at word {row['differs_at']}"
            assert line["identical / differs"] == agreement
        identical = result["summary"]["identical_rows"]
        assert f"**{identical} of {len(ROWS)} rows** identical" in md_path.read_text(encoding="utf-8")
    assert [r["summary"]["identical_rows"] for r in agreeing_and_parting] == [len(ROWS), 0]
