"""2. End-to-end time to first token: the app's cost from a request to its first text, through
``gradio_client`` and through raw server-sent events, with the model's own times subtracted."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from models import Kind

from ..appclient import generate_via_client, generate_via_sse, stop_via_http
from ..context import SIDES, Context
from ..figures import figure, median, ms
from ..runs import order, streamed
from .base import Table, all_met, row

OVERHEAD_TARGET = 0.050
TARGET = f"overhead < {ms(OVERHEAD_TARGET)} on loopback"
PATHS = ("direct", "client", "sse")  # models.stream in this process; gradio_client; raw SSE

NOTES = ["The streamer emits text at word boundaries, so the first text can come one or more tokens after "
         "the first token; that wait (measured directly on models.stream, first row) is not app overhead and is "
         "subtracted. The model's own first-token time comes from each request's final stats.",
         "gradio_client 2.x takes streamed messages off its queue with a 50 ms sleep when the queue is empty "
         "(gradio_client.utils.stream_sse_v1plus): each update it reports arrives 0-50 ms late. The raw SSE row "
         "reads the same endpoint without that poll and shows the app's own cost.",
         "The app runs in the benchmark's process (loopback HTTP), so client, server and model share one "
         "Python interpreter and its GIL; iterating a gradio_client job also polls its outputs every 1 ms "
         "(Job.__next__), which competes with the server and the model in that process."]


@dataclass
class FirstText:
    """Requests by one path: when its first text arrived, and the model's own time to its first token."""

    first_text: list[float | None] = field(default_factory=list)
    model_first_token: list[float | None] = field(default_factory=list)


@dataclass
class Samples:
    sides: dict[Kind, dict[str, FirstText]]  # path (see PATHS) -> its requests
    trivial_request: list[float]  # round trips of the cheapest request


def measure(ctx: Context) -> Samples:
    settings = ctx.settings(ctx.ttft_tokens)
    app = ctx.app
    sides: dict[Kind, dict[str, FirstText]] = {}
    for kind in SIDES:
        loaded, name = ctx.model(kind), ctx.name(kind)

        def direct() -> tuple[float | None, float | None]:
            run = streamed(loaded, ctx.prompt, settings)
            return run.first_text, run.stats["time_to_first_token"]

        def client() -> tuple[float | None, float | None]:
            run = generate_via_client(app.client, name, ctx.prompt, ctx.ttft_tokens)
            return run.first_text, run.stats.get("time_to_first_token")

        def sse() -> tuple[float | None, float | None]:
            run = generate_via_sse(app.url, name, ctx.prompt, ctx.ttft_tokens)
            return run.first_text, run.stats.get("time_to_first_token")

        paths: dict[str, Callable[[], tuple[float | None, float | None]]] = {"direct": direct, "client": client,
                                                                              "sse": sse}
        for request in paths.values():  # warm-up of each path
            request()
        side = sides[kind] = {path: FirstText() for path in PATHS}
        for rep in range(ctx.reps):
            ctx.rep_log(f"2 time to first token: {kind.value}", rep)
            for path in order(rep, PATHS):
                first, model_first = paths[path]()
                side[path].first_text.append(first)
                side[path].model_first_token.append(model_first)
    trivial = []
    for _ in range(ctx.reps):  # the floor: the cheapest request's round trip on this machine right now
        started = time.perf_counter()
        stop_via_http(app.url, f"bench-idle-{uuid.uuid4().hex[:12]}")  # a session with nothing to stop
        trivial.append(time.perf_counter() - started)
    return Samples(sides, trivial)


def summarize(samples: Samples) -> Table:
    results: dict[str, object] = {}
    direct_cells: dict[Kind, str] = {}
    via_cells: dict[str, dict[Kind, str]] = {"client": {}, "sse": {}}
    via_met: dict[str, list[bool | None]] = {"client": [], "sse": []}
    for kind, side in samples.sides.items():
        direct = side["direct"]
        boundary = [f - t for f, t in zip(direct.first_text, direct.model_first_token) if f is not None and t is not None]
        word = median(boundary) or 0.0
        mine = results[kind.value] = {"direct_first_text_seconds": figure(direct.first_text, "s"),
                                      "direct_time_to_first_token_seconds": figure(direct.model_first_token, "s"),
                                      "first_text_after_first_token_seconds": figure(boundary, "s")}
        for path in ("client", "sse"):
            first, model_first = side[path].first_text, side[path].model_first_token
            overhead = figure([f - t - word for f, t in zip(first, model_first) if f is not None and t is not None], "s")
            mine[path] = {"first_text_seconds": figure(first, "s"),
                          "model_time_to_first_token_seconds": figure(model_first, "s"), "overhead_seconds": overhead}
            via_met[path].append(overhead["median"] is not None and overhead["median"] < OVERHEAD_TARGET)
            via_cells[path][kind] = (f"{ms(overhead['median'])} (first text {ms(median(first))}, model's first token "
                                     f"{ms(median(model_first))})")
        direct_cells[kind] = (f"{ms(word)} (first token {ms(median(direct.model_first_token))}, first text "
                              f"{ms(median(direct.first_text))})")
    results["trivial_request_seconds"] = figure(samples.trivial_request, "s")
    rows = [row("Reference: round trip of the cheapest request (`POST /gradio_api/run/stop`, nothing to stop, "
                "nothing generating)", ms(median(samples.trivial_request)), "reported", None),
            row("Direct `models.stream`: first text chunk after the first token (word boundary)", direct_cells,
                "reported (subtracted below)", None),
            row("App overhead to first text via `gradio_client` (request → first text − model's first token − "
                "word-boundary wait)", via_cells["client"], f"< {ms(OVERHEAD_TARGET)}", all_met(via_met["client"])),
            row("Same via raw SSE on `/gradio_api/call/generate` (no client-side polling)", via_cells["sse"],
                f"< {ms(OVERHEAD_TARGET)}", all_met(via_met["sse"]))]
    return Table(rows, results, list(NOTES))
