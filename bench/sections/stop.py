"""4. Stop latency: how long a running generation takes to end once stopped, directly and through the app."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from models import Kind
from models.stream import generation_threads

from ..appclient import generate_via_sse, stop_via_http, submit_generate
from ..context import SIDES, Context
from ..figures import figure, ms
from ..runs import ended_at, new_generation_thread, order, streamed
from .base import Table, all_met, row

SLACK = 0.100  # allowed on top of one token's time
TARGET = f"≤ one token's time + {ms(SLACK)}"
STOP_AFTER = 0.05  # seconds after the first text
PATHS = {"direct": "Stop latency: stop event set → generation thread ended",
         "client": "Stop via the app, `gradio_client` `/stop` call → generation thread ended",
         "http": "Stop via the app, `POST /gradio_api/run/stop` as the page's Stop button sends it → generation thread ended"}


@dataclass
class PathSamples:
    """Stopped runs by one path, per repetition (``None`` where a run ended before its stop)."""

    latency: list[float | None] = field(default_factory=list)  # stop called -> generation thread ended
    handler: list[float | None] = field(default_factory=list)  # stop called -> the app's stop event set
    token: list[float | None] = field(default_factory=list)  # seconds a token in that run

    def add(self, latency: float | None, handler: float | None, token: float | None) -> None:
        self.latency.append(latency)
        self.handler.append(handler)
        self.token.append(token)


@dataclass
class Samples:
    reps: int
    stop_tokens: int
    sides: dict[Kind, dict[str, PathSamples]]  # path (see PATHS) -> its runs


def _time_stop(worker: threading.Thread | None, stop: Callable[[], object],
               event: threading.Event | None = None) -> tuple[float | None, float | None]:
    """Call ``stop``; return seconds from the call to ``worker``'s end and to ``event`` being set.

    Both are waited for beside the call, so the time does not depend on when ``stop`` returns;
    ``(None, None)`` when the worker had already ended (the run was not stopped)."""
    alive = worker is not None and worker.is_alive()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench-stop-watch") as pool:
        ended = pool.submit(ended_at, worker)
        was_set = pool.submit(lambda: time.perf_counter() if event.wait(60) else None) if event else None
        started = time.perf_counter()
        stop()
        end, set_at = ended.result(), was_set.result() if was_set else None
    if not alive or end is None:
        return None, None
    return end - started, None if set_at is None else set_at - started


def _seconds_a_token(ctx: Context, kind: Kind, stats: dict[str, Any]) -> float | None:
    return 1 / stats["tokens_per_second"] if stats.get("tokens_per_second") else ctx.token_time.get(kind)


def _stop_direct(ctx: Context, kind: Kind) -> tuple[float | None, float | None, float | None]:
    """Stop ``models.stream`` through its event shortly after the first text."""
    loaded, name = ctx.model(kind), ctx.name(kind)
    stop, first_text = threading.Event(), threading.Event()
    before = set(generation_threads())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-consumer") as pool:
        run = pool.submit(streamed, loaded, ctx.prompt, ctx.settings(ctx.stop_tokens), stop_event=stop,
                          on_text=first_text.set)
        first_text.wait(120)
        worker = new_generation_thread(name, before)
        time.sleep(STOP_AFTER)
        latency, _ = _time_stop(worker, stop.set)
        stats = run.result(timeout=60).stats
    return latency, None, _seconds_a_token(ctx, kind, stats)


def _stop_app(ctx: Context, kind: Kind, raw: bool) -> tuple[float | None, float | None, float | None]:
    """Stop a running ``/generate`` request with the app's ``/stop`` for its session, called through
    ``gradio_client`` (``raw=False``) or plain HTTP (``raw=True``), shortly after its first text.

    Returns the latency (stop called -> generation thread ended), the handler's time (stop called ->
    the app's stop event set) and seconds a token (from the request's stats).
    """
    app, name = ctx.app, ctx.name(kind)
    before = set(generation_threads())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-sse-request") as pool:
        request: Future
        if raw:
            session, first_text = f"bench-stop-{uuid.uuid4().hex[:12]}", threading.Event()
            request = pool.submit(generate_via_sse, app.url, name, ctx.prompt, ctx.stop_tokens, session_hash=session,
                                  on_text=first_text.set)
            first_text.wait(120)

            def call_stop() -> None:  # the page's Stop button
                stop_via_http(app.url, session)
        else:
            session = app.client.session_hash
            request = submit_generate(app.client, name, ctx.prompt, ctx.stop_tokens)
            next((text for text, _stats in request if text), None)

            def call_stop() -> None:
                app.client.predict(api_name="/stop")
        worker = new_generation_thread(name, before)
        time.sleep(STOP_AFTER)
        events = app.runner.stop_events(session)  # read only, to time the handler
        latency, handler = _time_stop(worker, call_stop, events[0] if events else None)
        answer = request.result(timeout=120)
    stats = answer.stats if raw else answer[1]
    return latency, handler, _seconds_a_token(ctx, kind, stats)


def measure(ctx: Context) -> Samples:
    sides: dict[Kind, dict[str, PathSamples]] = {}
    for kind in SIDES:
        side = sides[kind] = {path: PathSamples() for path in PATHS}
        for rep in range(ctx.reps):
            ctx.rep_log(f"4 stop latency: {kind.value}", rep)
            for path in order(rep, tuple(PATHS)):
                side[path].add(*(_stop_direct(ctx, kind) if path == "direct" else _stop_app(ctx, kind, raw=path == "http")))
    return Samples(ctx.reps, ctx.stop_tokens, sides)


def summarize(samples: Samples) -> Table:
    results: dict[str, Any] = {}
    cells: dict[str, dict[Kind, str]] = {path: {} for path in PATHS}
    met: dict[str, list[bool | None]] = {path: [] for path in PATHS}
    notes = []
    for kind, side in samples.sides.items():
        results[kind.value] = {}
        for path, runs in side.items():
            lat, tok, handler = figure(runs.latency, "s"), figure(runs.token, "s"), figure(runs.handler, "s")
            results[kind.value][path] = {"latency_seconds": lat, "token_seconds": tok}
            if path != "direct":
                results[kind.value][path]["stop_handler_seconds"] = handler
            skipped = samples.reps - lat["n"]
            if skipped:
                notes.append(f"{kind.value} {path}: {skipped} run(s) ended before the stop and were not counted")
            bound = tok["median"] + SLACK if tok["median"] is not None else None
            met[path].append(lat["median"] is not None and bound is not None and lat["median"] <= bound)
            cell = f"{ms(lat['median'])} (limit {ms(bound)}"
            if handler["median"] is not None:
                cell += f"; stop event set after {ms(handler['median'])}"
            cells[path][kind] = cell + ")"
    rows = [row(PATHS[path], cells[path], f"≤ one token + {ms(SLACK)}", all_met(met[path])) for path in PATHS]
    notes.append(f"Each run generates up to {samples.stop_tokens} tokens and is stopped 50 ms after its first text; "
                 "the limit is that run's time for one token (its decode rate) + 100 ms. Via the app, 'stop event "
                 "set' is when the app's stop handler had set the request's event, the rest is the model finishing "
                 "its current token. gradio_client sends even this unqueued endpoint through the queue protocol (and its "
                 "50 ms poll); the page's JavaScript client posts unqueued events straight to /gradio_api/run/<name>.")
    return Table(rows, results, notes)
