"""The app launched in-process on loopback, and the clients the benchmark talks to it with.

Two clients: ``gradio_client`` (what the brief and the README show users), and a raw
SSE reader on Gradio's ``/gradio_api/call/<api>`` route. ``gradio_client`` 2.x takes
streamed messages off its queue with a 50 ms sleep when the queue is empty
(``gradio_client.utils.stream_sse_v1plus``), so every update it reports lands
0-50 ms after the server sent it; the raw reader shows what the app itself costs.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import httpx
from gradio_client import Client
from gradio_client.client import Job

from web.api import generate_payload
from web.config import AppConfig
from web.serving import serving

from .context import App, Context



@contextlib.contextmanager
def served_app(ctx: Context) -> Iterator[App]:
    """``web.serving.serving`` with the benchmark's registry and cache, both models loaded first."""
    for kind in ctx.subjects:  # in the shared cache before the first request
        ctx.model(kind)
    ctx.log("launching the app in-process")
    config = AppConfig(online=ctx.registry.online, preload=False)
    with serving(config, registry=ctx.registry, cache=ctx.cache) as served:
        client = Client(served.url, verbose=False, analytics_enabled=False)
        try:
            yield App(served.url, served.runner, client)
        finally:
            client.close()


def submit_generate(client: Client, model: str, prompt: str, max_new_tokens: int) -> Job:
    """``/generate`` with its default settings (greedy, no penalty, full precision) through ``gradio_client``:
    a ``concurrent.futures.Future`` of ``(text, stats)``; iterate it for the updates."""
    return client.submit(*generate_payload(model, prompt, max_new_tokens=max_new_tokens), api_name="/generate")


@dataclass
class ClientRun:
    """One ``/generate`` request as a client saw it (times in seconds from the request)."""

    first_text: float | None = None
    done: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def update(self, text: str, stats: dict[str, Any], elapsed: float, on_text: Callable[[], None] | None = None) -> None:
        """Record one streamed update, ``elapsed`` seconds after the request; ``on_text`` at the first text."""
        if text and self.first_text is None:
            self.first_text = elapsed
            if on_text:
                on_text()
        self.text = text
        if stats:
            self.stats = stats


def generate_via_client(client: Client, model: str, prompt: str, max_new_tokens: int) -> ClientRun:
    """:func:`submit_generate`, iterated to the end."""
    run = ClientRun()
    started = time.perf_counter()
    job = submit_generate(client, model, prompt, max_new_tokens)
    for text, stats in job:
        run.update(text, stats, time.perf_counter() - started)
    result = job.result()
    run.done = time.perf_counter() - started
    if not run.stats and isinstance(result, (list, tuple)) and len(result) == 2:
        run.text, run.stats = result
    return run


def generate_via_sse(base_url: str, model: str, prompt: str, max_new_tokens: int, timeout: float = 300.0, *,
                     session_hash: str | None = None, on_text: Callable[[], None] | None = None,
                     **values: Any) -> ClientRun:
    """POST ``/gradio_api/call/generate`` then read its SSE stream with httpx, no polling.

    ``session_hash`` ties the request to a session (so that session's ``/stop`` stops it);
    ``on_text`` is called once, when the first text arrives; ``values``: other ``/generate``
    parameters (``precision="bfloat16"``…).
    """
    run = ClientRun()
    api = base_url.rstrip("/") + "/gradio_api/call/generate"
    body: dict[str, Any] = {"data": generate_payload(model, prompt, max_new_tokens=max_new_tokens, **values)}
    if session_hash:
        body["session_hash"] = session_hash
    with httpx.Client(timeout=timeout) as http:
        started = time.perf_counter()
        answer = http.post(api, json=body)
        answer.raise_for_status()
        event_id = answer.json()["event_id"]
        event = None
        with http.stream("GET", f"{api}/{event_id}") as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"/generate did not complete within {timeout:g} s")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("generating", "complete", "error"):
                    data = json.loads(line.split(":", 1)[1])
                    if event == "error":
                        raise RuntimeError(f"/generate failed: {data}")
                    if not data:  # another event of the same session (a /stop call) completing
                        continue
                    if len(data) == 1:  # gr.api's (text, stats) tuple is one output holding both
                        data = data[0]
                    text, stats = data
                    run.update(text, stats, time.perf_counter() - started, on_text)
                    if event == "complete":
                        break
        run.done = time.perf_counter() - started
    return run


def stop_via_http(base_url: str, session_hash: str, timeout: float = 30.0) -> None:
    """POST ``/gradio_api/run/stop`` for ``session_hash``: the direct, unqueued call the page's
    Stop button makes (the endpoint has ``queue=False``); it answers when the handler has run."""
    answer = httpx.post(base_url.rstrip("/") + "/gradio_api/run/stop", json={"data": [], "session_hash": session_hash},
                        timeout=timeout)
    answer.raise_for_status()
