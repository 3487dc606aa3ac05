"""5. 8-bit: memory and speed of each model quantized with bitsandbytes, against full precision."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import torch

from models import Kind, eight_bit_status, load_model

from ..context import SIDES, Context
from ..figures import figure, mib, ratio, secs, tps
from ..runs import order, streamed
from .base import Table, all_met, row

MEMORY_TARGET = 0.6
TARGET = f"8-bit memory ≤ {MEMORY_TARGET} × full precision"


@dataclass
class SideSamples:
    memory_bytes_full: int
    memory_bytes_8bit: int
    load_seconds_8bit: float  # one load
    tokens_per_second_full: list[float | None] = field(default_factory=list)
    tokens_per_second_8bit: list[float | None] = field(default_factory=list)


@dataclass
class Samples:
    device: str  # "GPU" or "CPU"
    unavailable: str | None = None  # why 8-bit cannot run here
    sides: dict[Kind, SideSamples] = field(default_factory=dict)


def measure(ctx: Context) -> Samples:
    ok, why = eight_bit_status()
    samples = Samples("GPU" if torch.cuda.is_available() else "CPU", None if ok else why)
    if not ok:
        return samples
    settings = ctx.settings()
    for kind in SIDES:
        full = ctx.cache.get(ctx.subjects[kind].source, "float32")  # full precision, whatever auto means here
        ctx.log(f"5 8-bit: loading {ctx.name(kind)} in 8-bit")
        started = time.perf_counter()
        quant = load_model(ctx.subjects[kind].source, load_in_8bit=True)
        side = samples.sides[kind] = SideSamples(full.description.memory_bytes, quant.description.memory_bytes,
                                                 time.perf_counter() - started)
        for loaded in (full, quant):  # warm-up
            streamed(loaded, ctx.prompt, settings)
        for rep in range(ctx.reps):
            ctx.rep_log(f"5 8-bit: {kind.value}", rep)
            for which in order(rep, ("full", "8bit")):
                run = streamed(full if which == "full" else quant, ctx.prompt, settings)
                (side.tokens_per_second_full if which == "full" else side.tokens_per_second_8bit).append(
                    run.stats["tokens_per_second"])
        del quant
        gc.collect()
    return samples


def summarize(samples: Samples) -> Table:
    if samples.unavailable is not None:
        return Table([row("8-bit memory footprint", {k: "unavailable" for k in SIDES}, "≤ 0.6 × full", False)],
                     {"unavailable": samples.unavailable}, [samples.unavailable])
    results = {}
    mem_cells, tps_cells, load_cells = {}, {}, {}
    mem_met: list[bool | None] = []
    for kind, side in samples.sides.items():
        full_mem, quant_mem = side.memory_bytes_full, side.memory_bytes_8bit
        mem_ratio = quant_mem / full_mem if full_mem else None
        f_tps, q_tps = figure(side.tokens_per_second_full, "tokens/s"), figure(side.tokens_per_second_8bit, "tokens/s")
        speed_ratio = q_tps["median"] / f_tps["median"] if f_tps["median"] and q_tps["median"] else None
        results[kind.value] = {"memory_bytes_full": full_mem, "memory_bytes_8bit": quant_mem, "memory_ratio": mem_ratio,
                               "tokens_per_second_full": f_tps, "tokens_per_second_8bit": q_tps,
                               "speed_ratio": speed_ratio, "load_seconds_8bit": side.load_seconds_8bit}
        mem_met.append(mem_ratio is not None and mem_ratio <= MEMORY_TARGET)
        mem_cells[kind] = f"{mib(full_mem)} → {mib(quant_mem)} ({ratio(mem_ratio)}×)"
        tps_cells[kind] = f"{tps(f_tps['median'])} → {tps(q_tps['median'])} ({ratio(speed_ratio)}×)"
        load_cells[kind] = secs(side.load_seconds_8bit)
    rows = [row("8-bit memory footprint (`description.memory_bytes`), full → 8-bit", mem_cells,
                f"≤ {MEMORY_TARGET} × full", all_met(mem_met)),
            row("8-bit tokens/s, full → 8-bit", tps_cells, "reported (8-bit on CPU is expected to be slower)", None),
            row("8-bit load (one load, not a median)", load_cells, "reported", None)]
    notes = [f"bitsandbytes int8 on {samples.device}: linear layers are int8; embeddings, the output head, norms and "
             "T5's `wo` layers stay in full precision, so small models save less than half. tokens/s is the decode "
             "rate from the stream's stats."]
    return Table(rows, results, notes)
