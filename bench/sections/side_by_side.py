"""3. Side by side: both models through the app at once, against each alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from models import Kind
from models.stream import generation_threads

from ..appclient import generate_via_client, submit_generate
from ..context import SIDES, Context
from ..figures import figure, ms, secs, tps
from ..runs import ended_at, new_generation_thread, order
from .base import Table, row

TARGET = "the side that is faster alone finishes first when both run"
FIGURES = (("time_to_first_token", "time_to_first_token_seconds", "s"), ("tokens_per_second", "tokens_per_second", "tokens/s"),
           ("total_seconds", "total_seconds", "s"))  # (stats key, results key, unit)


@dataclass
class Samples:
    """The stats of each request (``/generate``'s final stats), alone and together, per side."""

    max_new_tokens: int
    alone: dict[Kind, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in SIDES})
    together: dict[Kind, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in SIDES})
    first_to_finish: list[Kind | None] = field(default_factory=list)  # per repetition, by generation thread end


def _end_of_next_thread(model_name: str, before: set[threading.Thread]) -> float | None:
    return ended_at(new_generation_thread(model_name, before, timeout=60), timeout=600)


def measure(ctx: Context) -> Samples:
    n = ctx.max_new_tokens
    client = ctx.app.client
    samples = Samples(n)
    for kind in SIDES:  # warm-up
        generate_via_client(client, ctx.name(kind), ctx.prompt, n)
    for rep in range(ctx.reps):
        ctx.rep_log("3 side by side:", rep)
        for kind in order(rep, SIDES):
            samples.alone[kind].append(generate_via_client(client, ctx.name(kind), ctx.prompt, n).stats)
        before = set(generation_threads())
        with ThreadPoolExecutor(max_workers=len(SIDES), thread_name_prefix="bench-thread-end") as pool:
            ends = {kind: pool.submit(_end_of_next_thread, ctx.name(kind), before) for kind in SIDES}
            jobs = {kind: submit_generate(client, ctx.name(kind), ctx.prompt, n) for kind in order(rep, SIDES)}
            for kind, job in jobs.items():
                _text, stats = job.result(timeout=600)
                samples.together[kind].append(stats)
            ended = {kind: future.result() for kind, future in ends.items()}
        known = {kind: end for kind, end in ended.items() if end is not None}
        samples.first_to_finish.append(min(known, key=lambda k: known[k]) if len(known) == len(SIDES) else None)
    return samples


def _figures(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: figure([r.get(stat) for r in runs], unit) for stat, key, unit in FIGURES}


def summarize(samples: Samples) -> Table:
    results: dict[str, Any] = {kind.value: {"alone": _figures(samples.alone[kind]),
                                            "together": _figures(samples.together[kind])} for kind in SIDES}
    alone_total = {k: results[k.value]["alone"]["total_seconds"]["median"] or float("inf") for k in SIDES}
    faster = min(SIDES, key=lambda k: alone_total[k])
    slower = Kind.CAUSAL if faster is Kind.SEQ2SEQ else Kind.SEQ2SEQ
    wins = sum(1 for k in samples.first_to_finish if k is faster)
    judged = sum(1 for k in samples.first_to_finish if k is not None)
    margin = alone_total[slower] / alone_total[faster] if alone_total[faster] else None
    results["faster_side_alone"] = faster.value
    results["alone_time_ratio_slower_to_faster"] = margin
    results["first_to_finish_together"] = [k.value if k else None for k in samples.first_to_finish]
    results["faster_side_finished_first"] = {"times": wins, "of": judged}

    ttft_cells, tps_cells = {}, {}
    for kind in SIDES:
        a, t = results[kind.value]["alone"], results[kind.value]["together"]
        ttft_cells[kind] = f"{ms(a['time_to_first_token_seconds']['median'])} → {ms(t['time_to_first_token_seconds']['median'])}"
        share = (t["tokens_per_second"]["median"] / a["tokens_per_second"]["median"]
                 if a["tokens_per_second"]["median"] and t["tokens_per_second"]["median"] else None)
        tps_cells[kind] = (f"{tps(a['tokens_per_second']['median'])} → {tps(t['tokens_per_second']['median'])}"
                           + (f" ({share:.0%})" if share is not None else ""))
    finish_cells = {faster: f"faster alone ({secs(alone_total[faster])} vs {secs(alone_total[slower])}); "
                            f"finished first {wins}/{judged}",
                    slower: f"finished first {judged - wins}/{judged}"}
    rows = [row("Side by side: time to first token, alone → together", ttft_cells, "reported", None),
            row("Side by side: tokens/s, alone → together (share kept)", tps_cells, "reported", None),
            row("Side by side: the side faster alone finishes first together", finish_cells,
                "faster side first (most runs)", judged > 0 and wins * 2 > judged)]
    notes = [f"Two concurrent gradio_client jobs to /generate ({samples.max_new_tokens} new tokens each, submitted "
             "together, order alternating); TTFT and tokens/s from each request's final stats; who finished first "
             "from the server's generation threads ending (each joined from when it started)."]
    if margin is not None and margin < 1.1:
        notes.append(f"The two sides are within {100 * (margin - 1):.0f}% of each other alone, so which finishes "
                     "first together is close to a coin flip.")
    return Table(rows, results, notes)
