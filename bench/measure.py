"""The seven measurements. Each returns a section dict:

``{"title", "target", "met", "results", "rows", "notes"}`` where ``results`` holds the
numbers (medians with their samples, per side) and ``rows`` the table lines
(``measure``, one cell per side, ``target``, ``met``). ``met`` is ``None`` for figures
that are reported without a target.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import torch

from app import free_port
from models import GenerationSettings, Kind, LoadedModel, ModelCache, ModelRegistry, load_model, stream, validate_prompt
from models import loader as loader_module
from models.prompt import prepare

from .appclient import (LaunchedApp, ThreadWatch, api_args, generate_via_client, generate_via_sse,
                        generation_threads, stop_via_http)
from .figures import figure, median, mib, ms, ratio, secs, tps
from .subjects import Subject

ROOT = Path(__file__).resolve().parent.parent
SIDES = (Kind.SEQ2SEQ, Kind.CAUSAL)

STREAM_RATIO_TARGET = 0.95
TTFT_OVERHEAD_TARGET = 0.050
STOP_SLACK = 0.100
EIGHT_BIT_MEMORY_TARGET = 0.6
CACHED_LOAD_TARGET = 0.001
CACHED_CALLS = 100  # a cached get takes microseconds: time 100 and divide
GGUF_SPEEDUP_TARGET = 5.0
STARTUP_TARGET = 10.0


@dataclass
class Context:
    """What every section needs."""

    subjects: dict[Kind, Subject]
    registry: ModelRegistry
    cache: ModelCache
    reps: int
    prompt: str
    max_new_tokens: int  # throughput, side by side, 8-bit
    ttft_tokens: int  # time to first token (only the start matters)
    stop_tokens: int  # stop latency (long enough to be stopped mid-way)
    gguf_reps: int
    model_dir: Path  # --model-dir for the start-up measurement
    work: Path  # scratch folder, removed at the end
    log: Callable[[str], None]
    loaded: dict[Kind, LoadedModel] = field(default_factory=dict)
    token_time: dict[Kind, float] = field(default_factory=dict)  # seconds a token, from section 1

    def settings(self, max_new_tokens: int | None = None) -> GenerationSettings:
        """Greedy, fixed length, the causal side in its chat template when it has one."""
        return GenerationSettings(max_new_tokens=max_new_tokens or self.max_new_tokens)

    def name(self, kind: Kind) -> str:
        return self.subjects[kind].source.name

    def model(self, kind: Kind) -> LoadedModel:
        if kind not in self.loaded:
            self.loaded[kind] = self.cache.get(self.subjects[kind].source)
        return self.loaded[kind]


def section(title: str, target: str, results: dict[str, Any], rows: list[dict[str, Any]],
            notes: list[str] | None = None) -> dict[str, Any]:
    judged = [r["met"] for r in rows if r.get("met") is not None]
    return {"title": title, "target": target, "met": all(judged) if judged else None, "results": results,
            "rows": rows, "notes": notes or []}


def row(measure: str, cells: dict[Kind, str] | str, target: str, met: bool | None) -> dict[str, Any]:
    """A table line; ``cells`` as one string means a figure for the whole app (not per side)."""
    if isinstance(cells, str):
        return {"measure": measure, "seq2seq": cells, "causal": "(whole app)", "target": target, "met": met}
    return {"measure": measure, "seq2seq": cells.get(Kind.SEQ2SEQ, "–"), "causal": cells.get(Kind.CAUSAL, "–"),
            "target": target, "met": met}


def _all(values: list[bool | None]) -> bool | None:
    known = [v for v in values if v is not None]
    return all(known) if known else None


# ----------------------------------------------------------------------------- helpers

def plain_generate(loaded: LoadedModel, prompt: str, settings: GenerationSettings) -> tuple[float, int]:
    """``model.generate`` with the exact input and settings ``models.stream`` uses, but no streamer
    and no stopping criteria, in a fresh thread as ``models.stream`` runs it (see :data:`THREAD_NOTE`).
    Returns (seconds including prompt preparation, new tokens)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = _plain_generate(loaded, prompt, settings)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    thread = threading.Thread(target=work, name="bench-plain-generate", daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join()
    seconds = time.perf_counter() - started
    if "error" in box:
        raise box["error"]
    return seconds, box["result"]


THREAD_NOTE = ("The plain baseline calls model.generate in a fresh thread, as models.stream does: while writing this "
               "benchmark, generate called from the main thread ran 3-4× slower than from a worker thread on this "
               "busy 2-core machine (torch's OpenMP thread team of the main thread under CPU contention; equal with "
               "OMP_NUM_THREADS=1), which would have flattered streaming.")


def _plain_generate(loaded: LoadedModel, prompt: str, settings: GenerationSettings) -> int:
    model, tokenizer = loaded.model, loaded.tokenizer
    prepared = prepare(loaded.kind, tokenizer, model.config, validate_prompt(prompt), settings)
    input_ids = torch.tensor([prepared.input_ids], dtype=torch.long, device=model.device)
    kwargs = settings.generate_kwargs()
    kwargs["max_new_tokens"] = prepared.max_new_tokens
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pad_token_id=pad_id, **kwargs)
    return int(out.shape[1] - (input_ids.shape[1] if loaded.kind is Kind.CAUSAL else 1))


@dataclass
class StreamRun:
    seconds: float
    first_text: float | None  # from the call to the first text chunk
    stats: dict[str, Any]


def streamed(loaded: LoadedModel, prompt: str, settings: GenerationSettings,
             stop_event: threading.Event | None = None, on_text: Callable[[], None] | None = None) -> StreamRun:
    """Run ``models.stream`` to its end, timing the first text chunk."""
    started = time.perf_counter()
    first = None
    last = None
    for update in stream(loaded, prompt, settings, stop_event=stop_event):
        if update.delta and first is None:
            first = time.perf_counter() - started
            if on_text:
                on_text()
        last = update
    seconds = time.perf_counter() - started
    assert last is not None and last.stats is not None
    return StreamRun(seconds, first, last.stats.to_dict())


def _order(rep: int, items: tuple) -> tuple:
    """Alternate the order each repetition so neither path always runs first."""
    return items if rep % 2 == 0 else tuple(reversed(items))


# ----------------------------------------------------------------------------- 1. streaming overhead

def streaming_overhead(ctx: Context) -> dict[str, Any]:
    results: dict[str, Any] = {}
    cells: dict[Kind, str] = {}
    per_token: dict[Kind, str] = {}
    met: dict[Kind, bool | None] = {}
    notes = []
    settings = ctx.settings()
    for kind in SIDES:
        loaded = ctx.model(kind)
        plain_generate(loaded, ctx.prompt, settings)  # warm-up (first-call allocations, lazy imports)
        streamed(loaded, ctx.prompt, settings)
        plain_s, plain_n, stream_s, stream_n = [], [], [], []
        for rep in range(ctx.reps):
            ctx.log(f"1 streaming overhead: {kind.value} rep {rep + 1}/{ctx.reps}")
            for path in _order(rep, ("plain", "stream")):
                if path == "plain":
                    s, n = plain_generate(loaded, ctx.prompt, settings)
                    plain_s.append(s)
                    plain_n.append(n)
                else:
                    run = streamed(loaded, ctx.prompt, settings)
                    stream_s.append(run.seconds)
                    stream_n.append(run.stats["output_tokens"])
        plain = figure([n / s for s, n in zip(plain_s, plain_n)], "tokens/s")
        streaming = figure([n / s for s, n in zip(stream_s, stream_n)], "tokens/s")
        # the headline ratio pairs each stream run with the generate run next to it (load on a shared
        # machine drifts between repetitions; a pair sees the same load)
        pairs = figure([(ns / ss) / (np_ / sp) for sp, np_, ss, ns in zip(plain_s, plain_n, stream_s, stream_n)], "ratio")
        value = pairs["median"]
        of_medians = streaming["median"] / plain["median"] if plain["median"] and streaming["median"] else None
        tokens = median(plain_n) or 1
        overhead = ((median(stream_s) or 0) - (median(plain_s) or 0)) / tokens
        ctx.token_time[kind] = (median(plain_s) or 0) / tokens
        if sorted(set(plain_n)) != sorted(set(stream_n)):
            notes.append(f"{kind.value}: token counts differ between paths (generate {sorted(set(plain_n))}, "
                         f"stream {sorted(set(stream_n))}); tokens/s still compares like with like")
        results[kind.value] = {"generate_tokens_per_second": plain, "stream_tokens_per_second": streaming,
                               "generate_seconds": figure(plain_s, "s"), "stream_seconds": figure(stream_s, "s"),
                               "tokens": figure(plain_n, "tokens"), "ratio": value, "pair_ratios": pairs,
                               "ratio_of_medians": of_medians,
                               "overhead_per_token_seconds": overhead}
        met[kind] = value is not None and value >= STREAM_RATIO_TARGET
        cells[kind] = f"{ratio(value)} ({tps(streaming['median'])} vs {tps(plain['median'])})"
        per_token[kind] = f"{ms(overhead)} a token ({int(tokens)} tokens)"
    rows = [row("Streaming vs plain `generate`: tokens/s ratio, median of paired runs (stream vs generate tokens/s)", cells,
                f"≥ {STREAM_RATIO_TARGET}", _all(list(met.values()))),
            row("Streaming cost per token (stream − generate time)", per_token, "reported", None)]
    notes.append("tokens/s = new tokens / wall time from the call (prompt preparation and prefill included) "
                 "to the end, both paths; the runs alternate order each repetition.")
    notes.append(THREAD_NOTE)
    return section("1. Streaming overhead", f"stream tokens/s ≥ {STREAM_RATIO_TARGET} × plain generate", results, rows, notes)


# ----------------------------------------------------------------------------- 2. time to first token

def ttft(ctx: Context, app: LaunchedApp, client: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    client_cells, sse_cells, direct_cells = {}, {}, {}
    client_met, sse_met = [], []
    settings = ctx.settings(ctx.ttft_tokens)
    for kind in SIDES:
        loaded, name = ctx.model(kind), ctx.name(kind)
        streamed(loaded, ctx.prompt, settings)  # warm-up of each path
        generate_via_client(client, name, ctx.prompt, ctx.ttft_tokens)
        generate_via_sse(app.url, name, ctx.prompt, ctx.ttft_tokens)
        direct_first, direct_ttft, boundary = [], [], []
        via: dict[str, dict[str, list]] = {"client": {"first": [], "ttft": []}, "sse": {"first": [], "ttft": []}}
        for rep in range(ctx.reps):
            ctx.log(f"2 time to first token: {kind.value} rep {rep + 1}/{ctx.reps}")
            for path in _order(rep, ("direct", "client", "sse")):
                if path == "direct":
                    run = streamed(loaded, ctx.prompt, settings)
                    direct_first.append(run.first_text)
                    direct_ttft.append(run.stats["time_to_first_token"])
                    if run.first_text is not None and run.stats["time_to_first_token"] is not None:
                        boundary.append(run.first_text - run.stats["time_to_first_token"])
                else:
                    r = (generate_via_client(client, name, ctx.prompt, ctx.ttft_tokens) if path == "client"
                         else generate_via_sse(app.url, name, ctx.prompt, ctx.ttft_tokens))
                    via[path]["first"].append(r.first_text)
                    via[path]["ttft"].append(r.stats.get("time_to_first_token"))
        word = median(boundary) or 0.0
        results[kind.value] = {"direct_first_text_seconds": figure(direct_first, "s"),
                               "direct_time_to_first_token_seconds": figure(direct_ttft, "s"),
                               "first_text_after_first_token_seconds": figure(boundary, "s")}
        for path, cells, met in (("client", client_cells, client_met), ("sse", sse_cells, sse_met)):
            first, model_ttft = via[path]["first"], via[path]["ttft"]
            overhead = [f - t - word for f, t in zip(first, model_ttft) if f is not None and t is not None]
            fig = figure(overhead, "s")
            results[kind.value][path] = {"first_text_seconds": figure(first, "s"),
                                         "model_time_to_first_token_seconds": figure(model_ttft, "s"),
                                         "overhead_seconds": fig}
            ok = fig["median"] is not None and fig["median"] < TTFT_OVERHEAD_TARGET
            met.append(ok)
            cells[kind] = (f"{ms(fig['median'])} (first text {ms(median(first))}, model's first token "
                           f"{ms(median(model_ttft))})")
        direct_cells[kind] = f"{ms(word)} (first token {ms(median(direct_ttft))}, first text {ms(median(direct_first))})"
    trivial = []
    for _ in range(ctx.reps):  # the floor: the cheapest request's round trip on this machine right now
        started = time.perf_counter()
        stop_via_http(app.url, f"bench-idle-{uuid.uuid4().hex[:12]}")  # a session with nothing to stop
        trivial.append(time.perf_counter() - started)
    results["trivial_request_seconds"] = figure(trivial, "s")
    rows = [row("Reference: round trip of the cheapest request (`POST /gradio_api/run/stop`, nothing to stop, "
                "nothing generating)", ms(median(trivial)), "reported", None),
            row("Direct `models.stream`: first text chunk after the first token (word boundary)", direct_cells,
                "reported (subtracted below)", None),
            row("App overhead to first text via `gradio_client` (request → first text − model's first token − word-boundary wait)",
                client_cells, f"< {ms(TTFT_OVERHEAD_TARGET)}", _all(client_met)),
            row("Same via raw SSE on `/gradio_api/call/generate` (no client-side polling)", sse_cells,
                f"< {ms(TTFT_OVERHEAD_TARGET)}", _all(sse_met))]
    notes = ["The streamer emits text at word boundaries, so the first text can come one or more tokens after "
             "the first token; that wait (measured directly on models.stream, first row) is not app overhead and is "
             "subtracted. The model's own first-token time comes from each request's final stats.",
             "gradio_client 2.x takes streamed messages off its queue with a 50 ms sleep when the queue is empty "
             "(gradio_client.utils.stream_sse_v1plus): each update it reports arrives 0-50 ms late. The raw SSE row "
             "reads the same endpoint without that poll and shows the app's own cost.",
             "The app runs in the benchmark's process (loopback HTTP), so client, server and model share one "
             "Python interpreter and its GIL; iterating a gradio_client job also polls its outputs every 1 ms "
             "(Job.__next__), which competes with the server and the model in that process."]
    return section("2. End-to-end time to first token", f"overhead < {ms(TTFT_OVERHEAD_TARGET)} on loopback",
                   results, rows, notes)


# ----------------------------------------------------------------------------- 3. side by side

def side_by_side(ctx: Context, app: LaunchedApp, client: Any) -> dict[str, Any]:
    n = ctx.max_new_tokens
    alone: dict[Kind, list[dict[str, Any]]] = {k: [] for k in SIDES}
    together: dict[Kind, list[dict[str, Any]]] = {k: [] for k in SIDES}
    first_finisher: list[Kind | None] = []
    for kind in SIDES:  # warm-up
        generate_via_client(client, ctx.name(kind), ctx.prompt, n)
    for rep in range(ctx.reps):
        ctx.log(f"3 side by side: rep {rep + 1}/{ctx.reps}")
        for kind in _order(rep, SIDES):
            alone[kind].append(generate_via_client(client, ctx.name(kind), ctx.prompt, n).stats)
        with ThreadWatch() as watch:
            jobs = {kind: client.submit(*api_args(ctx.name(kind), ctx.prompt, n), api_name="/generate")
                    for kind in _order(rep, SIDES)}
            for kind, job in jobs.items():
                _text, stats = job.result(timeout=600)
                together[kind].append(stats)
            time.sleep(0.02)  # let the watcher see both threads end
        ends = {kind: watch.end_of(ctx.name(kind)) for kind in SIDES}
        first_finisher.append(min(ends, key=lambda k: ends[k]) if all(v is not None for v in ends.values()) else None)

    def fig(runs: list[dict[str, Any]], key: str, unit: str) -> dict[str, Any]:
        return figure([r.get(key) for r in runs], unit)

    results: dict[str, Any] = {}
    for kind in SIDES:
        results[kind.value] = {
            "alone": {"time_to_first_token_seconds": fig(alone[kind], "time_to_first_token", "s"),
                      "tokens_per_second": fig(alone[kind], "tokens_per_second", "tokens/s"),
                      "total_seconds": fig(alone[kind], "total_seconds", "s")},
            "together": {"time_to_first_token_seconds": fig(together[kind], "time_to_first_token", "s"),
                         "tokens_per_second": fig(together[kind], "tokens_per_second", "tokens/s"),
                         "total_seconds": fig(together[kind], "total_seconds", "s")},
        }
    alone_total = {k: results[k.value]["alone"]["total_seconds"]["median"] or float("inf") for k in SIDES}
    faster = min(SIDES, key=lambda k: alone_total[k])
    slower = Kind.CAUSAL if faster is Kind.SEQ2SEQ else Kind.SEQ2SEQ
    wins = sum(1 for k in first_finisher if k is faster)
    judged = sum(1 for k in first_finisher if k is not None)
    met = judged > 0 and wins * 2 > judged
    margin = alone_total[slower] / alone_total[faster] if alone_total[faster] else None
    results["faster_side_alone"] = faster.value
    results["alone_time_ratio_slower_to_faster"] = margin
    results["first_to_finish_together"] = [k.value if k else None for k in first_finisher]
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
                "faster side first (most runs)", met)]
    notes = [f"Two concurrent gradio_client jobs to /generate ({n} new tokens each, submitted together, order "
             "alternating); TTFT and tokens/s from each request's final stats; who finished first from the server's "
             "generation threads ending (polled every 2 ms)."]
    if margin is not None and margin < 1.1:
        notes.append(f"The two sides are within {100 * (margin - 1):.0f}% of each other alone, so which finishes "
                     "first together is close to a coin flip.")
    return section("3. Side by side", "the side that is faster alone finishes first when both run", results, rows, notes)


# ----------------------------------------------------------------------------- 4. stop latency

def _stop_direct(ctx: Context, kind: Kind) -> tuple[float | None, float | None]:
    """Stop ``models.stream`` through its event shortly after the first text; (latency, seconds a token)."""
    loaded, name = ctx.model(kind), ctx.name(kind)
    stop = threading.Event()
    first_text = threading.Event()
    box: dict[str, Any] = {}
    before = set(generation_threads())

    def consume() -> None:
        box["run"] = streamed(loaded, ctx.prompt, ctx.settings(ctx.stop_tokens), stop_event=stop, on_text=first_text.set)

    consumer = threading.Thread(target=consume, name="bench-consumer", daemon=True)
    consumer.start()
    first_text.wait(120)
    worker = next((t for t in generation_threads() if t.name == f"generate[{name}]" and t not in before), None)
    time.sleep(0.05)
    alive = worker is not None and worker.is_alive()
    started = time.perf_counter()
    stop.set()
    if worker is not None:
        worker.join(60)
    latency = time.perf_counter() - started
    consumer.join(60)
    stats = box["run"].stats if "run" in box else {}
    token = 1 / stats["tokens_per_second"] if stats.get("tokens_per_second") else ctx.token_time.get(kind)
    return (latency if alive else None), token


def _stop_app(ctx: Context, kind: Kind, app: LaunchedApp, client: Any, raw: bool) -> dict[str, float | None]:
    """Stop a running ``/generate`` request with the app's ``/stop`` for its session, called through
    ``gradio_client`` (``raw=False``) or plain HTTP (``raw=True``), 50 ms after its first text.

    Returns ``latency`` (stop called -> generation thread ended), ``handler`` (stop called -> the
    app's stop event set) and ``token`` (seconds a token, from the request's stats).
    """
    name = ctx.name(kind)
    before = set(generation_threads())
    first_text = threading.Event()
    box: dict[str, Any] = {}
    if raw:
        session = f"bench-stop-{uuid.uuid4().hex[:12]}"
        background = threading.Thread(
            target=lambda: box.setdefault("run", generate_via_sse(app.url, name, ctx.prompt, ctx.stop_tokens,
                                                                  session_hash=session, on_text=first_text.set)),
            name="bench-sse-request", daemon=True)
        background.start()
        first_text.wait(120)
    else:
        session = client.session_hash
        job = client.submit(*api_args(name, ctx.prompt, ctx.stop_tokens), api_name="/generate")
        for text, _stats in job:
            if text:
                break
    worker = next((t for t in generation_threads() if t.name == f"generate[{name}]" and t not in before), None)
    time.sleep(0.05)
    # the request's stop event (Playground keeps them per session; read only, to time the handler)
    events = list(getattr(app.playground, "_stops", {}).get(session, ()))
    marks: dict[str, float] = {}

    def wait_for_end() -> None:  # the thread's end, independent of when the stop call returns
        if worker is not None:
            worker.join(60)
        marks["ended"] = time.perf_counter()

    def wait_for_event() -> None:
        if events and events[0].wait(60):
            marks["set"] = time.perf_counter()

    waiters = [threading.Thread(target=f, daemon=True) for f in (wait_for_end, wait_for_event)]
    alive = worker is not None and worker.is_alive()
    for w in waiters:
        w.start()
    started = time.perf_counter()
    if raw:
        stop_via_http(app.url, session)
    else:
        client.predict(api_name="/stop")
    for w in waiters:
        w.join(60)
    if raw:
        background.join(120)
        stats = box["run"].stats if "run" in box else {}
    else:
        _text, stats = job.result(timeout=120)
    token = 1 / stats["tokens_per_second"] if stats.get("tokens_per_second") else ctx.token_time.get(kind)
    ok = alive and "ended" in marks
    return {"latency": marks["ended"] - started if ok else None,
            "handler": marks["set"] - started if ok and "set" in marks else None, "token": token}


STOP_PATHS = {"direct": "Stop latency: stop event set → generation thread ended",
              "client": "Stop via the app, `gradio_client` `/stop` call → generation thread ended",
              "http": "Stop via the app, `POST /gradio_api/run/stop` as the page's Stop button sends it → generation thread ended"}


def stop_latency(ctx: Context, app: LaunchedApp, client: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    cells: dict[str, dict[Kind, str]] = {path: {} for path in STOP_PATHS}
    met: dict[str, list[bool | None]] = {path: [] for path in STOP_PATHS}
    notes = []
    for kind in SIDES:
        samples: dict[str, dict[str, list]] = {path: {"latency": [], "handler": [], "token": []} for path in STOP_PATHS}
        for rep in range(ctx.reps):
            ctx.log(f"4 stop latency: {kind.value} rep {rep + 1}/{ctx.reps}")
            for path in _order(rep, tuple(STOP_PATHS)):
                if path == "direct":
                    latency, token = _stop_direct(ctx, kind)
                    got = {"latency": latency, "handler": None, "token": token}
                else:
                    got = _stop_app(ctx, kind, app, client, raw=path == "http")
                for key, value in got.items():
                    samples[path][key].append(value)
        results[kind.value] = {}
        for path in STOP_PATHS:
            lat, tok = figure(samples[path]["latency"], "s"), figure(samples[path]["token"], "s")
            handler = figure(samples[path]["handler"], "s")
            results[kind.value][path] = {"latency_seconds": lat, "token_seconds": tok}
            if path != "direct":
                results[kind.value][path]["stop_handler_seconds"] = handler
            skipped = ctx.reps - lat["n"]
            if skipped:
                notes.append(f"{kind.value} {path}: {skipped} run(s) ended before the stop and were not counted")
            bound = tok["median"] + STOP_SLACK if tok["median"] is not None else None
            met[path].append(lat["median"] is not None and bound is not None and lat["median"] <= bound)
            cell = f"{ms(lat['median'])} (limit {ms(bound)}"
            if handler["median"] is not None:
                cell += f"; stop event set after {ms(handler['median'])}"
            cells[path][kind] = cell + ")"
    rows = [row(STOP_PATHS[path], cells[path], f"≤ one token + {ms(STOP_SLACK)}", _all(met[path])) for path in STOP_PATHS]
    notes.append(f"Each run generates up to {ctx.stop_tokens} tokens and is stopped 50 ms after its first text; "
                 "the limit is that run's time for one token (its decode rate) + 100 ms. Via the app, 'stop event "
                 "set' is when the app's stop handler had set the request's event, the rest is the model finishing "
                 "its current token. gradio_client sends even this unqueued endpoint through the queue protocol (and its "
                 "50 ms poll); the page's JavaScript client posts unqueued events straight to /gradio_api/run/<name>.")
    return section("4. Stop latency", f"≤ one token's time + {ms(STOP_SLACK)}", results, rows, notes)


# ----------------------------------------------------------------------------- 5. 8-bit

def eight_bit(ctx: Context) -> dict[str, Any]:
    from models import eight_bit_status

    ok, why = eight_bit_status()
    if not ok:
        return section("5. 8-bit", "8-bit memory ≤ 0.6 × full precision", {"unavailable": why},
                       [row("8-bit memory footprint", {k: "unavailable" for k in SIDES}, "≤ 0.6 × full", False)], [why])
    results: dict[str, Any] = {}
    mem_cells, tps_cells, load_cells = {}, {}, {}
    mem_met = []
    settings = ctx.settings()
    for kind in SIDES:
        full = ctx.model(kind)
        ctx.log(f"5 8-bit: loading {ctx.name(kind)} in 8-bit")
        started = time.perf_counter()
        quant = load_model(ctx.subjects[kind].source, load_in_8bit=True)
        load_s = time.perf_counter() - started
        speeds: dict[str, list] = {"full": [], "8bit": []}
        for loaded in (full, quant):  # warm-up
            streamed(loaded, ctx.prompt, settings)
        for rep in range(ctx.reps):
            ctx.log(f"5 8-bit: {kind.value} rep {rep + 1}/{ctx.reps}")
            for which in _order(rep, ("full", "8bit")):
                run = streamed(full if which == "full" else quant, ctx.prompt, settings)
                speeds[which].append(run.stats["tokens_per_second"])
        full_mem, quant_mem = full.description.memory_bytes, quant.description.memory_bytes
        mem_ratio = quant_mem / full_mem if full_mem else None
        f_tps, q_tps = figure(speeds["full"], "tokens/s"), figure(speeds["8bit"], "tokens/s")
        speed_ratio = q_tps["median"] / f_tps["median"] if f_tps["median"] and q_tps["median"] else None
        results[kind.value] = {"memory_bytes_full": full_mem, "memory_bytes_8bit": quant_mem, "memory_ratio": mem_ratio,
                               "tokens_per_second_full": f_tps, "tokens_per_second_8bit": q_tps, "speed_ratio": speed_ratio,
                               "load_seconds_8bit": load_s}
        mem_met.append(mem_ratio is not None and mem_ratio <= EIGHT_BIT_MEMORY_TARGET)
        mem_cells[kind] = f"{mib(full_mem)} → {mib(quant_mem)} ({ratio(mem_ratio)}×)"
        tps_cells[kind] = f"{tps(f_tps['median'])} → {tps(q_tps['median'])} ({ratio(speed_ratio)}×)"
        load_cells[kind] = secs(load_s)
        del quant
        gc.collect()
    rows = [row("8-bit memory footprint (`description.memory_bytes`), full → 8-bit", mem_cells,
                f"≤ {EIGHT_BIT_MEMORY_TARGET} × full", _all(mem_met)),
            row("8-bit tokens/s, full → 8-bit", tps_cells, "reported (8-bit on CPU is expected to be slower)", None),
            row("8-bit load (one load, not a median)", load_cells, "reported", None)]
    notes = [f"bitsandbytes int8 on {'GPU' if torch.cuda.is_available() else 'CPU'}: linear layers are int8; "
             "embeddings, the output head, norms and T5's `wo` layers stay in full precision, so small models "
             "save less than half. tokens/s is the decode rate from the stream's stats."]
    return section("5. 8-bit", f"8-bit memory ≤ {EIGHT_BIT_MEMORY_TARGET} × full precision", results, rows, notes)


# ----------------------------------------------------------------------------- 6. loading

def loading(ctx: Context) -> dict[str, Any]:
    """Runs first: its last cold load of each model is the one every other section uses."""
    results: dict[str, Any] = {}
    cold_cells, cached_cells, gguf_first_cells, gguf_cached_cells = {}, {}, {}, {}
    cached_met, gguf_met = [], []
    notes = []
    for kind in SIDES:
        source = ctx.subjects[kind].source
        res: dict[str, Any] = {}
        if source.gguf_file:
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
            res["gguf_first_load_seconds"] = figure(first, "s")
        cold, cached = [], []
        loaded = None
        for rep in range(ctx.reps):
            ctx.log(f"6 loading: {kind.value} cold/cached rep {rep + 1}/{ctx.reps}")
            cache = ModelCache(1)
            loaded = None
            gc.collect()
            started = time.perf_counter()
            loaded = cache.get(source)
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(CACHED_CALLS):
                again = cache.get(source)
            cached.append((time.perf_counter() - started) / CACHED_CALLS)
            assert again is loaded
        assert loaded is not None
        ctx.cache.put(loaded)
        ctx.loaded[kind] = loaded
        res["cold_load_seconds"] = figure(cold, "s")
        res["cached_load_seconds"] = figure(cached, "s")
        results[kind.value] = res
        cold_cells[kind] = secs(res["cold_load_seconds"]["median"]) + (" (conversion cached)" if source.gguf_file else "")
        cached_cells[kind] = ms(res["cached_load_seconds"]["median"])
        cached_met.append(res["cached_load_seconds"]["median"] < CACHED_LOAD_TARGET)
        if source.gguf_file:
            first_m, cold_m = res["gguf_first_load_seconds"]["median"], res["cold_load_seconds"]["median"]
            speedup = first_m / cold_m if cold_m else None
            res["gguf_speedup"] = speedup
            gguf_first_cells[kind] = f"{secs(first_m)} (n={res['gguf_first_load_seconds']['n']})"
            gguf_cached_cells[kind] = f"{secs(cold_m)} ({speedup:.0f}× faster)" if speedup else secs(cold_m)
            gguf_met.append(speedup is not None and speedup >= GGUF_SPEEDUP_TARGET)
    rows = [row("Cold load: fresh `ModelCache`, `load_model`", cold_cells, "reported", None),
            row("Cached load: `cache.get` again (mean of 100 calls per repetition)", cached_cells, f"< {ms(CACHED_LOAD_TARGET)}", _all(cached_met))]
    if gguf_first_cells:
        rows.append(row("GGUF first load: dequantize + save + load (fresh PLAYGROUND_CACHE)", gguf_first_cells, "reported", None))
        rows.append(row("GGUF load with the conversion cached (fresh `ModelCache`)", gguf_cached_cells,
                        f"≥ {GGUF_SPEEDUP_TARGET:.0f}× faster than first load", _all(gguf_met)))
        notes.append(f"GGUF first load: {ctx.gguf_reps} repetition(s) (--gguf-reps), each into a new empty cache folder.")
    notes.append("\"Cold\" means a fresh ModelCache in a warm process: Python modules imported and the files in the "
                 "OS page cache; a first load after a reboot reads the disk too.")
    return section("6. Loading", f"cached load < {ms(CACHED_LOAD_TARGET)}"
                   + (f"; GGUF cached conversion ≥ {GGUF_SPEEDUP_TARGET:.0f}× faster than first" if gguf_first_cells else ""),
                   results, rows, notes)


# ----------------------------------------------------------------------------- 7. start-up

def startup(ctx: Context) -> dict[str, Any]:
    samples: list[float | None] = []
    errors: list[str] = []
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               PLAYGROUND_CACHE=str(ctx.work / "startup-cache"))
    for rep in range(ctx.reps):
        ctx.log(f"7 start-up: rep {rep + 1}/{ctx.reps}")
        port = free_port()
        log_path = ctx.work / f"startup-{rep}.log"
        cmd = [sys.executable, str(ROOT / "app.py"), "--offline", "--no-preload", "--port", str(port),
               "--model-dir", str(ctx.model_dir)]
        with open(log_path, "wb") as log:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            took = None
            try:
                deadline = started + 120
                while time.perf_counter() < deadline and proc.poll() is None:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                            took = time.perf_counter() - started
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.025)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        if took is None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            errors.append(f"rep {rep + 1}: no HTTP 200 (exit code {proc.returncode}): {' / '.join(tail)[:300]}")
        samples.append(took)
    fig = figure(samples, "s")
    met = fig["median"] is not None and fig["median"] <= STARTUP_TARGET and not errors
    results = {"seconds": fig, "command": "python app.py --offline --no-preload --port P --model-dir DIR", "errors": errors}
    rows = [row("Start-up: `python app.py --offline --no-preload …` → page answers HTTP 200", secs(fig["median"]),
                f"≤ {secs(STARTUP_TARGET)}", met)]
    notes = ["A new Python process each time (imports of torch, transformers and gradio included; bytecode and OS "
             "file caches warm); no model is loaded (--no-preload)."] + errors
    return section("7. Start-up", f"≤ {secs(STARTUP_TARGET)} to HTTP 200", results, rows, notes)
