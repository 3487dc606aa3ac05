"""10. Prompt sets: a set generated in batches against the same rows one at a time, on each side."""

from __future__ import annotations

from typing import Any

from models import Kind

from ..context import SIDES, Context
from ..figures import figure, ratio, secs, tps
from ..promptsets import TARGET_CAUSAL_SPEEDUP, measure_prompt_sets
from .base import Table, row

TARGET = f"causal side batched ≥ {TARGET_CAUSAL_SPEEDUP:g}× faster than one row at a time"
ROWS, TOKENS = 24, 32  # the set: 24 rows × 32 new tokens


def measure(ctx: Context) -> dict[str, Any]:
    rows = 6 if ctx.quick else ROWS
    ctx.log(f"10 prompt sets: {rows} rows × {TOKENS} tokens, batched and one at a time, each side")
    return measure_prompt_sets({kind: ctx.model(kind) for kind in SIDES}, rows=rows, max_new_tokens=TOKENS,
                               repeats=1 if ctx.quick else min(ctx.reps, 3))


def summarize(samples: dict[str, Any]) -> Table:
    sides = {Kind(kind): side for kind, side in samples["sides"].items()}
    speed = {kind: f"{ratio(side['speedup'])}× ({secs(side['single_seconds'])} → {secs(side['batched_seconds'])}; "
                   f"{tps(side['single_tokens_per_second'])} → {tps(side['batched_tokens_per_second'])} in total; "
                   f"batch of {side['batch_size']}, {side['dtype']})" for kind, side in sides.items()}
    same = {kind: f"{side['rows_identical']}/{samples['rows']} rows identical" for kind, side in sides.items()}
    causal = sides.get(Kind.CAUSAL)
    met = None if causal is None else causal["speedup"] >= TARGET_CAUSAL_SPEEDUP
    rows = [row(f"Prompt set of {samples['rows']} rows × {samples['max_new_tokens']} tokens: batched vs one at a time",
                speed, TARGET, met),
            row("Prompt set: batched greedy output identical to one at a time", same, "reported", None)]
    notes = ["Both modes run the same rows batch by batch, alternating, so a shared machine's load hits both; "
             "a row that differs does so through padding's floating-point rounding (see models/batch.py)."]
    results = {**samples, "figures": {kind.value: {
        "single_seconds": figure(side["single_seconds_each"], "s"), "batched_seconds": figure(side["batched_seconds_each"], "s"),
        "batch_speedup": figure(side["batch_speedups"], "×")} for kind, side in sides.items()}}
    return Table(rows, results, notes)
