"""Prompt sets: batched generation against one row at a time, on each side.

Self-contained measuring function for the benchmark's "prompt sets" section (the
section wrapper, report rows and target check live with the benchmark registry).

For each side it generates the same rows twice with greedy decoding through
:func:`models.batch.generate_rows`: once with ``batch_size=1`` (one ``generate``
per row, no padding) and once batched (the automatic batch size unless one is
given), and reports wall time, total tokens/s, the speed-up, and how many rows
came out token for token the same.

Example:
    >>> figures = measure_prompt_sets({"causal": smollm2, "seq2seq": tiny_t5})  # doctest: +SKIP
    >>> figures["sides"]["causal"]["speedup"]                                   # doctest: +SKIP
    4.1
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Mapping, Sequence

import torch

from models.batch import RowResult, auto_batch_size, generate_rows
from models.loader import LoadedModel
from models.promptset import BUILTIN_SETS, PromptRow, builtin_set
from models.settings import GenerationSettings

TARGET_CAUSAL_SPEEDUP = 3.0  # batched vs one row at a time, causal side, on the 2-core CPU


def benchmark_rows(count: int) -> list[PromptRow]:
    """``count`` rows taken in turn from each built-in set (so lengths and tasks are mixed), repeating if needed.

    Args:
        count: rows wanted (>= 1).
    """
    sets = [builtin_set(name).rows for name in BUILTIN_SETS]
    rows = [s[i] for i in range(max(len(s) for s in sets)) for s in sets if i < len(s)]
    return [rows[i % len(rows)] for i in range(count)]


def _timed_run(loaded: LoadedModel, rows: Sequence[PromptRow], settings: GenerationSettings,
               batch_size: int) -> tuple[float, dict[int, RowResult]]:
    started = time.perf_counter()
    results = {r.index: r for r in generate_rows(loaded, rows, settings, batch_size=batch_size)}
    return time.perf_counter() - started, results


def _agreement(single: Mapping[int, RowResult], batched: Mapping[int, RowResult]) -> dict[str, Any]:
    """Share of rows with identical output ids, and where the others first differ."""
    first_diffs = []
    for i, one in single.items():
        a, b = one.output_ids, batched[i].output_ids
        if a != b:
            first_diffs.append(next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))))
    same = len(single) - len(first_diffs)
    return {"rows_identical": same, "agreement": same / len(single) if single else 0.0,
            "first_difference_at": sorted(first_diffs)}


def measure_side(loaded: LoadedModel, rows: Sequence[PromptRow], settings: GenerationSettings, *,
                 batch_size: int = 0, repeats: int = 1) -> dict[str, Any]:
    """One side's figures: one row at a time against batched, medians over ``repeats``.

    Args:
        loaded: the model.
        rows: the prompts.
        settings: greedy settings (agreement needs deterministic decoding).
        batch_size: rows per batch for the batched run; 0 = :func:`~models.batch.auto_batch_size`.
        repeats: runs of each mode; times are medians, agreement is from the last pair.
    """
    size = batch_size or auto_batch_size(loaded, len(rows))
    warm_up = GenerationSettings.from_mapping({**settings.to_dict(), "max_new_tokens": 2})
    list(generate_rows(loaded, rows[:2], warm_up, batch_size=2))  # first-call allocations are not measured
    single_times, batched_times = [], []
    for _ in range(repeats):
        t, single = _timed_run(loaded, rows, settings, 1)
        single_times.append(t)
        t, batched = _timed_run(loaded, rows, settings, size)
        batched_times.append(t)
    single_s, batched_s = statistics.median(single_times), statistics.median(batched_times)
    single_tokens = sum(r.output_tokens for r in single.values())
    batched_tokens = sum(r.output_tokens for r in batched.values())
    return {
        "model": loaded.description.name, "params": loaded.description.params, "dtype": str(loaded.model.dtype).removeprefix("torch."),
        "device": loaded.description.device, "batch_size": size,
        "single_seconds": single_s, "batched_seconds": batched_s,
        "single_seconds_each": single_times, "batched_seconds_each": batched_times,
        "single_tokens": single_tokens, "batched_tokens": batched_tokens,
        "single_tokens_per_second": single_tokens / single_s, "batched_tokens_per_second": batched_tokens / batched_s,
        "speedup": single_s / batched_s,
        "errors": sum(r.error is not None for r in (*single.values(), *batched.values())),
        **_agreement(single, batched),
    }


def measure_prompt_sets(loaded_by_kind: Mapping[Any, LoadedModel], rows: int = 24, max_new_tokens: int = 32, *,
                        batch_size: int = 0, repeats: int = 1) -> dict[str, Any]:
    """Batched against one-row-at-a-time generation of a prompt set, per side; plain numbers only.

    Args:
        loaded_by_kind: the models to measure, keyed by kind (``Kind.CAUSAL`` / ``"causal"``,
            ``Kind.SEQ2SEQ`` / ``"seq2seq"``); each side is measured alone, one after the other.
        rows: prompts per run, taken in turn from the built-in sets.
        max_new_tokens: greedy tokens per row at most (rows may end earlier at their eos token).
        batch_size: batch size for the batched runs; 0 = automatic per model.
        repeats: runs of each mode per side (times are medians).

    Returns:
        ``{"rows", "max_new_tokens", "torch_threads", "load_average_before", "load_average_after",
        "target_causal_speedup", "sides": {kind: {...}}}``; each side holds ``single_seconds``,
        ``batched_seconds``, ``single_tokens_per_second``, ``batched_tokens_per_second``,
        ``speedup``, ``single_seconds_each`` / ``batched_seconds_each`` (every repeat),
        ``batch_size``, ``agreement`` (share of rows with identical greedy
        output ids), ``rows_identical``, ``first_difference_at`` (token positions of the first
        difference in the other rows), ``errors`` and the model's name, size, dtype and device.
    """
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    prompt_rows = benchmark_rows(rows)
    load_before = os.getloadavg()
    sides = {getattr(kind, "value", str(kind)): measure_side(loaded, prompt_rows, settings,
                                                             batch_size=batch_size, repeats=repeats)
             for kind, loaded in loaded_by_kind.items()}
    return {"rows": rows, "max_new_tokens": max_new_tokens, "torch_threads": torch.get_num_threads(),
            "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
            "target_causal_speedup": TARGET_CAUSAL_SPEEDUP, "sides": sides}
