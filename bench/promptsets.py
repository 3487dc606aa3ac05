"""Prompt sets: batched generation against one row at a time, on each side.

Self-contained measuring function for the benchmark's "prompt sets" section (the
section wrapper, report rows and target check live with the benchmark registry).

For each side it generates the same rows twice with greedy decoding through
:func:`models.sets.batch.generate_rows`: once with ``batch_size=1`` (one ``generate``
per row, no padding) and once batched (the automatic batch size unless one is
given), and reports wall time, total tokens/s, the speed-up, and how many rows
came out token for token the same. The rows are grouped into the batches the app
forms (similar prepared lengths together) and the two modes alternate batch by batch
(the batch's rows one at a time, then the same rows as one batch), so on a shared
machine both meet the same background load. Rows are taken in turn from the five
built-in sets: long summary passages, short questions and translations, instructions
and story starts.

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

from models.sets.batch import RowResult, auto_batch_size, generate_rows, plan_batches, row_prompt, row_settings
from models.loader import LoadedModel
from models.prompt import prepare
from models.sets.rows import BUILTIN_SETS, PromptRow, builtin_set
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


def app_batches(loaded: LoadedModel, rows: Sequence[PromptRow], settings: GenerationSettings,
                size: int) -> list[list[int]]:
    """The batches :func:`~models.sets.batch.generate_rows` forms for ``rows``: rows of similar prepared length together."""
    lengths = [len(prepare(loaded.kind, loaded.tokenizer, loaded.model.config, row_prompt(loaded.kind, row),
                           row_settings(settings, row)).input_ids) for row in rows]
    return plan_batches(lengths, size)


def _paired_pass(loaded: LoadedModel, rows: Sequence[PromptRow], settings: GenerationSettings,
                 size: int) -> tuple[float, float, dict[int, RowResult], dict[int, RowResult], list[float]]:
    """One pass over ``rows``, batch by batch as the app forms them: each batch's rows one at a time, then as a batch.

    Interleaving the two modes batch by batch (seconds apart) lets both see the same background
    load, so their ratio holds on a shared machine where absolute speeds drift.
    """
    single_s = batched_s = 0.0
    single: dict[int, RowResult] = {}
    batched: dict[int, RowResult] = {}
    ratios = []
    for batch in app_batches(loaded, rows, settings, size):
        chunk = [rows[i] for i in batch]
        t_single, found = _timed_run(loaded, chunk, settings, 1)
        single.update({batch[i]: r for i, r in found.items()})
        t_batched, found = _timed_run(loaded, chunk, settings, size)
        batched.update({batch[i]: r for i, r in found.items()})
        single_s, batched_s = single_s + t_single, batched_s + t_batched
        ratios.append(t_single / t_batched)
    return single_s, batched_s, single, batched, ratios


def measure_side(loaded: LoadedModel, rows: Sequence[PromptRow], settings: GenerationSettings, *,
                 batch_size: int = 0, repeats: int = 1) -> dict[str, Any]:
    """One side's figures: one row at a time against batched, batch by batch, medians over ``repeats``.

    Args:
        loaded: the model.
        rows: the prompts.
        settings: greedy settings (agreement needs deterministic decoding).
        batch_size: rows per batch for the batched run; 0 = :func:`~models.sets.batch.auto_batch_size`.
        repeats: passes over the rows; times are medians of the passes, agreement is from the last.
    """
    size = batch_size or auto_batch_size(loaded, len(rows))
    warm_up = GenerationSettings.from_mapping({**settings.to_dict(), "max_new_tokens": 2})
    list(generate_rows(loaded, rows[:2], warm_up, batch_size=2))  # first-call allocations are not measured
    single_times, batched_times, ratios = [], [], []
    for _ in range(repeats):
        t_single, t_batched, single, batched, pass_ratios = _paired_pass(loaded, rows, settings, size)
        single_times.append(t_single)
        batched_times.append(t_batched)
        ratios.extend(pass_ratios)
    single_s, batched_s = statistics.median(single_times), statistics.median(batched_times)
    single_tokens = sum(r.output_tokens for r in single.values())
    batched_tokens = sum(r.output_tokens for r in batched.values())
    return {
        "model": loaded.description.name, "params": loaded.description.params,
        "dtype": str(loaded.model.dtype).removeprefix("torch."),
        "device": loaded.description.device, "batch_size": size,
        "single_seconds": single_s, "batched_seconds": batched_s,
        "single_seconds_each": single_times, "batched_seconds_each": batched_times,
        "single_tokens": single_tokens, "batched_tokens": batched_tokens,
        "single_tokens_per_second": single_tokens / single_s, "batched_tokens_per_second": batched_tokens / batched_s,
        "speedup": single_s / batched_s, "batch_speedups": ratios,
        "batch_speedup_median": statistics.median(ratios),
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
        ``speedup``, ``batch_speedups`` (each batch's ratio) and their median
        ``batch_speedup_median`` (robust to a load spike hitting one batch),
        ``single_seconds_each`` / ``batched_seconds_each`` (every repeat),
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
