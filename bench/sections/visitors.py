"""9. Many visitors: 1, 4 and 8 simultaneous ``/generate`` clients on the same model, for each serving option.

Each client is a raw SSE reader (no polling delay) with its own session and its own prompt (taken from
the fixed set of section 8), started at the same moment; greedy decoding, ``max_new_tokens`` each.
Per option, model and number of clients:

- aggregate tokens/s: every client's output tokens over the wall time from the common start to the
  last answer;
- p50 and p95 time to first text, as each client saw it;
- for grouped options, how many answers are token for token a lone run's (the same prompt through
  ``models.stream`` alone, same precision).

Options (each served by the real app, ``web.serving``, over the run's registry and cache):

- ``today``: float32, 4 generation slots (the app's default ``--concurrency``), each run alone;
- ``bfloat16``: the same in bfloat16;
- ``bfloat16, 8 slots``: every visitor admitted at once (``--concurrency 8``);
- ``bfloat16, 8 slots, grouped``: simultaneous greedy requests for the same model and settings share
  one batched ``generate`` (:mod:`models.grouping`);
- ``float32, 8 slots, grouped``: the same in float32 (grouped answers then equal lone ones).

The target applies to the app as shipped (its default serving options, named in the results).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from models import GenerationSettings, Kind
from models.sources import LOCAL_ENGINE
from models.grouping import Grouper
from models.stream import stream

from ..appclient import generate_via_sse
from ..context import SIDES, Context
from ..figures import figure, secs, tps
from ..runs import prepared
from .base import Table, row
from .precision_quality import prompt_rows

VISITORS = (1, 4, 8)
SPEEDUP_TARGET = 3.0  # 8 visitors' aggregate tokens/s over one visitor's
P95_TARGET = 3.0  # seconds to the first text, 95th percentile, 8 visitors
TARGET = f"8 visitors ≥ {SPEEDUP_TARGET:g}× one visitor's aggregate tokens/s, p95 first text ≤ {P95_TARGET:g} s (causal)"
STORY = "Write a long story about {}."
TOPICS = ("a dragon who learns to cook", "a lighthouse keeper and a storm", "two robots on Mars", "a lost cat in Paris",
          "a boy who finds a map", "the last tree in a city", "a baker who can fly", "a ship made of ice")


@dataclass(frozen=True)
class Option:
    """One way of serving: precision, generation slots, and the run layer's options."""

    name: str
    precision: str
    concurrency: int
    group: bool = False


OPTIONS = (
    Option("today", "float32", 4),
    Option("bfloat16", "bfloat16", 4),
    Option("bfloat16, 8 slots", "bfloat16", 8),
    Option("bfloat16, 8 slots, grouped", "bfloat16", 8, group=True),
    Option("float32, 8 slots, grouped", "float32", 8, group=True),
)


@dataclass
class Burst:
    """``n`` clients started together: what each saw."""

    clients: int
    wall: float
    first_text: list[float]
    output_tokens: list[int]
    texts: list[str]
    batch_rows: list[int]


@dataclass
class Samples:
    max_new_tokens: int
    reps: int
    shipped: str  # the option the app ships with
    bursts: dict[str, dict[str, dict[int, list[Burst]]]] = field(default_factory=dict)  # option -> kind -> n -> reps
    lone: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # precision -> kind -> lone answers per prompt


def prompts(kind: Kind, count: int) -> list[str]:
    """Distinct prompts, one per client: stories for a causal model (long answers), the fixed set for seq2seq."""
    if kind is Kind.CAUSAL:
        return [STORY.format(TOPICS[i % len(TOPICS)]) for i in range(count)]
    return [r.prompt for r in prompt_rows(count)]


def _burst(url: str, model: str, texts: list[str], max_new_tokens: int, precision: str) -> Burst:
    barrier = threading.Barrier(len(texts))

    def client(prompt: str):
        barrier.wait()
        return generate_via_sse(url, model, prompt, max_new_tokens, session_hash=uuid.uuid4().hex[:12], precision=precision)

    started = time.perf_counter()
    with ThreadPoolExecutor(len(texts)) as pool:
        runs = list(pool.map(client, texts))
    wall = time.perf_counter() - started
    return Burst(len(texts), wall, [r.first_text or r.done or wall for r in runs],
                 [int(r.stats.get("output_tokens", 0)) for r in runs], [r.text for r in runs],
                 [int(r.stats.get("batch_rows", 1)) for r in runs])


def _lone(ctx: Context, kind: Kind, precision: str, count: int, max_new_tokens: int) -> list[str]:
    loaded = ctx.cache.get(ctx.subjects[kind].source, precision)
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    return [list(stream(loaded, prepared(loaded, p, settings), settings))[-1].text for p in prompts(kind, count)]


def measure(ctx: Context) -> Samples:
    from web.config import AppConfig
    from web.serving import serving

    max_new = ctx.max_new_tokens
    reps = max(1, min(ctx.reps, 2))  # long runs; the machine is shared
    shipped = shipped_option()
    samples = Samples(max_new, reps, shipped=shipped.name)
    options = (shipped,) if ctx.quick else OPTIONS  # --quick: the app as shipped, up to 4 clients
    visitors = VISITORS[:2] if ctx.quick else VISITORS
    for precision in sorted({o.precision for o in options}):
        for kind in SIDES:
            ctx.cache.get(ctx.subjects[kind].source, precision)  # loaded before any clock starts
            samples.lone.setdefault(precision, {})[kind.value] = _lone(ctx, kind, precision, max(visitors), max_new)
    for concurrency in sorted({o.concurrency for o in options}):
        config = AppConfig(online=ctx.registry.online, preload=False, concurrency=concurrency, queue_size=32)
        ctx.log(f"9 visitors: serving the app with {concurrency} generation slots")
        with serving(config, registry=ctx.registry, cache=ctx.cache) as served:
            for option in (o for o in options if o.concurrency == concurrency):
                local = served.runner.engines[LOCAL_ENGINE]
                local.grouper = Grouper() if option.group else None  # the benchmark switches the local engine's option
                for kind in SIDES:
                    name = ctx.name(kind)
                    generate_via_sse(served.url, name, "Hello", 4, precision=option.precision)  # warm the path
                    for n in visitors:
                        for rep in range(reps):
                            ctx.log(f"9 visitors: {option.name}, {kind.value}, {n} clients, rep {rep + 1}/{reps}")
                            burst = _burst(served.url, name, prompts(kind, n), max_new, option.precision)
                            samples.bursts.setdefault(option.name, {}).setdefault(kind.value, {}).setdefault(n, []).append(burst)
            served.runner.engines[LOCAL_ENGINE].grouper = None
    return samples


def shipped_option() -> Option:
    """The option the app serves with by default (its configuration, read, not assumed)."""
    from models.loader import resolve_precision
    from web.config import AppConfig

    config = AppConfig()
    precision = resolve_precision("auto", None, "cpu").value
    group = getattr(config, "group_window", 0) not in (None, 0)
    for option in OPTIONS:
        if (option.precision, option.concurrency, option.group) == (precision, config.concurrency, group):
            return option
    return Option(f"{precision}, {config.concurrency} slots" + (", grouped" if group else ""), precision,
                  config.concurrency, group)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def figures(bursts: list[Burst], lone: list[str] | None) -> dict[str, Any]:
    """Medians over repetitions: aggregate tokens/s, p50/p95 first text; answers equal to a lone run's."""
    rates = [sum(b.output_tokens) / b.wall for b in bursts if b.wall > 0]
    p50 = [percentile(b.first_text, 0.5) for b in bursts]
    p95 = [percentile(b.first_text, 0.95) for b in bursts]
    same = [sum(t == lone[i] for i, t in enumerate(b.texts)) for b in bursts] if lone else []
    return {"aggregate_tokens_per_second": statistics.median(rates) if rates else None,
            "p50_first_text": statistics.median(p50), "p95_first_text": statistics.median(p95),
            "figures": {"aggregate": figure(rates, "tokens/s"), "p50_first_text": figure(p50, "s"),
                        "p95_first_text": figure(p95, "s")},
            "samples": [{"wall": round(b.wall, 3), "output_tokens": b.output_tokens,
                         "first_text": [round(t, 3) for t in b.first_text], "batch_rows": b.batch_rows} for b in bursts],
            "identical_to_lone": min(same) if same else None, "clients": bursts[0].clients}


def summarize(samples: Samples) -> Table:
    results: dict[str, Any] = {"max_new_tokens": samples.max_new_tokens, "reps": samples.reps,
                               "shipped": samples.shipped, "options": {}}
    rows = []
    shipped = shipped_option()
    for option in (*OPTIONS, *([] if shipped in OPTIONS else [shipped])):
        per_kind = samples.bursts.get(option.name, {})
        if not per_kind:
            continue
        out = results["options"][option.name] = {}
        cells: dict[Kind, str] = {}
        verdicts = []
        for kind_name, by_n in per_kind.items():
            kind = Kind(kind_name)
            lone = samples.lone.get(option.precision, {}).get(kind_name)
            figs = {n: figures(bursts, lone) for n, bursts in by_n.items()}
            one, eight = figs[1]["aggregate_tokens_per_second"], figs[max(figs)]["aggregate_tokens_per_second"]
            speedup = eight / one if one and eight else None
            p95 = figs[max(figs)]["p95_first_text"]
            out[kind_name] = {"by_clients": {str(n): f for n, f in figs.items()}, "speedup": speedup}
            parts = [f"{n}: {tps(f['aggregate_tokens_per_second'])}, first text p50 {secs(f['p50_first_text'])} / "
                     f"p95 {secs(f['p95_first_text'])}" for n, f in sorted(figs.items())]
            most = max(figs)
            text = " · ".join(parts) + (f" · {most} vs 1: {speedup:.1f}×" if speedup else "")
            if option.group:
                text += f" · grouped answers identical to lone runs: {figs[most]['identical_to_lone']}/{most}"
            cells[kind] = text
            if kind is Kind.CAUSAL and most == max(VISITORS):
                verdicts.append(speedup is not None and speedup >= SPEEDUP_TARGET and p95 <= P95_TARGET)
        shipped = " (as shipped)" if option.name == samples.shipped else ""
        rows.append(row(f"Visitors, option '{option.name}'{shipped}: aggregate tokens/s and time to first text per "
                        "number of simultaneous clients", cells, TARGET if shipped else "reported",
                        (all(verdicts) if verdicts else None) if shipped else None))
    notes = [f"Each client: its own session and prompt, greedy, {samples.max_new_tokens} new tokens, raw SSE; all "
             f"started together; medians of {samples.reps} repetitions. Aggregate tokens/s = every client's output "
             "tokens over the wall time from the start to the last answer.",
             "Grouped answers are compared with the same prompt run alone in the same precision: padding a batch moves "
             "bfloat16 logits enough to flip near-tied greedy tokens; float32 stays token for token the same."]
    return Table(rows, results, notes)
