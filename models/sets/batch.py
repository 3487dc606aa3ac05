"""Batched generation of many prompts on one model, for prompt sets.

Rows are prepared one by one with :func:`~models.prompt.prepare` (chat template,
task prefix, context caps, exactly as for a single prompt), grouped into batches
(by input length, so a batch holds little padding), padded, and generated with one
``model.generate`` per batch and no streamer. Each row's result is yielded as soon
as its batch is done, so a caller can fill a table row by row.

Padding: a decoder-only batch is padded on the LEFT with an attention mask, so every
row's last prompt token sits at the end and the new tokens follow it (right padding
would make the model continue after pad tokens). An encoder-decoder batch pads the
encoder input on the right (the decoder starts from its own start token either way).

Batched greedy output equals one-at-a-time output only up to floating point: padded
rows go through matrix products of another shape, so sums are taken in another order
and can differ in the last bits. A greedy token flips when its two best logits are
closer than that difference, and every later token follows the flip. Measured on the
2-core CPU, 32 new tokens, batch 8:

- float32: no flip. Tiny models 768 of 768 rows identical (T5, BART, GPT-2, Llama, three
  seeds each, the 64 built-in prompts in input order, so batches carry the most padding);
  the real SmolLM2-135M 24 of 24 (the benchmark's mixed rows). ``tests/test_batch.py``
  asserts equality in float32.
- bfloat16 (the loader's ``auto`` on a CPU with native bf16) keeps 8 significant bits, so
  padding moves logits by up to ~0.07 (tiny GPT-2) and ~0.6 (SmolLM2, whose logits reach ~32)
  and near-ties flip: tiny models 744 of 768 rows identical (first difference at tokens
  0–31, median 19); SmolLM2 13 of 24 (first differences at tokens 0, 2, 3, 4, 4, 5, 9, 17,
  20, 22, 29). Neither output is the "right" one: both are greedy decodes of the same model
  within bf16 rounding. Run a set in float32 when rows must match the single-prompt page.

Sampled rows (temperature > 0) draw from the batch's own generator seeded with the
run's seed (:func:`~models.stream.sampling_kwargs`), so another thread sampling at the
same time does not shift them: they repeat for the same rows, batch size and seed, but
differ from one-at-a-time sampling (a batch draws for all its rows from one stream).

Stop: one ``threading.Event``; a stopping criterion checks it after every decoding
step and returns one flag per row, so the batch ends within one token. Rows already
finished keep their output; rows of batches that never started are reported as
``stopped`` with no output.

Errors: when a batch fails, its rows are retried one by one, so only the failing
row carries the error and no finished row is lost.

Example:
    >>> for result in generate_rows(loaded, ["Hi", "Hello"], GenerationSettings(max_new_tokens=16)):  # doctest: +SKIP
    ...     print(result.index, result.finish_reason.value, result.text)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from transformers import StoppingCriteriaList

from ..confidence import NO_TOKENS_NOTE, TokenRecorder
from ..generation import StopOnEvents, error_message, new_tokens, pad_rows, sampling_kwargs
from ..loader import LoadedModel
from ..prompt import eos_token_ids, generate_call, prepare
from ..settings import GenerationSettings
from ..types import PreparedPrompt, RowResult, finish_reason
from .rows import PromptRow, row_prompt, row_settings


@dataclass
class _Item:
    """A prepared row waiting for its batch."""

    index: int
    prepared: PreparedPrompt
    options: dict[str, Any]
    pad_token_id: int


def auto_batch_size(loaded: LoadedModel, rows: int | None = None) -> int:
    """A batch size for ``loaded`` on its device, at most ``rows``.

    On CPU a batch turns decoding from memory-bound to compute-bound: on the 2-core
    machine SmolLM2-135M (fp32) decodes 21 tok/s alone and 92–122 tok/s in total at a
    batch of 8. 8 keeps padding waste, memory and the time to a batch's first result small;
    larger batches were not measured reliably (the shared machine gave ±4x noise). Bigger
    models are compute-bound sooner, so they get smaller batches. On a GPU, batches are cheap.

    Args:
        loaded: the model (its parameter count and device decide).
        rows: rows to generate; the batch is never larger.
    """
    params = loaded.description.params
    on_gpu = str(loaded.description.device).startswith("cuda")
    if on_gpu:
        size = 32 if params < 1e9 else 16 if params < 4e9 else 8
    else:
        size = 8 if params < 400e6 else 4 if params < 1.5e9 else 2
    return max(1, min(size, rows)) if rows is not None else size


def _prepare_item(loaded: LoadedModel, index: int, row: PromptRow, settings: GenerationSettings) -> _Item:
    settings = row_settings(settings, row)
    prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, row_prompt(loaded.kind, row), settings)
    call = generate_call(loaded, prepared, settings)
    return _Item(index, prepared, dict(call.options), int(call.pad_token_id))


def _row_result(loaded: LoadedModel, item: _Item, ids: list[int], eos: set[int], stopped: bool,
                batch_size: int, batch_seconds: float, max_new: int, tokens: list | None) -> RowResult:
    """Describe one output row (its new tokens, cut at the first end-of-sequence token)."""
    reason = finish_reason(error=None, eos=bool(ids) and ids[-1] in eos, length=len(ids) >= max_new, stopped=stopped)
    text = loaded.tokenizer.decode(ids, skip_special_tokens=True)
    return RowResult(item.index, text, len(ids), len(item.prepared.input_ids), batch_seconds / batch_size, reason,
                     batch_size=batch_size, batch_seconds=batch_seconds, output_ids=tuple(ids),
                     notices=tuple(item.prepared.notices), tokens=None if tokens is None else tuple(tokens),
                     tokens_note=NO_TOKENS_NOTE if tokens is None else None)


def _run_batch(loaded: LoadedModel, items: list[_Item], settings: GenerationSettings,
               stop_event: threading.Event) -> list[RowResult]:
    """One ``generate`` call for ``items``; raises whatever ``generate`` raises."""
    model = loaded.model
    input_ids, mask = pad_rows(loaded.kind, loaded.tokenizer, [it.prepared.input_ids for it in items], model.device)
    options = dict(items[0].options)
    options["max_new_tokens"] = max_new = min(it.options["max_new_tokens"] for it in items)
    options.update(sampling_kwargs(settings, model))  # sampled: the batch's own seeded generator, not torch's global one
    recorder = TokenRecorder(model)
    started = time.perf_counter()
    with torch.inference_mode(), recorder:
        output = model.generate(input_ids=input_ids, attention_mask=mask, pad_token_id=items[0].pad_token_id,
                                stopping_criteria=StoppingCriteriaList([StopOnEvents([stop_event]), recorder]), **options)
    seconds = time.perf_counter() - started
    eos = set(eos_token_ids(model, loaded.tokenizer))
    stopped = stop_event.is_set()
    results = []
    for i, item in enumerate(items):
        ids = new_tokens(loaded.kind, output[i].tolist(), input_ids.shape[1], eos)
        results.append(_row_result(loaded, item, ids, eos, stopped, len(items), seconds, max_new,
                                   recorder.tokens(loaded.tokenizer, i, ids)))
    return results


def _run_or_retry(loaded: LoadedModel, items: list[_Item], settings: GenerationSettings,
                  stop_event: threading.Event) -> Iterator[RowResult]:
    """Run a batch; when it fails, retry its rows one by one so only a failing row gets the error."""
    try:
        yield from _run_batch(loaded, items, settings, stop_event)
        return
    except Exception as exc:  # noqa: BLE001 - reported on the row, never raised into the caller
        if len(items) == 1:
            yield RowResult.failed(items[0].index, error_message(exc), items[0].prepared)
            return
    for item in items:
        if stop_event.is_set():
            yield RowResult.not_run(item.index, item.prepared)
        else:
            yield from _run_or_retry(loaded, [item], settings, stop_event)


def plan_batches(lengths: Sequence[int], batch_size: int, *, sort_by_length: bool = True) -> list[list[int]]:
    """Group row positions into batches of at most ``batch_size``.

    Args:
        lengths: each row's input length in tokens.
        batch_size: rows per batch (>= 1).
        sort_by_length: group rows of similar length (shortest first; ties keep input order),
            so a batch carries little padding; else keep input order.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i]) if sort_by_length else list(range(len(lengths)))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def generate_rows(loaded: LoadedModel, rows: Sequence[PromptRow | str], settings: GenerationSettings, *,
                  batch_size: int = 0, stop_event: threading.Event | None = None,
                  sort_by_length: bool = True) -> Iterator[RowResult]:
    """Generate every row on ``loaded`` in batches, yielding each row's result when its batch ends.

    Exactly one :class:`RowResult` is yielded per row (``index`` says which), errors
    included: nothing is raised once generation starts.

    Args:
        loaded: the model.
        rows: the prompts (validated :class:`~models.sets.rows.PromptRow` or plain strings).
        settings: generation settings for every row (a row's ``task_prefix`` overrides theirs).
        batch_size: rows per ``generate`` call (checked where the request enters: ``models.request``); 0 picks
            :func:`auto_batch_size`.
        stop_event: set it from any thread to stop; the running batch ends within one token.
        sort_by_length: batch rows of similar length together (less padding, faster);
            results then arrive out of input order.

    """
    size = batch_size or auto_batch_size(loaded, len(rows))
    stop_event = stop_event if stop_event is not None else threading.Event()
    items: list[_Item] = []
    for index, row in enumerate(rows):
        row = PromptRow(row) if isinstance(row, str) else row
        try:
            items.append(_prepare_item(loaded, index, row, settings))
        except Exception as exc:  # noqa: BLE001 - a row the tokenizer cannot take fails alone
            yield RowResult.failed(index, f"could not prepare the prompt: {type(exc).__name__}: {exc}"[:500])
    for batch in plan_batches([len(it.prepared.input_ids) for it in items], size, sort_by_length=sort_by_length):
        group = [items[i] for i in batch]
        if stop_event.is_set():
            yield from (RowResult.not_run(it.index, it.prepared) for it in group)
        else:
            yield from _run_or_retry(loaded, group, settings, stop_event)
