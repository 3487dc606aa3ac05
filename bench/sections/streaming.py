"""1. Streaming overhead: ``models.stream`` against a plain ``model.generate`` of the same input."""

from __future__ import annotations

from dataclasses import dataclass, field

from models import Kind

from ..context import SIDES, Context
from ..figures import figure, median, ms, ratio, tps
from ..runs import THREAD_NOTE, order, plain_generate, streamed
from .base import Table, all_met, row

RATIO_TARGET = 0.95
TARGET = f"stream tokens/s ≥ {RATIO_TARGET} × plain generate"


@dataclass
class SideSamples:
    """Paired runs of one model: repetition ``i`` of each list ran next to the other's ``i``."""

    generate_seconds: list[float] = field(default_factory=list)
    generate_tokens: list[int] = field(default_factory=list)
    stream_seconds: list[float] = field(default_factory=list)
    stream_tokens: list[int] = field(default_factory=list)


@dataclass
class Samples:
    sides: dict[Kind, SideSamples]


def measure(ctx: Context) -> Samples:
    """Each repetition runs both paths, in alternating order; also records each model's time a token."""
    settings = ctx.settings()
    sides: dict[Kind, SideSamples] = {}
    for kind in SIDES:
        loaded = ctx.model(kind)
        plain_generate(loaded, ctx.prompt, settings)  # warm-up (first-call allocations, lazy imports)
        streamed(loaded, ctx.prompt, settings)
        side = sides[kind] = SideSamples()
        for rep in range(ctx.reps):
            ctx.rep_log(f"1 streaming overhead: {kind.value}", rep)
            for path in order(rep, ("plain", "stream")):
                if path == "plain":
                    seconds, tokens = plain_generate(loaded, ctx.prompt, settings)
                    side.generate_seconds.append(seconds)
                    side.generate_tokens.append(tokens)
                else:
                    run = streamed(loaded, ctx.prompt, settings)
                    side.stream_seconds.append(run.seconds)
                    side.stream_tokens.append(run.stats["output_tokens"])
        ctx.token_time[kind] = (median(side.generate_seconds) or 0) / (median(side.generate_tokens) or 1)
    return Samples(sides)


def summarize(samples: Samples) -> Table:
    results: dict[str, object] = {}
    cells: dict[Kind, str] = {}
    per_token: dict[Kind, str] = {}
    met: list[bool | None] = []
    notes: list[str] = []
    for kind, side in samples.sides.items():
        plain_s, plain_n, stream_s, stream_n = (side.generate_seconds, side.generate_tokens, side.stream_seconds,
                                                side.stream_tokens)
        plain = figure([n / s for s, n in zip(plain_s, plain_n)], "tokens/s")
        streaming = figure([n / s for s, n in zip(stream_s, stream_n)], "tokens/s")
        # the headline ratio pairs each stream run with the generate run next to it (load on a shared
        # machine drifts between repetitions; a pair sees the same load)
        pairs = figure([(ns / ss) / (np_ / sp) for sp, np_, ss, ns in zip(plain_s, plain_n, stream_s, stream_n)], "ratio")
        value = pairs["median"]
        of_medians = streaming["median"] / plain["median"] if plain["median"] and streaming["median"] else None
        tokens = median(plain_n) or 1
        overhead = ((median(stream_s) or 0) - (median(plain_s) or 0)) / tokens
        if sorted(set(plain_n)) != sorted(set(stream_n)):
            notes.append(f"{kind.value}: token counts differ between paths (generate {sorted(set(plain_n))}, "
                         f"stream {sorted(set(stream_n))}); tokens/s still compares like with like")
        results[kind.value] = {"generate_tokens_per_second": plain, "stream_tokens_per_second": streaming,
                               "generate_seconds": figure(plain_s, "s"), "stream_seconds": figure(stream_s, "s"),
                               "tokens": figure(plain_n, "tokens"), "ratio": value, "pair_ratios": pairs,
                               "ratio_of_medians": of_medians, "overhead_per_token_seconds": overhead}
        met.append(value is not None and value >= RATIO_TARGET)
        cells[kind] = f"{ratio(value)} ({tps(streaming['median'])} vs {tps(plain['median'])})"
        per_token[kind] = f"{ms(overhead)} a token ({int(tokens)} tokens)"
    rows = [row("Streaming vs plain `generate`: tokens/s ratio, median of paired runs (stream vs generate tokens/s)",
                cells, f"≥ {RATIO_TARGET}", all_met(met)),
            row("Streaming cost per token (stream − generate time)", per_token, "reported", None)]
    notes.append("tokens/s = new tokens / wall time from the call (prompt preparation and prefill included) "
                 "to the end, both paths; the runs alternate order each repetition.")
    notes.append(THREAD_NOTE)
    return Table(rows, results, notes)
