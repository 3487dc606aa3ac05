"""6. Loading: a cold load, a cached load, and a GGUF model's first load (conversion) against later ones.

Runs first: its last cold load of each model is the one every other section uses.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from models import Kind, LoadedModel, ModelCache, ModelSource
from models import loader as loader_module

from ..context import SIDES, Context
from ..figures import figure, ms, secs
from .base import Table, all_met, row

CACHED_TARGET = 0.001
CACHED_CALLS = 100  # a cached get takes microseconds: time 100 and divide
GGUF_SPEEDUP_TARGET = 5.0
TARGET = f"cached load < {ms(CACHED_TARGET)}"
GGUF_TARGET = f"; GGUF cached conversion ≥ {GGUF_SPEEDUP_TARGET:.0f}× faster than first"


@dataclass
class SideSamples:
    cold: list[float] = field(default_factory=list)  # seconds, fresh ModelCache
    cached: list[float] = field(default_factory=list)  # seconds a call, mean of CACHED_CALLS
    gguf_first: list[float] | None = None  # seconds, fresh conversion cache (GGUF models only)


@dataclass
class Samples:
    gguf_reps: int
    sides: dict[Kind, SideSamples]


def _gguf_first_loads(ctx: Context, source: ModelSource) -> list[float]:
    """Load a GGUF model with an empty conversion cache each time (dequantize + save + load)."""
    first = []
    for rep in range(ctx.gguf_reps):
        ctx.log(f"6 loading: GGUF first load (conversion) rep {rep + 1}/{ctx.gguf_reps}")
        fresh = Path(tempfile.mkdtemp(prefix="gguf-cold-", dir=ctx.work))
        previous = loader_module.GGUF_CACHE_DIR
        loader_module.GGUF_CACHE_DIR = fresh / "gguf"  # read when a load runs: a fresh conversion cache
        os.environ["PLAYGROUND_CACHE"] = str(fresh)
        started = time.perf_counter()
        ModelCache(1).get(source)
        first.append(time.perf_counter() - started)
        gc.collect()
        if previous.is_relative_to(ctx.work) and previous.parent != ctx.work:
            shutil.rmtree(previous.parent, ignore_errors=True)  # keep only the latest conversion
    return first


def _cold_and_cached(ctx: Context, kind: Kind, side: SideSamples) -> LoadedModel:
    """Time a load into a fresh cache, then gets from that cache; return the last load."""
    source = ctx.subjects[kind].source
    loaded = None
    for rep in range(ctx.reps):
        ctx.rep_log(f"6 loading: {kind.value} cold/cached", rep)
        cache = ModelCache(1)
        loaded = None
        gc.collect()
        started = time.perf_counter()
        loaded = cache.get(source)
        side.cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(CACHED_CALLS):
            again = cache.get(source)
        side.cached.append((time.perf_counter() - started) / CACHED_CALLS)
        assert again is loaded
    assert loaded is not None
    return loaded


def measure(ctx: Context) -> Samples:
    sides: dict[Kind, SideSamples] = {}
    for kind in SIDES:
        source = ctx.subjects[kind].source
        side = sides[kind] = SideSamples()
        if source.gguf_file:
            side.gguf_first = _gguf_first_loads(ctx, source)
        loaded = _cold_and_cached(ctx, kind, side)
        ctx.cache.put(loaded)
        ctx.loaded[kind] = loaded
    return Samples(ctx.gguf_reps, sides)


def summarize(samples: Samples) -> Table:
    results: dict[str, dict[str, object]] = {}
    cold_cells, cached_cells, gguf_first_cells, gguf_cached_cells = {}, {}, {}, {}
    cached_met: list[bool | None] = []
    gguf_met: list[bool | None] = []
    for kind, side in samples.sides.items():
        res = results[kind.value] = {}
        if side.gguf_first is not None:
            res["gguf_first_load_seconds"] = figure(side.gguf_first, "s")
        cold, cached = figure(side.cold, "s"), figure(side.cached, "s")
        res["cold_load_seconds"], res["cached_load_seconds"] = cold, cached
        cold_cells[kind] = secs(cold["median"]) + (" (conversion cached)" if side.gguf_first is not None else "")
        cached_cells[kind] = ms(cached["median"])
        cached_met.append(cached["median"] < CACHED_TARGET)
        if side.gguf_first is not None:
            first = res["gguf_first_load_seconds"]
            speedup = first["median"] / cold["median"] if cold["median"] else None
            res["gguf_speedup"] = speedup
            gguf_first_cells[kind] = f"{secs(first['median'])} (n={first['n']})"
            gguf_cached_cells[kind] = f"{secs(cold['median'])} ({speedup:.0f}× faster)" if speedup else secs(cold["median"])
            gguf_met.append(speedup is not None and speedup >= GGUF_SPEEDUP_TARGET)
    rows = [row("Cold load: fresh `ModelCache`, `load_model`", cold_cells, "reported", None),
            row(f"Cached load: `cache.get` again (mean of {CACHED_CALLS} calls per repetition)", cached_cells,
                f"< {ms(CACHED_TARGET)}", all_met(cached_met))]
    notes = []
    if gguf_first_cells:
        rows.append(row("GGUF first load: dequantize + save + load (fresh PLAYGROUND_CACHE)", gguf_first_cells,
                        "reported", None))
        rows.append(row("GGUF load with the conversion cached (fresh `ModelCache`)", gguf_cached_cells,
                        f"≥ {GGUF_SPEEDUP_TARGET:.0f}× faster than first load", all_met(gguf_met)))
        notes.append(f"GGUF first load: {samples.gguf_reps} repetition(s) (--gguf-reps), each into a new empty cache folder.")
    notes.append("\"Cold\" means a fresh ModelCache in a warm process: Python modules imported and the files in the "
                 "OS page cache; a first load after a reboot reads the disk too.")
    return Table(rows, results, notes, target_extra=GGUF_TARGET if gguf_first_cells else "")
