"""10. Prompt sets: a set generated in batches against the same rows one at a time, on each side.

Measured in the precision the app loads by default (auto: bfloat16 on a CPU with native bfloat16) and, when
that is not float32, again in float32, where padding changes fewer greedy tokens."""

from __future__ import annotations

from typing import Any

import torch

from models import Kind, Precision

from ..context import SIDES, Context
from ..figures import figure, ratio, secs, tps
from ..promptsets import TARGET_CAUSAL_SPEEDUP, measure_prompt_sets
from .base import Table, row

TARGET = f"causal side batched ≥ {TARGET_CAUSAL_SPEEDUP:g}× faster than one row at a time"
ROWS, TOKENS = 24, 32  # the set: 24 rows × 32 new tokens


def measure(ctx: Context) -> dict[str, Any]:
    rows = 6 if ctx.quick else ROWS
    repeats = 1 if ctx.quick else min(ctx.reps, 3)
    ctx.log(f"10 prompt sets: {rows} rows × {TOKENS} tokens, batched and one at a time, each side")
    samples = measure_prompt_sets({kind: ctx.model(kind) for kind in SIDES}, rows=rows, max_new_tokens=TOKENS,
                                  repeats=repeats)
    wider = {kind: ctx.cache.get(ctx.subjects[kind].source, Precision.FLOAT32) for kind in SIDES
             if ctx.model(kind).model.dtype != torch.float32}
    if wider:
        ctx.log("10 prompt sets: again in float32")
        samples["float32"] = measure_prompt_sets(wider, rows=rows, max_new_tokens=TOKENS, repeats=repeats)["sides"]
    return samples


def _rows(samples: dict[str, Any], sides: dict[Kind, dict[str, Any]], label: str, target: str | None) -> list:
    speed = {kind: f"{ratio(side['speedup'])}× ({secs(side['single_seconds'])} → {secs(side['batched_seconds'])}; "
                   f"{tps(side['single_tokens_per_second'])} → {tps(side['batched_tokens_per_second'])} in total; "
                   f"batch of {side['batch_size']}, {side['dtype']})" for kind, side in sides.items()}
    same = {kind: f"{side['rows_identical']}/{samples['rows']} rows identical" for kind, side in sides.items()}
    causal = sides.get(Kind.CAUSAL)
    met = None if causal is None or target is None else causal["speedup"] >= TARGET_CAUSAL_SPEEDUP
    return [row(f"Prompt set of {samples['rows']} rows × {samples['max_new_tokens']} tokens{label}: batched vs one at "
                "a time", speed, target or "reported", met),
            row(f"Prompt set{label}: batched greedy output identical to one at a time", same, "reported", None)]


def summarize(samples: dict[str, Any]) -> Table:
    sides = {Kind(kind): side for kind, side in samples["sides"].items()}
    rows = _rows(samples, sides, " (the app's precision)" if samples.get("float32") else "", TARGET)
    if samples.get("float32"):
        rows += _rows(samples, {Kind(kind): side for kind, side in samples["float32"].items()}, " in float32", None)
    notes = ["Both modes run the same rows batch by batch, alternating, so a shared machine's load hits both; "
             "a row that differs does so through padding's floating-point rounding (see models/sets/batch.py), more often "
             "in bfloat16 (8 bits of mantissa) than in float32."]
    results = {**samples, "figures": {kind.value: {
        "single_seconds": figure(side["single_seconds_each"], "s"), "batched_seconds": figure(side["batched_seconds_each"], "s"),
        "batch_speedup": figure(side["batch_speedups"], "×")} for kind, side in sides.items()}}
    return Table(rows, results, notes)
