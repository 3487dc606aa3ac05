"""The benchmark: its registry of sections, what its summaries and report make of known samples,
how a failing section is reported, real sections on tiny models, and ``python -m bench --quick``
end to end.

Nothing here asserts a timing target (a shared 2-core machine makes timings noisy, and the
benchmark reports its targets rather than enforcing them); it asserts what the figures are made of.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from bench.cli import chosen_sections, parse_args
from bench.report import table
from bench.runner import run_order, run_sections
from bench.sections import REGISTRY, Table, by_key, confidence, loading, row, stop, streaming
from models import Kind

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TABLE_HEADER = "| # | Measure | Seq2seq | Causal | Target | Met |"


def _figures(value: Any) -> Iterator[dict[str, Any]]:
    """Every figure (``{"median", "samples", "n", "unit"}``) anywhere in a JSON value."""
    if isinstance(value, dict):
        if {"median", "samples", "n", "unit"} <= set(value):
            yield value
        for item in value.values():
            yield from _figures(item)
    elif isinstance(value, list):
        for item in value:
            yield from _figures(item)


# ----------------------------------------------------------------------------- the registry


def test_registry_numbers_and_keys_are_unique_and_the_cli_selects_from_it() -> None:
    numbers = [s.number for s in REGISTRY]
    assert numbers == list(range(1, len(REGISTRY) + 1))
    assert len({s.key for s in REGISTRY}) == len(REGISTRY)
    assert chosen_sections(None, full=True) == list(REGISTRY)
    assert [s.key for s in chosen_sections(parse_args(["--sections", "4,1"]).sections)] == ["streaming_overhead",
                                                                                          "stop_latency"]
    with pytest.raises(ValueError, match=f"no section {len(REGISTRY) + 1}"):
        chosen_sections([1, len(REGISTRY) + 1])
    with pytest.raises(SystemExit):
        parse_args(["--sections", "one"])
    with pytest.raises(SystemExit):
        parse_args(["--full", "--sections", "1"])


def test_the_default_run_is_the_quick_look_and_full_adds_the_long_sections() -> None:
    default = chosen_sections(parse_args([]).sections, parse_args([]).full)
    assert [s.number for s in default] == [1, 2, 3, 4, 5, 6, 7, 12]
    assert not any(s.long for s in default)
    assert {s.number for s in REGISTRY if s.long} == {8, 9, 10, 11, 13}
    assert chosen_sections(None, parse_args(["--full"]).full) == list(REGISTRY)
    assert [s.number for s in chosen_sections(parse_args(["--sections", "13"]).sections)] == [13], "a long one by number"


def test_the_report_prints_every_registered_section_under_its_number() -> None:
    entries = {s.key: s.entry(Table([row(f"measure of {s.key}", {Kind.SEQ2SEQ: "a", Kind.CAUSAL: "b"}, "t", None)], {}))
               for s in REGISTRY}
    lines = table(entries)
    assert lines[0] == TABLE_HEADER
    assert lines[2:] == [f"| {s.number} | measure of {s.key} | a | b | t | — |" for s in REGISTRY]


def test_loading_runs_first_and_the_app_sections_run_together() -> None:
    ordered = run_order(REGISTRY)
    assert ordered[0].key == "loading"
    app_positions = [i for i, s in enumerate(ordered) if s.needs_app]
    assert app_positions == list(range(app_positions[0], app_positions[0] + len(app_positions)))
    assert {s.key for s in ordered if s.needs_app} == {"time_to_first_token", "side_by_side", "stop_latency"}


# ----------------------------------------------------------------------------- known samples -> rows


def test_streaming_summary_of_known_samples_gives_the_expected_row() -> None:
    samples = streaming.Samples({
        Kind.SEQ2SEQ: streaming.SideSamples([1.0, 1.0, 1.0], [100, 100, 100], [1.25, 1.25, 1.25], [100, 100, 100]),
        Kind.CAUSAL: streaming.SideSamples([2.0], [100], [2.0], [100]),
    })
    entry = by_key("streaming_overhead").entry(streaming.summarize(samples))
    assert table({"streaming_overhead": entry})[2:] == [
        "| 1 | Streaming vs plain `generate`: tokens/s ratio, median of paired runs (stream vs generate tokens/s) "
        "| 0.80 (80.0 tok/s vs 100 tok/s) | 1.00 (50.0 tok/s vs 50.0 tok/s) | ≥ 0.95 | ❌ no |",
        "| 1 | Streaming cost per token (stream − generate time) | 2.5 ms a token (100 tokens) "
        "| 0.000 ms a token (100 tokens) | reported | — |",
    ]
    assert entry["met"] is False
    assert entry["results"]["seq2seq"]["pair_ratios"]["samples"] == [0.8, 0.8, 0.8]


def _answers(step: float, steps: int = 11, ids: list[int] | None = None) -> list[confidence.Answer]:
    """Two runs whose decoding steps all take ``step`` seconds (the call: ``steps`` tokens in ``steps * step``)."""
    return [confidence.Answer(steps * step, steps, ids or list(range(steps)), [step] * (steps - 1)) for _ in range(2)]


def test_confidence_summary_pairs_with_and_without_and_judges_the_recorders_own_time() -> None:
    def model(name: str, kind: str, precision: str, with_step: float, ids: list[int] | None = None,
              own: float = 0.0005) -> Any:
        m = confidence.ModelSamples(name, kind, False, precision, dtype="bfloat16" if precision == "auto" else precision,
                                    vocabulary=100)
        m.runs = {"with": _answers(with_step, ids=ids), "without": _answers(0.010)}
        m.build_seconds, m.profiles = [0.002, 0.004], [confidence.Profile(10, 0.8 * own, 0.2 * own, 0.1)]
        m.idle_hook_seconds = 0.000005
        return m

    samples = confidence.Samples(11, 2, "cpu", [model("t5", "seq2seq", "float32", 0.0101, own=0.004),
                                                model("llama", "causal", "float32", 0.0125),
                                                model("t5", "seq2seq", "auto", 0.010, ids=[9] * 11),
                                                model("llama", "causal", "auto", 0.0102)])
    entry = by_key("confidence").entry(confidence.summarize(samples))
    first = entry["rows"][0]
    assert first["measure"].startswith("Token probabilities recorded, float32: decoding tokens/s cost")
    # 100 tok/s without; with: 1 / 0.0101 s = 99.0 tok/s (a 1.0 % cost) and 1 / 0.0125 s = 80 tok/s (20 %)
    assert (first["seq2seq"], first["causal"], first["met"]) == (
        "1.0 % (99.0 tok/s with vs 100 tok/s without; pairs 1.0 % to 1.0 %)",
        "20.0 % (80.0 tok/s with vs 100 tok/s without; pairs 20.0 % to 20.0 %)", None)
    assert entry["rows"][1]["measure"].startswith("Token probabilities recorded, auto (bfloat16):")
    own = {r["measure"].split(":")[0]: r for r in entry["rows"] if r["measure"].startswith("Recorder's own time")}
    assert own["Recorder's own time, float32"]["met"] is False, "4 ms (10 steps × 0.4 ms) of a 100 ms generate: 4 % > 3 %"
    assert own["Recorder's own time, float32"]["seq2seq"] == "0.400 ms a token = 4.0 % of generate (vocabulary 100)"
    assert own["Recorder's own time, auto (bfloat16)"]["met"] is True
    assert entry["met"] is False, "one model over 3 % fails the section"
    llama = entry["results"]["models"]["llama float32"]
    assert llama["decoding"]["cost"] == pytest.approx(0.2) and llama["whole_call"]["cost"] == pytest.approx(0.2)
    assert llama["recorder"]["share_of_generate"]["median"] == pytest.approx(0.005)
    assert llama["recorder"]["see_seconds_per_token"] == pytest.approx(0.00004), "0.4 ms over 10 steps"
    assert llama["build_tokens_seconds"]["median"] == pytest.approx(0.003)
    assert llama["idle_hook"]["share_of_step"] == pytest.approx(0.0005)
    assert entry["results"]["models"]["t5 auto"]["same_answer"] == {"identical": 0, "runs": 2}
    assert "t5 auto: the answer with the recorder differed from the one without in 2/2 repetitions" in entry["notes"]


def test_stop_summary_leaves_out_runs_that_ended_before_the_stop() -> None:
    def path(latencies: list[float | None]) -> stop.PathSamples:
        runs = stop.PathSamples()
        for latency in latencies:
            runs.add(latency, None, 0.010)
        return runs

    sides = {kind: {name: path([0.020, None, 0.030]) for name in stop.PATHS} for kind in (Kind.SEQ2SEQ, Kind.CAUSAL)}
    sides[Kind.CAUSAL]["direct"] = path([0.5, 0.5, None])  # over one token + 100 ms
    result = stop.summarize(stop.Samples(reps=3, stop_tokens=64, sides=sides))
    first = result.rows[0]
    assert (first["seq2seq"], first["causal"], first["met"]) == ("25.0 ms (limit 110 ms)", "500 ms (limit 110 ms)", False)
    assert all(r["met"] for r in result.rows[1:])
    assert "seq2seq direct: 1 run(s) ended before the stop and were not counted" in result.notes
    assert result.results["seq2seq"]["direct"]["latency_seconds"]["n"] == 2


def test_loading_adds_the_gguf_rows_and_target_only_for_a_gguf_model() -> None:
    sides = {Kind.SEQ2SEQ: loading.SideSamples([0.04], [2e-6]),
             Kind.CAUSAL: loading.SideSamples([0.2], [5e-6], gguf_first=[20.0, 24.0])}
    entry = by_key("loading").entry(loading.summarize(loading.Samples(gguf_reps=2, sides=sides)))
    assert entry["target"] == "cached load < 1.0 ms; GGUF cached conversion ≥ 5× faster than first"
    gguf = entry["rows"][3]
    assert (gguf["seq2seq"], gguf["causal"], gguf["met"]) == ("–", "0.20 s (110× faster)", True)
    without = by_key("loading").entry(loading.summarize(loading.Samples(1, {Kind.SEQ2SEQ: sides[Kind.SEQ2SEQ]})))
    assert without["target"] == "cached load < 1.0 ms" and len(without["rows"]) == 2


# ----------------------------------------------------------------------------- failures


def _fake(key: str, measure: Any) -> Any:
    """The registered section ``key`` with a stand-in measurement (samples: one number)."""
    return dataclasses.replace(by_key(key), measure=measure,
                               summarize=lambda value: Table([row("figure", str(value), "reported", None)], {"v": value}))


def _boom(_ctx: Any) -> float:
    raise RuntimeError("boom")


def test_a_failing_section_is_reported_without_losing_the_others() -> None:
    chosen = [_fake("streaming_overhead", lambda ctx: 1.5), _fake("eight_bit", _boom), _fake("startup", lambda ctx: 7.0)]
    entries, ok = run_sections(SimpleNamespace(log=lambda message: None, served=None), chosen)
    assert ok is False
    assert list(entries) == ["streaming_overhead", "eight_bit", "startup"]
    assert entries["streaming_overhead"]["results"] == {"v": 1.5} and entries["startup"]["results"] == {"v": 7.0}
    assert entries["eight_bit"]["error"] == "RuntimeError: boom" and entries["eight_bit"]["rows"] == []
    assert table(entries)[3] == "| 5 | 5. 8-bit: failed | RuntimeError: boom | | 8-bit memory ≤ 0.6 × full precision | ❌ no |"


def test_an_app_that_cannot_be_served_fails_only_the_sections_that_need_it() -> None:
    def no_app(ctx: Any) -> Any:
        raise OSError("no port")

    chosen = [_fake("side_by_side", lambda ctx: ctx.app), _fake("stop_latency", lambda ctx: ctx.app),
              _fake("loading", lambda ctx: 0.1)]
    entries, ok = run_sections(SimpleNamespace(log=lambda message: None, served=None), chosen, open_app=no_app)
    assert ok is False
    assert entries["loading"]["results"] == {"v": 0.1}
    assert entries["side_by_side"]["error"] == entries["stop_latency"]["error"] == "OSError: no port"


# ----------------------------------------------------------------------------- real sections on tiny models


@pytest.fixture(scope="module")
def tiny_context(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from bench.context import Context
    from bench.subjects import tiny_subject
    from models import ModelCache, ModelRegistry

    work = tmp_path_factory.mktemp("bench-tiny")
    registry = ModelRegistry(online=False)
    subjects = {kind: tiny_subject(kind, work / "models", registry, wide=False) for kind in (Kind.SEQ2SEQ, Kind.CAUSAL)}
    return Context(subjects=subjects, registry=registry, cache=ModelCache(4), reps=2, prompt="Tell me about dragons.",
                   max_new_tokens=8, ttft_tokens=4, stop_tokens=256, gguf_reps=1, model_dir=work / "models", work=work,
                   log=lambda message: None)


def test_loading_on_tiny_models_times_every_load_and_keeps_the_last(tiny_context: Any) -> None:
    samples = loading.measure(tiny_context)
    for kind, side in samples.sides.items():
        assert len(side.cold) == len(side.cached) == 2 and side.gguf_first is None
        assert min(side.cold) > 0 and min(side.cached) > 0
        assert tiny_context.cache.peek(tiny_context.name(kind)) is tiny_context.loaded[kind]


def test_streaming_on_tiny_models_pairs_runs_of_the_full_length(tiny_context: Any) -> None:
    samples = streaming.measure(tiny_context)
    assert set(samples.sides) == {Kind.SEQ2SEQ, Kind.CAUSAL}
    for kind, side in samples.sides.items():
        # the tiny models never stop early: every run makes exactly max_new_tokens on both paths
        assert side.generate_tokens == side.stream_tokens == [8, 8]
        assert min(side.generate_seconds + side.stream_seconds) > 0
        assert tiny_context.token_time[kind] > 0
    first = streaming.summarize(samples).rows[0]
    assert first["met"] in (True, False) and "tok/s vs" in first["seq2seq"] and "tok/s vs" in first["causal"]


def test_confidence_on_a_tiny_model_records_every_token_and_changes_no_answer(tiny_context: Any) -> None:
    from models import Precision

    samples = confidence.measure_model(tiny_context, Kind.CAUSAL, Precision.FLOAT32, 8)
    assert [len(samples.runs[v]) for v in confidence.VARIANTS] == [2, 2]
    for with_run, without_run in zip(samples.runs["with"], samples.runs["without"]):
        assert with_run.ids == without_run.ids and with_run.steps == 8, "the tiny model never stops early"
        assert len(with_run.step_seconds) == 7, "a stamp per step: 7 intervals between 8 steps"
    assert samples.tokens_built == [8, 8], "build_tokens got one entry per generated token, every answer"
    assert len(samples.build_seconds) == 2 and min(samples.build_seconds) > 0
    profile = samples.profiles[0]
    assert profile.steps == 8 and 0 < profile.see_seconds + profile.call_seconds < profile.generate_seconds
    assert samples.vocabulary > 0 and set(samples.ops) >= {"see: log_softmax (whole vocabulary)", "see: topk of the log-probs"}
    assert samples.idle_hook_seconds is not None and samples.idle_hook_seconds < 0.001


# ----------------------------------------------------------------------------- end to end


def test_bench_quick_run_writes_every_section_with_figures(tmp_path: Path) -> None:
    committed = {p.name: p.stat().st_mtime_ns for p in RESULTS.iterdir()}
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--full", "--reps", "1", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in RESULTS.iterdir()} == committed  # --out kept them apart

    result = json.loads((tmp_path / "latest.json").read_text())
    assert (result["mode"], result["quick"], result["reps"]) == ("tiny", True, 1)
    assert result["machine"]["cores"] >= 1 and result["machine"]["versions"]["torch"]
    assert [m["name"] for m in result["models"].values()] == ["tiny-t5", "tiny-llama"]
    assert list(result["sections"]) == [s.key for s in REGISTRY]

    markdown = (tmp_path / "latest.md").read_text()
    for section in REGISTRY:
        entry = result["sections"][section.key]
        assert "error" not in entry, f"{section.key}: {entry.get('error')}"
        figures = list(_figures(entry["results"]))
        assert figures, f"{section.key} has no figures"
        for fig in figures:
            assert fig["n"] == len(fig["samples"]) <= 1
        assert any(fig["n"] == 1 and fig["median"] > 0 for fig in figures), section.key
        printed = [line for line in markdown.splitlines() if line.startswith(f"| {section.number} | ")]
        assert len(printed) == len(entry["rows"]) and entry["rows"][0]["measure"] in printed[0]
        assert f"**{section.heading}** — target: {entry['target']}" in markdown
    assert TABLE_HEADER in proc.stdout  # the table is printed too


# ----------------------------------------------------------------------------- section 13: one answer on CPU


def _lone_model(kind: str, precision: str, steps: dict[str, float], same: dict[str, bool]) -> Any:
    """One model whose every decoding step of option ``o`` takes ``steps[o]`` seconds; its ids equal current's
    unless ``same[o]`` is False."""
    from bench.sections import lone_answer

    m = lone_answer.ModelSamples(f"m-{kind}", kind, True, precision, dtype=precision, weight_bytes=10**8)
    m.runs = {o: _answers(step, ids=None if same.get(o, True) else [7] * 11) for o, step in steps.items()}
    return m


def test_lone_answer_summary_gives_ratios_bandwidth_fractions_and_skips_options_that_change_float32_tokens() -> None:
    from bench.sections import lone_answer

    steps = {"current": 0.010, "eager": 0.008, "static": 0.0125, "compiled": 0.005, "1 thread": 0.0125}
    models = [_lone_model(k, p, steps, {"compiled": p != "float32"}) for k in ("seq2seq", "causal")
              for p in ("float32", "bfloat16")]
    models[-1].compile_seconds = 90.0
    samples = lone_answer.Samples(11, 2, 2, 2, {"avx512_bf16": True}, True, 4e9, 2**20, models)  # limit 40 tok/s
    entry = by_key("lone_answer").entry(lone_answer.summarize(samples))
    causal = entry["results"]["models"]["m-causal float32"]
    assert causal["bandwidth_limit_tokens_per_second"] == pytest.approx(40.0)
    assert causal["options"]["current"]["tokens_per_second"]["median"] == pytest.approx(100.0)
    assert causal["options"]["eager"]["ratio_to_current"] == pytest.approx(1.25)
    assert causal["options"]["static"]["bandwidth_fraction"] == pytest.approx(2.0)
    assert causal["options"]["compiled"]["identical_to_current"] == 0
    # float32: the compiled option (2×) changed the tokens, so eager (1.25×) is the best that keeps them
    assert lone_answer.best(causal) == ("eager", pytest.approx(1.25))
    rows = {r["measure"]: r for r in entry["rows"]}
    best = rows["Best option for a lone causal answer in auto precision (bfloat16), tokens identical where float32"]
    assert (best["causal"], best["met"]) == ("compiled: 2.00×", True), "bfloat16: tokens may part, 2× counts"
    assert rows["Best fraction of the bandwidth limit, causal, bfloat16 (native here)"]["causal"] == "500 %"
    assert "compiled 2.00× (0/2 same)" in rows["One answer, float32: each option's tokens/s ratio to today's "
                                               "(median of the pairs)"]["causal"]
    assert rows["Compile time of the decoding step (bfloat16, first call less a normal run)"]["causal"] == "90.0 s"


def test_lone_answer_reads_cpu_flags_and_counts_the_weights_a_token_reads(tmp_path: Path, load_tiny: Any) -> None:
    from bench.sections import lone_answer

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 sse\n")
    assert lone_answer.cpu_flags(info) == {"avx512f": True, "avx512_bf16": True, "amx_bf16": False, "amx_tile": False}
    assert not any(lone_answer.cpu_flags(tmp_path / "missing").values())
    t5 = load_tiny("tiny-t5", precision="float32")
    head = t5.model.get_output_embeddings().weight
    decoder = sum(p.numel() * 4 for n, p in t5.model.named_parameters() if not n.startswith("encoder.")
                  and "relative_attention_bias" not in n)  # a lookup table: one row a step
    assert head.data_ptr() == t5.model.get_input_embeddings().weight.data_ptr(), "tiny-t5 ties its head"
    assert 0 < lone_answer.bytes_per_token(t5) == decoder
    llama = load_tiny("tiny-llama", precision="float32")  # untied: its input embedding is a lookup, its head is read
    embedding = llama.model.get_input_embeddings().weight.numel() * 4
    assert lone_answer.bytes_per_token(llama) == sum(p.numel() * 4 for p in llama.model.parameters()) - embedding
    assert lone_answer.copy_bandwidth(2**20, reps=2) > 1e8


def test_lone_answer_options_run_the_apps_call_and_restore_the_model(load_tiny: Any) -> None:
    import torch

    from bench.runs import prepared
    from bench.sections import lone_answer
    from models import GenerationSettings
    from models.prompt import generate_call

    loaded = load_tiny("tiny-llama", precision="float32")
    settings = GenerationSettings(max_new_tokens=6)
    call = generate_call(loaded, prepared(loaded, "Tell me about dragons.", settings), settings)
    threads, attn = torch.get_num_threads(), loaded.model.config._attn_implementation
    options = lone_answer.runs(2)
    answers = {name: lone_answer.run_option(loaded, call, options[name]) for name in ("current", "eager", "static",
                                                                                        "1 thread")}
    assert all(a.steps == 6 for a in answers.values()), "the tiny model never stops early"
    assert answers["static"].ids == answers["current"].ids == answers["1 thread"].ids
    assert (torch.get_num_threads(), loaded.model.config._attn_implementation) == (threads, attn)


# ----------------------------------------------------------------------------- section 12: the leaderboard (no model)


def _ratings_samples(totals: list[float]) -> dict[str, Any]:
    return {"votes": 100_000, "blind_votes": 80_000, "contestants": 12, "tasks": 6, "boards": 7, "bootstrap": 200,
            "seconds": {"table": [t / 3 for t in totals], "boards": [2 * t / 3 for t in totals], "total": totals},
            "rated": 12, "max_rating_error": 50.0, "max_lc_rating_error": 12.0, "lc_intervals_covering": 8,
            "length_coefficient": 0.86, "length_pull": 1.0}


def test_ratings_summary_judges_the_median_whole_refresh_against_2_s() -> None:
    from bench.sections import ratings

    slow = by_key("ratings").entry(ratings.summarize(_ratings_samples([1.0, 3.0, 2.5])))
    assert slow["met"] is False and slow["rows"][0]["seq2seq"].startswith("2.50 s")
    fast = by_key("ratings").entry(ratings.summarize(_ratings_samples([0.4, 0.3, 0.5])))
    assert fast["met"] is True and fast["results"]["figures"]["total"]["median"] == 0.4
    assert "length-controlled ones at most 12 Elo" in fast["rows"][1]["seq2seq"]


def test_ratings_measure_times_every_step_and_recovers_the_simulated_strengths() -> None:
    from bench.sections import ratings

    samples = ratings.measure(SimpleNamespace(quick=True, reps=1, log=lambda message: None))
    assert samples["votes"] == ratings.QUICK_VOTES and samples["boards"] == 1 + samples["tasks"]
    assert all(len(values) == 1 and values[0] > 0 for values in samples["seconds"].values())
    assert samples["rated"] == samples["contestants"] == 12
    assert samples["max_lc_rating_error"] < samples["max_rating_error"], "length control undoes the length pull"
    assert samples["max_lc_rating_error"] < 40
